//! The root supervisor and the handle the binary holds on to ([`Tree`]).
//!
//! The root starts its children in order (config, metrics, router, modules,
//! then one listener per address, so nothing is accepted before the routes
//! exist), restarts any that fail through the shared [`Children`] table, and
//! runs the graceful shutdown: listeners close first, then drain, then the
//! rest of the tree stops.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use tokio::task::JoinHandle;

use crate::{
    children::{Children, start_fn},
    config::{Applied, ConfigActor, ConfigArgs, ConfigMsg, History, ReloadStatus, Trigger},
    listener::{Connections, Listener, ListenerArgs, ListenerMsg},
    metrics::Metrics,
    modules::{Modules, ModulesArgs, ModulesMsg},
    restart::RestartPolicy,
    router::{Router, RouterArgs},
    seams::{AdminApp, App, ModuleHost, Reconfigure},
    tree::{self, Names},
};

/// Everything the tree is built from.
pub struct TreeSpec<A: App> {
    /// The HTTP core, shared by every listener.
    pub app: Arc<A>,
    /// Reads and checks the config file when it is reloaded.
    pub config: Arc<dyn Reconfigure<Snapshot = A::Snapshot>>,
    /// The published snapshot: the router writes it, `app` reads it.
    pub snapshot: Arc<ArcSwap<A::Snapshot>>,
    /// Sockets already bound, one listener actor each, keyed by the
    /// address as configured (a reload that drops it closes that one).
    pub listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    /// How failed children are restarted.
    pub policy: RestartPolicy,
    /// Owns every metric series.
    pub registry: prometheus::Registry,
    /// One host per configured module.
    pub modules: Vec<Arc<dyn ModuleHost>>,
    /// The admin API's bound socket and server, if the config has one.
    pub admin: Option<(std::net::TcpListener, Arc<AdminApp>)>,
}

/// The running tree, as held by the binary or a test.
pub struct Tree {
    root: ActorRef<RootMsg>,
    handle: JoinHandle<()>,
    names: Names,
}

impl Tree {
    /// The tree rendered one actor per line, children indented.
    pub fn render(&self) -> String {
        tree::render(&self.root.get_cell())
    }

    /// The root actor's cell, to walk the live tree.
    pub fn root(&self) -> ActorCell {
        self.root.get_cell()
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
        let _ = self.handle.await;
        match cut {
            Ok(ractor::rpc::CallResult::Success(n)) => n,
            _ => 0,
        }
    }

    /// Reloads one module (see [`TreeHandle::reload_module`]).
    pub async fn reload_module(&self, module: &str) -> Result<(), String> {
        self.handle().reload_module(module).await
    }

    /// A cloneable handle for control calls (the admin API holds one).
    pub fn handle(&self) -> TreeHandle {
        TreeHandle {
            names: self.names.clone(),
        }
    }

    /// Resolves when the root has stopped for any reason (e.g. it escalated).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.handle).await;
    }
}

/// Starts the whole tree and logs it.
pub async fn spawn_tree<A: App>(spec: TreeSpec<A>) -> Result<Tree, SpawnErr> {
    let names = Names::next();
    let (root, handle) = Actor::spawn(
        Some(names.of("troupe")),
        Root::<A>::default(),
        RootArgs {
            spec,
            names: names.clone(),
        },
    )
    .await?;
    let tree = Tree {
        root,
        handle,
        names,
    };
    tree::log(&tree.root.get_cell()).await;
    Ok(tree)
}

/// Control calls into a running tree, by the registered names of its
/// actors; cheap to clone and to keep.
#[derive(Clone, Debug)]
pub struct TreeHandle {
    names: Names,
}

impl TreeHandle {
    /// Reloads the config file (see the config actor): applied in full,
    /// or refused with the reason and nothing changed.
    pub async fn reload_config(&self, trigger: Trigger) -> Result<Applied, String> {
        let config = ActorRef::<ConfigMsg>::where_is(self.names.of("config"))
            .ok_or("the config actor is not running")?;
        tree::ask(
            &config,
            |reply| ConfigMsg::Reload {
                trigger,
                reply: Some(reply),
            },
            Duration::from_secs(120),
            || "the config actor stopped during the reload".into(),
        )
        .await?
    }

    /// The config generation in force and the last reload's outcome.
    pub async fn config_status(&self) -> Option<ReloadStatus> {
        let config = ActorRef::<ConfigMsg>::where_is(self.names.of("config"))?;
        tree::ask(
            &config,
            ConfigMsg::Status,
            Duration::from_secs(5),
            String::new,
        )
        .await
        .ok()
    }

    /// Reloads one module: a new instance is loaded and swapped in while
    /// requests in flight finish on the old one. On failure the old
    /// instance keeps serving and the reason is returned.
    pub async fn reload_module(&self, module: &str) -> Result<(), String> {
        let modules = ActorRef::<ModulesMsg>::where_is(self.names.of("modules"))
            .ok_or("the modules supervisor is not running")?;
        let name = module.to_owned();
        // The host stopped before answering: its load failed.
        let stopped = || format!("module `{module}` failed to load (see the log)");
        let result = tree::ask(
            &modules,
            |reply| ModulesMsg::Reload(name, reply),
            Duration::from_secs(30),
            stopped,
        )
        .await?;
        if result.is_ok()
            && let Some(root) = ractor::registry::where_is(self.names.of("troupe"))
        {
            tree::log(&root).await;
        }
        result
    }
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
    /// A config reload changed the listen addresses: start a listener for
    /// each added socket, drain and stop the removed ones.
    Listeners {
        add: Vec<(SocketAddr, std::net::TcpListener)>,
        remove: Vec<SocketAddr>,
        drain: Duration,
        reply: RpcReplyPort<()>,
    },
}

struct RootArgs<A: App> {
    spec: TreeSpec<A>,
    names: Names,
}

/// Starts a listener actor for `socket` as a child of the root. Its
/// connection set outlives any one incarnation, so a restarted listener
/// still drains the connections of the one before.
async fn start_listener<L: App>(
    children: &mut Children,
    root: &ActorCell,
    name: &str,
    socket: std::net::TcpListener,
    app: Arc<L>,
) -> Result<ActorCell, SpawnErr> {
    let socket = Arc::new(socket);
    let conns = Arc::new(Connections::default());
    children
        .start(
            name,
            start_fn(name.to_owned(), move || {
                (
                    Listener::<L>::default(),
                    ListenerArgs {
                        app: app.clone(),
                        socket: socket.clone(),
                        conns: conns.clone(),
                    },
                )
            }),
            root,
        )
        .await
}

/// Starts the listener actor of a configured address.
async fn listen<A: App>(
    children: &mut Children,
    root: &ActorCell,
    names: &Names,
    key: SocketAddr,
    socket: std::net::TcpListener,
    app: Arc<A>,
) -> Result<Listening, SpawnErr> {
    let addr = socket
        .local_addr()
        .map_err(|e| SpawnErr::StartupFailed(e.into()))?;
    let name = names.of(&format!("listener.{addr}"));
    let actor = start_listener(children, root, &name, socket, app).await?;
    tracing::info!(%addr, "listening");
    Ok(Listening {
        name,
        key: Some(key),
        actor: actor.into(),
    })
}

/// Whether exits of children are failures or expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping,
}

struct RootState<A> {
    children: Children,
    listeners: Vec<Listening>,
    phase: Phase,
    app: Arc<A>,
    names: Names,
}

/// One listener actor: its name, the configured address it serves (none
/// for the admin API's), and its handle.
struct Listening {
    name: String,
    key: Option<SocketAddr>,
    actor: ActorRef<ListenerMsg>,
}

impl<A: App> Actor for Root<A> {
    type Msg = RootMsg;
    type State = RootState<A>;
    type Arguments = RootArgs<A>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let RootArgs { spec, names } = args;
        let cell = me.get_cell();
        let mut children = Children::new(spec.policy);

        let history = Arc::new(History::new(&spec.registry)?);
        let (source, config_names) = (spec.config.clone(), names.clone());
        let name = names.of("config");
        children
            .start(
                &name,
                start_fn(name.clone(), move || {
                    (
                        ConfigActor::default(),
                        ConfigArgs {
                            source: source.clone(),
                            history: history.clone(),
                            names: config_names.clone(),
                        },
                    )
                }),
                &cell,
            )
            .await?;

        let registry = spec.registry.clone();
        let name = names.of("metrics");
        children
            .start(
                &name,
                start_fn(name.clone(), move || (Metrics, registry.clone())),
                &cell,
            )
            .await?;

        let slot = spec.snapshot.clone();
        let name = names.of("router");
        children
            .start(
                &name,
                start_fn(name.clone(), move || {
                    (Router::default(), RouterArgs { slot: slot.clone() })
                }),
                &cell,
            )
            .await?;

        let policy = spec.policy;
        let hosts = Arc::new(std::sync::Mutex::new(spec.modules));
        let suffix = names.suffix.clone();
        let name = names.of("modules");
        children
            .start(
                &name,
                start_fn(name.clone(), move || {
                    (
                        Modules,
                        ModulesArgs {
                            policy,
                            hosts: hosts.clone(),
                            suffix: suffix.clone(),
                        },
                    )
                }),
                &cell,
            )
            .await?;

        let mut listeners = Vec::new();
        for (key, socket) in spec.listeners {
            listeners
                .push(listen(&mut children, &cell, &names, key, socket, spec.app.clone()).await?);
        }
        if let Some((socket, app)) = spec.admin {
            let addr = socket.local_addr()?;
            let name = names.of(&format!("admin.{addr}"));
            let listener = start_listener(&mut children, &cell, &name, socket, app).await?;
            tracing::info!(%addr, "admin API started");
            listeners.push(Listening {
                name,
                key: None,
                actor: listener.into(),
            });
        }
        Ok(RootState {
            children,
            listeners,
            phase: Phase::Running,
            app: spec.app,
            names,
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
                    // A restarted listener is a new actor: refresh its handle.
                    if let Some(entry) = st.listeners.iter_mut().find(|l| l.name == name)
                        && let Some(fresh) = ActorRef::<ListenerMsg>::where_is(name.clone())
                    {
                        entry.actor = fresh;
                    }
                }
            }
            RootMsg::Shutdown { drain, reply } => {
                st.phase = Phase::Stopping;
                // Forgetting the specs drops the last handle on each bound
                // socket once its accept loop ends, so new connections are
                // refused from here on.
                for l in &st.listeners {
                    st.children.forget(&l.name);
                }
                let drains = st.listeners.drain(..).map(|l| async move {
                    l.actor
                        .call(
                            |reply| ListenerMsg::Drain {
                                deadline: drain,
                                reply,
                            },
                            Some(drain + Duration::from_secs(1)),
                        )
                        .await
                });
                let cut: usize = futures_util::future::join_all(drains)
                    .await
                    .into_iter()
                    .map(|r| match r {
                        Ok(ractor::rpc::CallResult::Success(n)) => n,
                        _ => 0,
                    })
                    .sum();
                if cut > 0 {
                    tracing::warn!(cut, "drain deadline reached; connections cut");
                }
                me.stop_children_and_wait(None, Some(Duration::from_secs(5)))
                    .await;
                let _ = reply.send(cut);
                me.stop(None);
            }
            RootMsg::Listeners {
                add,
                remove,
                drain,
                reply,
            } => {
                for key in remove {
                    let Some(at) = st.listeners.iter().position(|l| l.key == Some(key)) else {
                        continue;
                    };
                    let gone = st.listeners.remove(at);
                    st.children.forget(&gone.name);
                    tracing::info!(actor = %tree::path_of(&gone.actor.get_cell()), "stopping (its address left the config); draining");
                    // Draining may take the whole deadline: not in here.
                    tokio::spawn(async move {
                        let _ = gone
                            .actor
                            .call(
                                |reply| ListenerMsg::Drain {
                                    deadline: drain,
                                    reply,
                                },
                                Some(drain + Duration::from_secs(1)),
                            )
                            .await;
                        gone.actor.stop(Some("its address left the config".into()));
                    });
                }
                let cell = me.get_cell();
                for (key, socket) in add {
                    match listen(
                        &mut st.children,
                        &cell,
                        &st.names,
                        key,
                        socket,
                        st.app.clone(),
                    )
                    .await
                    {
                        Ok(l) => st.listeners.push(l),
                        Err(e) => tracing::error!(%key, error = %e, "cannot start a listener"),
                    }
                }
                let _ = reply.send(());
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
