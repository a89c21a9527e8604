//! The config actor (the config watcher): decides when the configuration
//! is reloaded, and applies each reload in order.
//!
//! A reload is triggered by SIGHUP, by the admin API, or by a change to a
//! watched file (notify, debounced; the directory is watched, since editors
//! save by renaming a temp file over the old one). One reload runs at a
//! time, since this actor takes one message at a time:
//!
//! 1. the HTTP core reads and checks the file in full ([`Reconfigure::plan`]);
//!    a bad config stops here, and nothing has changed;
//! 2. the modules supervisor loads the added and changed modules beside the
//!    running ones; a module that fails to load refuses the whole reload;
//! 3. the router publishes the new snapshot: the next request sees it,
//!    requests in flight finish on the old one (and on its module
//!    instances, which shut down when the last such request is done);
//! 4. removed module hosts stop, changed ones switch to their new instance;
//! 5. the upstreams supervisor starts, updates and stops its group actors
//!    to match the new upstream groups;
//! 6. added listeners start accepting, removed ones drain (the listeners
//!    supervisor).
//!
//! It reaches the router, modules and listeners supervisors through
//! `Slot`s that their supervisor (the root) refreshes on every restart
//! (`Siblings`), so a reload after a sibling's restart reaches the new
//! incarnation.
//!
//! Every outcome is logged, counted (`troupe_config_reloads_total`,
//! `troupe_config_reload_failures_total`) and kept for the admin API.

use std::{
    marker::PhantomData,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::{
    acme::AcmeMsg,
    certs::CertsMsg,
    listeners::ListenersMsg,
    modules::ModulesMsg,
    router::RouterMsg,
    seams::{Plan, Reconfigure, UpstreamGroup},
    slot::Slot,
    tree,
    upstreams::UpstreamsMsg,
    watch::FileWatch,
};

/// The longest any one step of a reload may take (loading a module that
/// compiles a WebAssembly component is the slow one).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The config actor, generic over the snapshot its configs compile into.
pub struct ConfigActor<S>(PhantomData<fn() -> S>);

impl<S> Default for ConfigActor<S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP (`troupe -s reload`).
    Signal,
    /// `POST /config/reload` on the admin API.
    Admin,
    /// A watched file changed.
    Watch,
    /// The ACME actor got a new certificate (certificate reloads only).
    Acme,
}

impl Trigger {
    /// A word for logs and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
            Trigger::Watch => "file change",
            Trigger::Acme => "acme",
        }
    }
}

/// A reload that was applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The config generation now in force (1 is the one started with).
    pub generation: u64,
    /// What changed, one line each.
    pub changes: Vec<String>,
}

/// The last reload, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What asked for it.
    pub trigger: Trigger,
    /// When it finished.
    pub at: SystemTime,
    /// How long it took.
    pub took: Duration,
    /// What it changed, or why it was refused.
    pub result: Result<Applied, String>,
}

/// The reload history the config actor keeps.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// The config generation in force.
    pub generation: u64,
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused.
    pub refused: u64,
    /// The most recent reload, if any.
    pub last: Option<Outcome>,
}

/// Messages the config actor takes.
pub enum ConfigMsg {
    /// Reload the config; the reply (if any) gets what changed, or why
    /// the reload was refused.
    Reload {
        /// What asked for it.
        trigger: Trigger,
        /// Where the outcome goes.
        reply: Option<RpcReplyPort<Result<Applied, String>>>,
    },
    /// Replies with the reload history.
    Status(RpcReplyPort<ReloadStatus>),
}

/// What the config actor starts with.
pub struct ConfigArgs<S> {
    /// Reads and checks the config file.
    pub source: Arc<dyn Reconfigure<Snapshot = S>>,
    /// Outlives any one incarnation of the actor.
    pub history: Arc<History>,
    /// The siblings a reload calls, and the tree to log after it.
    pub(crate) siblings: Arc<Siblings<S>>,
}

/// What the config actor reaches: the current reference of each sibling a
/// reload calls (kept by the root, refreshed on their restarts), and the
/// tree to log after a reload.
pub(crate) struct Siblings<S> {
    pub(crate) modules: Arc<Slot<ModulesMsg>>,
    pub(crate) router: Arc<Slot<RouterMsg<S>>>,
    pub(crate) listeners: Arc<Slot<ListenersMsg>>,
    /// Told to watch again after a reload (the config may name other
    /// certificate files).
    pub(crate) certs: Arc<Slot<CertsMsg>>,
    /// Told to check after a reload (the config may add ACME servers).
    pub(crate) acme: Arc<Slot<AcmeMsg>>,
    /// Told to reconcile its group actors with `groups` after a reload.
    pub(crate) upstreams: Arc<Slot<UpstreamsMsg>>,
    /// The upstream groups in force, which a reload replaces; shared with
    /// the `upstreams` supervisor, so that one restarted mid-reload
    /// starts the new ones.
    pub(crate) groups: Arc<std::sync::Mutex<Vec<Arc<dyn UpstreamGroup>>>>,
    pub(crate) labels: Arc<tree::Labels>,
    pub(crate) root: ractor::ActorCell,
}

/// The reload history and its series: made once per tree, so a restarted
/// config actor counts on from where the last one was.
pub struct History {
    status: std::sync::Mutex<ReloadStatus>,
    reloads: prometheus::IntCounter,
    failures: prometheus::IntCounter,
    generation: prometheus::IntGauge,
}

impl History {
    /// Generation 1, with its series registered in `registry`.
    pub fn new(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let reloads =
            prometheus::IntCounter::new("troupe_config_reloads_total", "Config reloads applied.")?;
        let failures = prometheus::IntCounter::new(
            "troupe_config_reload_failures_total",
            "Config reloads refused (a bad file, a module that did not load, an address in use).",
        )?;
        let generation = prometheus::IntGauge::new(
            "troupe_config_generation",
            "The config generation in force (1 at start-up).",
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        generation.set(1);
        Ok(Self {
            status: std::sync::Mutex::new(ReloadStatus {
                generation: 1,
                ..ReloadStatus::default()
            }),
            reloads,
            failures,
            generation,
        })
    }

    fn status(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one reload's outcome; returns it as the caller's reply.
    fn record(
        &self,
        trigger: Trigger,
        took: Duration,
        result: Result<Vec<String>, String>,
    ) -> Result<Applied, String> {
        let mut status = self.status();
        let result = result.map(|changes| Applied {
            generation: status.generation + 1,
            changes,
        });
        match &result {
            Ok(applied) => {
                status.generation = applied.generation;
                status.applied += 1;
                self.reloads.inc();
                self.generation.set(applied.generation as i64);
            }
            Err(_) => {
                status.refused += 1;
                self.failures.inc();
            }
        }
        status.last = Some(Outcome {
            trigger,
            at: SystemTime::now(),
            took,
            result: result.clone(),
        });
        result
    }
}

/// The config actor's state.
pub struct ConfigState<S> {
    source: Arc<dyn Reconfigure<Snapshot = S>>,
    siblings: Arc<Siblings<S>>,
    history: Arc<History>,
    /// Dropping it stops the watch.
    watcher: Option<FileWatch>,
}

impl<S: Send + Sync + 'static> Actor for ConfigActor<S> {
    type Msg = ConfigMsg;
    type State = ConfigState<S>;
    type Arguments = ConfigArgs<S>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: ConfigArgs<S>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let watcher = watch(&me, &args.source.watched());
        Ok(ConfigState {
            source: args.source,
            siblings: args.siblings,
            history: args.history,
            watcher,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConfigMsg::Status(reply) => {
                let _ = reply.send(st.history.status().clone());
            }
            ConfigMsg::Reload { trigger, reply } => {
                let started = std::time::Instant::now();
                let result = match st.source.plan().await {
                    Ok(plan) => apply(plan, &*st.source, &st.siblings).await,
                    Err(e) => Err(e),
                };
                let took = started.elapsed();
                let result = st.history.record(trigger, took, result);
                match &result {
                    Ok(applied) => {
                        tracing::info!(
                            trigger = trigger.as_str(),
                            generation = applied.generation,
                            took_ms = took.as_secs_f64() * 1e3,
                            changes = %describe(&applied.changes),
                            "config reloaded"
                        );
                        tree::log(&st.siblings.labels, &st.siblings.root).await;
                        // The set of watched files may have changed.
                        match &mut st.watcher {
                            Some(w) => w.set(&st.source.watched()),
                            None => st.watcher = watch(&me, &st.source.watched()),
                        }
                        if let Some(certs) = st.siblings.certs.get() {
                            let _ = certs.cast(CertsMsg::Rewatch);
                        }
                        if let Some(acme) = st.siblings.acme.get() {
                            let _ = acme.cast(AcmeMsg::Check);
                        }
                    }
                    Err(error) => {
                        tracing::error!(
                            trigger = trigger.as_str(),
                            %error,
                            "config reload refused; the old config keeps serving"
                        );
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
        Ok(())
    }
}

fn describe(changes: &[String]) -> String {
    if changes.is_empty() {
        "nothing changed".to_owned()
    } else {
        changes.join("; ")
    }
}

/// Applies a checked plan, in the order the module doc gives. Returns
/// what changed, or why nothing did.
async fn apply<S: Send + Sync + 'static>(
    plan: Plan<S>,
    source: &dyn Reconfigure<Snapshot = S>,
    siblings: &Siblings<S>,
) -> Result<Vec<String>, String> {
    let Plan {
        snapshot,
        add_modules,
        replace_modules,
        remove_modules,
        add_listeners,
        remove_listeners,
        drain,
        changes,
        upstreams,
    } = plan;
    let modules = &siblings.modules;
    if !add_modules.is_empty() || !replace_modules.is_empty() {
        let prepared = ask(modules, |reply| ModulesMsg::Prepare {
            add: add_modules,
            replace: replace_modules,
            reply,
        })
        .await
        .and_then(|r| r);
        if let Err(e) = prepared {
            if let Some(modules) = modules.get() {
                let _ = modules.cast(ModulesMsg::Abort);
            }
            return Err(e);
        }
    }
    ask(&siblings.router, |reply| {
        RouterMsg::Install(snapshot.clone(), reply)
    })
    .await?;
    source.installed(&snapshot);
    ask(modules, |reply| ModulesMsg::Commit {
        remove: remove_modules,
        reply,
    })
    .await?;
    if let Ok(mut groups) = siblings.groups.lock() {
        *groups = upstreams;
    }
    // The new groups are in force whatever happens here: a supervisor
    // that is restarting starts them, so its absence refuses nothing.
    if let Err(error) = ask(&siblings.upstreams, UpstreamsMsg::Reconcile).await {
        tracing::warn!(%error, "the upstream health actors will catch up when their supervisor is back");
    }
    if !add_listeners.is_empty() || !remove_listeners.is_empty() {
        ask(&siblings.listeners, |reply| ListenersMsg::Change {
            add: add_listeners,
            remove: remove_listeners,
            drain,
            reply,
        })
        .await?;
    }
    Ok(changes)
}

/// One step of a reload: a call into another actor of the tree.
async fn ask<M: ractor::Message, T: Send + 'static>(
    actor: &Slot<M>,
    msg: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, String> {
    actor
        .ask(msg, STEP_TIMEOUT, || {
            format!("{} stopped during the reload", actor.name())
        })
        .await
}

/// Watches `files`, reloading the config when one of them changes.
fn watch(me: &ActorRef<ConfigMsg>, files: &[PathBuf]) -> Option<FileWatch> {
    let me = me.clone();
    FileWatch::new(files, "the config file", move |path| {
        tracing::info!(file = %path.display(), "watched file changed; reloading the config");
        let _ = me.cast(ConfigMsg::Reload {
            trigger: Trigger::Watch,
            reply: None,
        });
    })
}
