//! The modules supervisor: parent of one plugin-host actor per module.
//!
//! Each host restarts under its module's own policy. A module that fails
//! too often is not escalated: it is marked failed (its routes answer 503
//! with `Retry-After`) and tried again once its restart window has passed,
//! or at once when it is reloaded. Its siblings never notice.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::{
    children::{Children, start_fn},
    plugin_host::{PluginHost, PluginHostMsg},
    restart::RestartPolicy,
    seams::{ModuleHost, Retired},
};

/// The modules supervisor.
#[derive(Default)]
pub struct Modules;

/// Messages the modules supervisor takes.
pub enum ModulesMsg {
    /// Restart a child whose backoff has elapsed.
    RestartChild(String),
    /// Try a module that failed for good again, with a fresh history.
    Recover(String),
    /// Reload one module by name (see [`PluginHostMsg::Reload`]).
    Reload(String, RpcReplyPort<Result<(), String>>),
}

/// What the modules supervisor is started with.
pub struct ModulesArgs {
    /// The default policy, for children without their own.
    pub policy: RestartPolicy,
    /// One host per configured module.
    pub hosts: Vec<Arc<dyn ModuleHost>>,
    /// Appended to every actor name (see the root's `Names`).
    pub suffix: String,
}

/// The supervisor's state.
pub struct ModulesState {
    children: Children,
    /// (actor name, host) per module.
    hosts: Vec<(String, Arc<dyn ModuleHost>)>,
}

impl ModulesState {
    fn host(&self, actor: &str) -> Option<&Arc<dyn ModuleHost>> {
        self.hosts.iter().find(|(n, _)| n == actor).map(|(_, h)| h)
    }

    /// A module failed too often: unpublish it, and try again later.
    fn give_up(&self, me: &ActorRef<ModulesMsg>, actor: String) {
        if let Some(host) = self.host(&actor) {
            let policy = host.policy();
            host.retire(Retired::Failed(format!(
                "restarted {} times within {:?}",
                policy.max_restarts, policy.window
            )));
            tracing::error!(module = host.name(), retry_in = ?policy.window, "module failed too often; its routes answer 503");
            me.send_after(policy.window, move || ModulesMsg::Recover(actor));
        }
    }
}

impl Actor for Modules {
    type Msg = ModulesMsg;
    type State = ModulesState;
    type Arguments = ModulesArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: ModulesArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut children = Children::new(args.policy);
        let mut hosts = Vec::new();
        for host in args.hosts {
            let actor = format!("plugin.{}{}", host.name(), args.suffix);
            let spec_host = host.clone();
            let start = start_fn(actor.clone(), move || (PluginHost, spec_host.clone()));
            // A module that fails to load fails its host actor after it
            // has started, so the supervisor retries it like any crash.
            children
                .start_with(&actor, start, host.policy(), &me.get_cell())
                .await?;
            hosts.push((actor, host));
        }
        Ok(ModulesState { children, hosts })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModulesMsg::RestartChild(name) => {
                let retry = st.children.restart(&name, &me.get_cell()).await;
                if let Some(failed) = retry.schedule(&me, ModulesMsg::RestartChild) {
                    st.give_up(&me, failed);
                }
            }
            ModulesMsg::Recover(name) => {
                if ActorRef::<PluginHostMsg>::where_is(name.clone()).is_none() {
                    tracing::info!(actor = %name, "trying a failed module again");
                    st.children.reset(&name);
                    let retry = st.children.restart(&name, &me.get_cell()).await;
                    if let Some(failed) = retry.schedule(&me, ModulesMsg::RestartChild) {
                        st.give_up(&me, failed);
                    }
                }
            }
            ModulesMsg::Reload(module, reply) => {
                let Some((actor, _)) = st.hosts.iter().find(|(_, h)| h.name() == module) else {
                    let _ = reply.send(Err(format!("no module named `{module}`")));
                    return Ok(());
                };
                let actor = actor.clone();
                match ActorRef::<PluginHostMsg>::where_is(actor.clone()) {
                    // Alive: it swaps instances itself, and replies.
                    Some(host) => {
                        let _ = host.cast(PluginHostMsg::Reload(reply));
                    }
                    // Failed or between restarts: start it afresh now, and
                    // reply once it has loaded (or with why it did not).
                    None => {
                        st.children.reset(&actor);
                        let retry = st.children.restart(&actor, &me.get_cell()).await;
                        let started = ActorRef::<PluginHostMsg>::where_is(actor.clone());
                        match (retry, started) {
                            (crate::children::ChildEvent::Ignored, Some(host)) => {
                                let _ = host.cast(PluginHostMsg::Started(reply));
                            }
                            (retry, _) => {
                                if let Some(failed) = retry.schedule(&me, ModulesMsg::RestartChild)
                                {
                                    st.give_up(&me, failed);
                                }
                                let _ = reply.send(Err(format!(
                                    "module `{module}` could not be started (see the log)"
                                )));
                            }
                        }
                    }
                }
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
        if let Some(name) = event.schedule(&me, ModulesMsg::RestartChild) {
            st.give_up(&me, name);
        }
        Ok(())
    }
}
