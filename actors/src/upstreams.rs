//! The `upstreams` supervisor: parent of one `upstream.<name>` actor per
//! upstream group that has active health checks, and the periodic upkeep
//! of every group (idle connections closed, gauges refreshed).
//!
//! The groups in force are a list shared with the config actor, which
//! replaces it on a reload and then sends [`UpstreamsMsg::Reconcile`]:
//! a group new to the list (or newly checked) gets an actor, a group gone
//! (or no longer checked) has its actor stopped, and a group kept gets
//! the new settings (its actor reads them at every probe, and probes at
//! once when told). A restarted supervisor starts the groups of the list,
//! so it never brings back an old config's.
//!
//! What the actors find lives in each backend (atomics the request path
//! reads), not in the actors: a group actor that panics is restarted with
//! backoff and carries on from the verdicts it left; requests never
//! notice. One that fails too often is left down for its restart window
//! and then tried afresh, rather than taking the tree down with it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::{
    children::{Children, start_fn},
    restart::RestartPolicy,
    seams::UpstreamGroup,
    tree::Labels,
    upstream::{Current, UpstreamActor, UpstreamArgs, UpstreamMsg},
};

/// The supervisor's name in the tree.
pub(crate) const NAME: &str = "upstreams";

/// How often every group gets its upkeep.
const UPKEEP: Duration = Duration::from_secs(1);

/// The upstreams supervisor.
#[derive(Default)]
pub struct Upstreams;

/// Messages the upstreams supervisor takes.
pub enum UpstreamsMsg {
    /// Restart a child whose backoff has elapsed.
    RestartChild(String),
    /// The shared list of groups changed (a config reload): start, update
    /// and stop group actors to match it; replies once done.
    Reconcile(RpcReplyPort<()>),
    /// Every group's upkeep; sent to itself every [`UPKEEP`].
    Upkeep,
}

/// What the upstreams supervisor is started with.
pub struct UpstreamsArgs {
    /// How group actors are restarted.
    pub policy: RestartPolicy,
    /// The groups in force, shared with the config actor.
    pub groups: Arc<Mutex<Vec<Arc<dyn UpstreamGroup>>>>,
    /// The tree's display names.
    pub labels: Arc<Labels>,
}

/// The supervisor's state.
pub struct UpstreamsState {
    policy: RestartPolicy,
    children: Children,
    groups: Arc<Mutex<Vec<Arc<dyn UpstreamGroup>>>>,
    /// Each checked group's current settings, by actor name, shared with
    /// its actor and its start function.
    current: HashMap<String, Current>,
    labels: Arc<Labels>,
}

/// The display name of a group's actor.
fn actor_name(group: &str) -> String {
    format!("upstream.{group}")
}

impl UpstreamsState {
    fn groups(&self) -> Vec<Arc<dyn UpstreamGroup>> {
        self.groups.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Makes the group actors match the shared list.
    async fn reconcile(&mut self, me: &ActorRef<UpstreamsMsg>) -> Result<(), ActorProcessingErr> {
        let checked: Vec<_> = self
            .groups()
            .into_iter()
            .filter(|g| g.interval().is_some())
            .collect();
        let keep: Vec<String> = checked.iter().map(|g| actor_name(g.name())).collect();
        let gone: Vec<String> = self
            .current
            .keys()
            .filter(|name| !keep.contains(name))
            .cloned()
            .collect();
        for name in gone {
            self.current.remove(&name);
            if let Some(cell) = self.children.forget(&name) {
                cell.stop(Some(
                    "its group left the config or has no checks now".into(),
                ));
            }
        }
        for group in checked {
            let name = actor_name(group.name());
            if let Some(current) = self.current.get(&name) {
                if let Ok(mut g) = current.lock() {
                    *g = group;
                }
                if let Some(cell) = self.children.running(&name) {
                    let _ = ActorRef::<UpstreamMsg>::from(cell).cast(UpstreamMsg::Changed);
                }
                continue;
            }
            let current: Current = Arc::new(Mutex::new(group));
            let args = current.clone();
            let start = start_fn(&self.labels, &name, None, move || {
                (
                    UpstreamActor,
                    UpstreamArgs {
                        group: args.clone(),
                    },
                )
            });
            self.children
                .start_with(&name, start, self.policy, &me.get_cell())
                .await?;
            self.current.insert(name, current);
        }
        Ok(())
    }

    /// A group actor failed too often: its backends keep the verdicts
    /// they have; it is tried again, afresh, after its window.
    fn give_up(&mut self, me: &ActorRef<UpstreamsMsg>, name: String) {
        tracing::error!(actor = %name, retry_in = ?self.policy.window, "upstream health actor failed too often; its backends keep their last verdicts until it is back");
        self.children.reset(&name);
        me.send_after(self.policy.window, move || UpstreamsMsg::RestartChild(name));
    }
}

impl Actor for Upstreams {
    type Msg = UpstreamsMsg;
    type State = UpstreamsState;
    type Arguments = UpstreamsArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: UpstreamsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Named before its children start, which log under its path.
        args.labels.set(&me.get_cell(), NAME);
        let mut st = UpstreamsState {
            policy: args.policy,
            children: Children::new(args.policy, args.labels.clone()),
            groups: args.groups,
            current: HashMap::new(),
            labels: args.labels,
        };
        st.reconcile(&me).await?;
        me.send_after(UPKEEP, || UpstreamsMsg::Upkeep);
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            UpstreamsMsg::RestartChild(name) => {
                let retry = st.children.restart(&name, &me.get_cell()).await;
                if let Some(failed) = retry.schedule(&me, UpstreamsMsg::RestartChild) {
                    st.give_up(&me, failed);
                }
            }
            UpstreamsMsg::Reconcile(reply) => {
                st.reconcile(&me).await?;
                let _ = reply.send(());
            }
            UpstreamsMsg::Upkeep => {
                for group in st.groups() {
                    group.maintain();
                }
                me.send_after(UPKEEP, || UpstreamsMsg::Upkeep);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let event = st.children.on_event(&me.get_cell(), &evt, false);
        if let Some(name) = event.schedule(&me, UpstreamsMsg::RestartChild) {
            st.give_up(&me, name);
        }
        Ok(())
    }
}
