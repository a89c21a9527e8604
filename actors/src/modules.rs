//! The modules supervisor: parent of one plugin-host actor per module.
//!
//! Each host restarts under its module's own policy. A module that fails
//! too often is not escalated: it is marked failed (its routes answer 503
//! with `Retry-After`) and tried again once its restart window has passed,
//! or at once when it is reloaded. Its siblings never notice.
//!
//! A config reload goes through here in two steps: [`ModulesMsg::Prepare`]
//! loads every added and changed module beside the running ones (one
//! failure undoes them all), and [`ModulesMsg::Commit`], sent once the new
//! routes are published, makes them the modules and stops removed ones.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::{
    children::{Children, start_fn},
    plugin_host::{PluginHost, PluginHostArgs, PluginHostMsg},
    restart::RestartPolicy,
    seams::{ModuleHost, Retired},
    tree::{self, Labels},
};

/// The supervisor's name in the tree.
pub(crate) const NAME: &str = "modules";

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
    /// Load the modules a new config adds or changes, without publishing
    /// them to any route the running config has.
    Prepare {
        /// Modules new to the config.
        add: Vec<Arc<dyn ModuleHost>>,
        /// New hosts for modules whose config or file changed.
        replace: Vec<Arc<dyn ModuleHost>>,
        /// `Err` names the module that did not load; then nothing changed.
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// The new config is published: the prepared modules are the modules
    /// now, and those named in `remove` stop.
    Commit {
        /// Modules gone from the config.
        remove: Vec<String>,
        /// Answered once done.
        reply: RpcReplyPort<()>,
    },
    /// The reload was refused: drop what [`ModulesMsg::Prepare`] loaded.
    Abort,
}

/// A module a config reload has loaded but not yet committed: its actor
/// name, its new host, and the host actor that loaded it.
enum Prepared {
    /// The running host actor holds it beside its current host.
    InHost(String, Arc<dyn ModuleHost>, ActorRef<PluginHostMsg>),
    /// A host actor was started for it (a new module, or one whose host
    /// was not running); not yet supervised under its new host.
    Started(String, Arc<dyn ModuleHost>, ActorRef<PluginHostMsg>),
}

/// What the modules supervisor is started with.
pub struct ModulesArgs {
    /// The default policy, for children without their own.
    pub policy: RestartPolicy,
    /// One host per module of the config in force. The supervisor keeps
    /// it current across config reloads, so a restarted supervisor starts
    /// the modules of the config in force, and a removed module's host is
    /// not kept alive here.
    pub hosts: Arc<std::sync::Mutex<Vec<Arc<dyn ModuleHost>>>>,
    /// The tree's display names.
    pub labels: Arc<Labels>,
}

/// The supervisor's state.
pub struct ModulesState {
    children: Children,
    /// (actor name, host) per module.
    hosts: Vec<(String, Arc<dyn ModuleHost>)>,
    /// The same hosts, shared with the spec that restarts this supervisor.
    current: Arc<std::sync::Mutex<Vec<Arc<dyn ModuleHost>>>>,
    labels: Arc<Labels>,
    /// What the reload under way has loaded.
    prepared: Vec<Prepared>,
}

/// The display name of a module's host actor.
fn actor_name(module: &str) -> String {
    format!("plugin.{module}")
}

/// How a plugin host for `host` is (re)started under the name `actor`.
fn host_start(
    labels: &Arc<Labels>,
    actor: &str,
    host: &Arc<dyn ModuleHost>,
) -> crate::children::StartFn {
    let (host, for_host) = (host.clone(), labels.clone());
    start_fn(labels, actor, None, move || {
        (
            PluginHost,
            PluginHostArgs {
                host: host.clone(),
                loaded: None,
                labels: for_host.clone(),
            },
        )
    })
}

impl ModulesState {
    /// The running host actor of the module whose actor is `actor`.
    fn running(&self, actor: &str) -> Option<ActorRef<PluginHostMsg>> {
        // The table holds plugin hosts only.
        self.children.running(actor).map(ActorRef::from)
    }

    /// Loads one module of a reload: in its running host if there is
    /// one, else in a host actor started for it.
    async fn prepare(
        &mut self,
        me: &ActorRef<ModulesMsg>,
        host: Arc<dyn ModuleHost>,
    ) -> Result<(), String> {
        let actor = actor_name(host.name());
        let failed = |e: String| format!("module `{}`: {e}", host.name());
        if let Some(running) = self.running(&actor) {
            call(&running, &actor, |reply| {
                PluginHostMsg::Prepare(host.clone(), reply)
            })
            .await
            .map_err(failed)?;
            self.prepared.push(Prepared::InHost(actor, host, running));
            return Ok(());
        }
        // Its load runs in `post_start`, which sends us the outcome. If it
        // fails the actor stops, unsupervised; or, if the table knows the
        // module (its host failed and waits for a restart), it stands in
        // for that host until the commit: no restart of the old host runs
        // beside it, and its exit restarts the old module, which is what
        // the running config wants.
        let (loaded, outcome) = tokio::sync::oneshot::channel();
        let args = PluginHostArgs {
            host: host.clone(),
            loaded: Some(loaded),
            labels: self.labels.clone(),
        };
        let started = tree::spawn_linked(&self.labels, &actor, PluginHost, args, me.get_cell())
            .await
            .map_err(|e| failed(e.to_string()))?;
        self.children.stand_in(&actor, started.get_cell());
        self.prepared
            .push(Prepared::Started(actor, host.clone(), started));
        match tokio::time::timeout(LOAD_TIMEOUT, outcome).await {
            Ok(Ok(result)) => result.map_err(failed),
            Ok(Err(_)) => Err(failed("its host stopped before loading it".into())),
            Err(_) => Err(failed(format!(
                "its load did not finish within {LOAD_TIMEOUT:?}"
            ))),
        }
    }

    fn abort(&mut self) {
        for p in self.prepared.drain(..) {
            match p {
                Prepared::InHost(_, _, h) => {
                    let _ = h.cast(PluginHostMsg::Abort);
                }
                Prepared::Started(_, _, h) => {
                    h.stop(Some("the config reload was refused".into()));
                }
            }
        }
    }

    fn commit(&mut self, me: &ActorRef<ModulesMsg>, remove: Vec<String>) {
        let here = self.labels.path_of(&me.get_cell());
        for p in std::mem::take(&mut self.prepared) {
            let start =
                |actor: &str, host: &Arc<dyn ModuleHost>| host_start(&self.labels, actor, host);
            let (actor, host) = match p {
                // The running incarnation (whichever it is now) goes on,
                // restarted with the new host from now on.
                Prepared::InHost(actor, host, h) => {
                    let _ = h.cast(PluginHostMsg::Commit);
                    let start = start(&actor, &host);
                    self.children.respec(&actor, start, host.policy());
                    (actor, host)
                }
                Prepared::Started(actor, host, h) => {
                    tracing::info!(actor = %format!("{here}/{actor}"), "started (the module joined the config)");
                    let start = start(&actor, &host);
                    self.children
                        .adopt(&actor, start, host.policy(), h.get_cell());
                    // It died before it was supervised: no event will say
                    // so again, so restart it now.
                    if h.get_status() >= ractor::ActorStatus::Stopping {
                        let _ = me.cast(ModulesMsg::RestartChild(actor.clone()));
                    }
                    (actor, host)
                }
            };
            match self.hosts.iter_mut().find(|(n, _)| *n == actor) {
                Some(entry) => std::mem::replace(&mut entry.1, host).superseded(),
                None => self.hosts.push((actor, host)),
            }
        }
        for module in remove {
            let actor = actor_name(&module);
            let gone = self.children.forget(&actor);
            self.hosts.retain(|(n, h)| {
                let keep = *n != actor;
                if !keep {
                    h.superseded();
                }
                keep
            });
            if let Some(h) = gone {
                let _ = ActorRef::<PluginHostMsg>::from(h).cast(PluginHostMsg::Release);
            }
        }
        if let Ok(mut current) = self.current.lock() {
            *current = self.hosts.iter().map(|(_, h)| h.clone()).collect();
        }
    }

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
        // Named before its children start: their events are logged with
        // this supervisor's path, possibly before its own start returns.
        args.labels.set(&me.get_cell(), NAME);
        let mut children = Children::new(args.policy, args.labels.clone());
        let mut hosts = Vec::new();
        let current = args.hosts.clone();
        let start_with = current.lock().map(|h| h.clone()).unwrap_or_default();
        for host in start_with {
            let actor = actor_name(host.name());
            let start = host_start(&args.labels, &actor, &host);
            // A module that fails to load fails its host actor after it
            // has started, so the supervisor retries it like any crash.
            children
                .start_with(&actor, start, host.policy(), &me.get_cell())
                .await?;
            hosts.push((actor, host));
        }
        Ok(ModulesState {
            children,
            hosts,
            current,
            labels: args.labels,
            prepared: Vec::new(),
        })
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
                if st.children.running(&name).is_none() {
                    tracing::info!(actor = %name, "trying a failed module again");
                    st.children.reset(&name);
                    let retry = st.children.restart(&name, &me.get_cell()).await;
                    if let Some(failed) = retry.schedule(&me, ModulesMsg::RestartChild) {
                        st.give_up(&me, failed);
                    }
                }
            }
            ModulesMsg::Prepare {
                add,
                replace,
                reply,
            } => {
                st.abort();
                let mut result = Ok(());
                for host in replace.into_iter().chain(add) {
                    result = st.prepare(&me, host).await;
                    if result.is_err() {
                        st.abort();
                        break;
                    }
                }
                let _ = reply.send(result);
            }
            ModulesMsg::Commit { remove, reply } => {
                st.commit(&me, remove);
                let _ = reply.send(());
            }
            ModulesMsg::Abort => st.abort(),
            ModulesMsg::Reload(module, reply) => {
                let Some((actor, _)) = st.hosts.iter().find(|(_, h)| h.name() == module) else {
                    let _ = reply.send(Err(format!("no module named `{module}`")));
                    return Ok(());
                };
                let actor = actor.clone();
                match st.running(&actor) {
                    // Alive: it swaps instances itself, and replies.
                    Some(host) => {
                        let _ = host.cast(PluginHostMsg::Reload(reply));
                    }
                    // Failed or between restarts: start it afresh now, and
                    // reply once it has loaded (or with why it did not).
                    None => {
                        st.children.reset(&actor);
                        let retry = st.children.restart(&actor, &me.get_cell()).await;
                        let started = st.running(&actor);
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

/// The longest a module's load may take during a config reload.
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Asks a plugin host and waits for its load: a host that stops instead
/// of answering failed to load.
async fn call(
    host: &ActorRef<PluginHostMsg>,
    name: &str,
    msg: impl FnOnce(RpcReplyPort<Result<(), String>>) -> PluginHostMsg,
) -> Result<(), String> {
    tree::ask(host, name, msg, LOAD_TIMEOUT, || {
        "it failed to load (see the log)".into()
    })
    .await?
}
