//! The root supervisor and the handle the binary holds on to ([`Tree`]).
//!
//! The root is a plain supervisor. It starts its children in order, each
//! after those it depends on: metrics, router, modules, upstreams, limits, cache, certs, acme,
//! then config (which calls those before it on a reload), then listeners, so nothing is
//! accepted before the routes and modules exist. It restarts any child
//! that fails through the shared [`Children`] table, and fails itself
//! (the server stops) when one fails too often. The graceful shutdown asks
//! the listeners supervisor to drain first, then stops the rest.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use tokio::task::JoinHandle;

use crate::{
    acme::{self, AcmeActor, AcmeArgs},
    certs::{self, CertsActor, CertsArgs},
    children::{Children, start_fn},
    config::{ConfigActor, ConfigArgs, History, Siblings},
    listeners::{self, Bound, Listeners, ListenersArgs, ListenersMsg},
    metrics::{Metrics, MetricsArgs},
    modules::{self, Modules, ModulesArgs},
    restart::RestartPolicy,
    router::{Router, RouterArgs},
    seams::{
        AdminApp, App, Authority, Certificates, ModuleHost, Reconfigure, Sweep, UpstreamGroup,
    },
    slot::Slot,
    socket::{ListenAddr, ListenSocket},
    sweeper::{self, Sweeper, SweeperArgs},
    upstreams::{self, Upstreams, UpstreamsArgs},
    wiring::TreeHandle,
};

/// Everything the tree is built from.
pub struct TreeSpec<A: App> {
    /// The control handle the tree is wired through: made first
    /// ([`TreeHandle::new`]), so that the admin API can hold it before the
    /// tree exists. One handle drives one tree at a time.
    pub handle: TreeHandle,
    /// The HTTP core, shared by every listener.
    pub app: Arc<A>,
    /// Reads and checks the config file when it is reloaded.
    pub config: Arc<dyn Reconfigure<Snapshot = A::Snapshot>>,
    /// The published snapshot: the router writes it, `app` reads it.
    pub snapshot: Arc<ArcSwap<A::Snapshot>>,
    /// Sockets already bound, one listener actor each, keyed by the
    /// address as configured (a reload that drops it closes that one).
    pub listeners: Vec<(ListenAddr, ListenSocket)>,
    /// How failed children are restarted.
    pub policy: RestartPolicy,
    /// Owns every metric series.
    pub registry: prometheus::Registry,
    /// The family modules count into (`module` and `name` labels); the
    /// metrics actor adds what out-of-process module hosts send.
    pub module_counters: prometheus::IntCounterVec,
    /// One host per configured module.
    pub modules: Vec<Arc<dyn ModuleHost>>,
    /// The admin API's bound socket and server, if the config has one.
    pub admin: Option<(std::net::TcpListener, Arc<AdminApp>)>,
    /// The TLS certificates the certificate actor keeps current
    /// ([`crate::NoCertificates`] for a tree without TLS).
    pub certs: Arc<dyn Certificates>,
    /// The certificates the ACME actor orders ([`crate::NoAuthority`]
    /// for a tree without ACME).
    pub acme: Arc<dyn Authority>,
    /// The upstream groups of the config started with (see
    /// [`crate::Plan::upstreams`]).
    pub upstreams: Vec<Arc<dyn UpstreamGroup>>,
    /// The rate-limit zones the `limits` actor sweeps ([`crate::NoSweep`]
    /// for a tree without any).
    pub limits: Arc<dyn Sweep>,
    /// The cache zones' disk tiers the `cache` actor loads and sweeps
    /// ([`crate::NoSweep`] for a tree without any).
    pub caches: Arc<dyn Sweep>,
}

/// The running tree, as held by the binary or a test.
pub struct Tree {
    root: ActorRef<RootMsg>,
    task: JoinHandle<()>,
    handle: TreeHandle,
}

impl Tree {
    /// The tree rendered one actor per line, children indented.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The root actor's cell, to walk the live tree (actors are unnamed
    /// in ractor: [`Tree::name_of`] gives their display names).
    pub fn root(&self) -> ActorCell {
        self.root.get_cell()
    }

    /// The display name of an actor of this tree.
    pub fn name_of(&self, actor: &ActorCell) -> Option<String> {
        self.handle.name_of(actor)
    }

    /// Graceful shutdown: stop accepting, let connections finish within
    /// `drain`, stop every actor. Returns the number of connections that
    /// were still open at the deadline and got cut.
    pub async fn shutdown(self, drain: Duration) -> usize {
        let cut = self
            .root
            .call(
                |reply| RootMsg::Shutdown { drain, reply },
                Some(drain + Duration::from_secs(5)),
            )
            .await;
        let _ = self.task.await;
        match cut {
            Ok(ractor::rpc::CallResult::Success(n)) => n,
            _ => 0,
        }
    }

    /// Reloads one module (see [`TreeHandle::reload_module`]).
    pub async fn reload_module(&self, module: &str) -> Result<(), String> {
        self.handle.reload_module(module).await
    }

    /// The control handle the tree was spawned with.
    pub fn handle(&self) -> TreeHandle {
        self.handle.clone()
    }

    /// Resolves when the root has stopped for any reason (e.g. it escalated).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Starts the whole tree, wired through `spec.handle`, and logs it.
pub async fn spawn_tree<A: App>(spec: TreeSpec<A>) -> Result<Tree, SpawnErr> {
    let handle = spec.handle.clone();
    if handle.wiring.in_use() {
        return Err(SpawnErr::StartupFailed(
            "this TreeHandle already drives a running tree".into(),
        ));
    }
    let (root, task) = Actor::spawn(None, Root::<A>::default(), RootArgs { spec }).await?;
    handle.wiring.log().await;
    Ok(Tree { root, task, handle })
}

/// The root supervisor.
struct Root<A>(std::marker::PhantomData<fn() -> A>);

impl<A> Default for Root<A> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// Messages the root takes.
pub(crate) enum RootMsg {
    /// Restart a child whose backoff has elapsed.
    RestartChild(String),
    /// Graceful shutdown; replies with the number of connections cut.
    Shutdown {
        drain: Duration,
        reply: RpcReplyPort<usize>,
    },
}

struct RootArgs<A: App> {
    spec: TreeSpec<A>,
}

/// Whether exits of children are failures or expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping,
}

struct RootState {
    children: Children,
    phase: Phase,
    /// The listeners supervisor's current reference, for the shutdown.
    listeners: Arc<Slot<ListenersMsg>>,
}

impl<A: App> Actor for Root<A> {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs<A>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let RootArgs { spec } = args;
        let wiring = spec.handle.wiring.clone();
        let labels = wiring.labels.clone();
        let cell = me.get_cell();
        labels.set(&cell, "troupe");
        wiring.root.store(Some(Arc::new(cell.clone())));
        let mut children = Children::new(spec.policy, labels.clone());

        let metrics = MetricsArgs {
            registry: spec.registry.clone(),
            module_counters: spec.module_counters.clone(),
        };
        let start = start_fn(
            &labels,
            "metrics",
            Some(wiring.metrics.clone()),
            move || (Metrics, metrics.clone()),
        );
        children.start("metrics", start, &cell).await?;

        let router = Arc::new(Slot::new("router"));
        let slot = spec.snapshot.clone();
        let start = start_fn(&labels, "router", Some(router.clone()), move || {
            (Router::default(), RouterArgs { slot: slot.clone() })
        });
        children.start("router", start, &cell).await?;

        let (policy, for_modules) = (spec.policy, labels.clone());
        let hosts = Arc::new(std::sync::Mutex::new(spec.modules));
        let start = start_fn(
            &labels,
            modules::NAME,
            Some(wiring.modules.clone()),
            move || {
                (
                    Modules,
                    ModulesArgs {
                        policy,
                        hosts: hosts.clone(),
                        labels: for_modules.clone(),
                    },
                )
            },
        );
        children.start(modules::NAME, start, &cell).await?;

        let groups = Arc::new(std::sync::Mutex::new(spec.upstreams));
        let upstreams = Arc::new(Slot::new(upstreams::NAME));
        let (for_upstreams, labels_up) = (groups.clone(), labels.clone());
        let start = start_fn(
            &labels,
            upstreams::NAME,
            Some(upstreams.clone()),
            move || {
                (
                    Upstreams,
                    UpstreamsArgs {
                        policy,
                        groups: for_upstreams.clone(),
                        labels: labels_up.clone(),
                    },
                )
            },
        );
        children.start(upstreams::NAME, start, &cell).await?;

        for (name, state) in [
            (sweeper::LIMITS, spec.limits.clone()),
            (sweeper::CACHE, spec.caches.clone()),
        ] {
            let args = SweeperArgs { state };
            let start = start_fn(&labels, name, None, move || (Sweeper, args.clone()));
            children.start(name, start, &cell).await?;
        }

        let for_certs = CertsArgs {
            source: spec.certs.clone(),
        };
        let start = start_fn(
            &labels,
            certs::NAME,
            Some(wiring.certs.clone()),
            move || (CertsActor, for_certs.clone()),
        );
        children.start(certs::NAME, start, &cell).await?;

        let for_acme = AcmeArgs {
            authority: spec.acme.clone(),
            certs: wiring.certs.clone(),
        };
        let start = start_fn(&labels, acme::NAME, Some(wiring.acme.clone()), move || {
            (AcmeActor, for_acme.clone())
        });
        children.start(acme::NAME, start, &cell).await?;

        let history = Arc::new(History::new(&spec.registry)?);
        let source = spec.config.clone();
        let siblings = Arc::new(Siblings {
            modules: wiring.modules.clone(),
            router,
            listeners: wiring.listeners.clone(),
            certs: wiring.certs.clone(),
            acme: wiring.acme.clone(),
            upstreams,
            groups,
            labels: labels.clone(),
            root: cell.clone(),
        });
        let start = start_fn(&labels, "config", Some(wiring.config.clone()), move || {
            (
                ConfigActor::default(),
                ConfigArgs {
                    source: source.clone(),
                    history: history.clone(),
                    siblings: siblings.clone(),
                },
            )
        });
        children.start("config", start, &cell).await?;

        let mut bound = Vec::new();
        for (key, socket) in spec.listeners {
            bound.push(Bound::new(&labels, Some(key), socket, spec.app.clone())?);
        }
        if let Some((socket, admin)) = spec.admin {
            bound.push(Bound::new(&labels, None, socket.into(), admin)?);
        }
        let bound = Arc::new(std::sync::Mutex::new(bound));
        let (app, for_listeners) = (spec.app, labels.clone());
        let start = start_fn(
            &labels,
            listeners::NAME,
            Some(wiring.listeners.clone()),
            move || {
                (
                    Listeners::<A>::default(),
                    ListenersArgs {
                        app: app.clone(),
                        policy,
                        labels: for_listeners.clone(),
                        bound: bound.clone(),
                    },
                )
            },
        );
        children.start(listeners::NAME, start, &cell).await?;

        Ok(RootState {
            children,
            phase: Phase::Running,
            listeners: wiring.listeners.clone(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::RestartChild(name) => {
                if st.phase == Phase::Running {
                    let retry = st.children.restart(&name, &me.get_cell()).await;
                    if let Some(failed) = retry.schedule(&me, RootMsg::RestartChild) {
                        return Err(format!(
                            "{failed} cannot be restarted; the server cannot go on"
                        )
                        .into());
                    }
                }
            }
            RootMsg::Shutdown { drain, reply } => {
                st.phase = Phase::Stopping;
                // Listeners first: nothing new is accepted while the rest
                // of the tree still serves the connections that drain.
                let cut = st
                    .listeners
                    .ask(
                        |reply| ListenersMsg::Drain {
                            deadline: drain,
                            reply,
                        },
                        drain + Duration::from_secs(2),
                        String::new,
                    )
                    .await
                    .unwrap_or(0);
                me.stop_children_and_wait(None, Some(Duration::from_secs(5)))
                    .await;
                let _ = reply.send(cut);
                me.stop(None);
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
        let event = st
            .children
            .on_event(&me.get_cell(), &evt, st.phase == Phase::Stopping);
        match event.schedule(&me, RootMsg::RestartChild) {
            None => Ok(()),
            Some(name) => Err(format!("{name} failed too often; the server cannot go on").into()),
        }
    }
}
