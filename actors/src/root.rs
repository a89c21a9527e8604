//! The root supervisor and the handle the binary holds on to ([`Tree`]).
//!
//! The root starts its children in order (config, metrics, router, modules,
//! then one listener per address, so nothing is accepted before the routes
//! exist), restarts any that fail through the shared [`Children`] table, and
//! runs the graceful shutdown: listeners close first, then drain, then the
//! rest of the tree stops.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use tokio::task::JoinHandle;

use crate::{
    children::{Children, start_fn},
    config::ConfigActor,
    listener::{Connections, Listener, ListenerArgs, ListenerMsg},
    metrics::Metrics,
    modules::{Modules, ModulesArgs, ModulesMsg},
    restart::RestartPolicy,
    router::{Router, RouterArgs},
    seams::{AdminApp, App, ModuleHost},
    tree,
};

/// Everything the tree is built from.
pub struct TreeSpec<A: App> {
    /// The HTTP core, shared by every listener.
    pub app: Arc<A>,
    /// The checked config now in force.
    pub config: Arc<A::Config>,
    /// The published snapshot: the router writes it, `app` reads it.
    pub snapshot: Arc<ArcSwap<A::Snapshot>>,
    /// Sockets already bound, one listener actor each.
    pub listeners: Vec<std::net::TcpListener>,
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

/// Registered names are process-wide in ractor, so a second tree in the same
/// process (tests run several) gets a `#N` suffix on every name.
#[derive(Clone, Debug)]
struct Names {
    suffix: String,
}

impl Names {
    fn next() -> Self {
        static TREES: AtomicU32 = AtomicU32::new(0);
        let n = TREES.fetch_add(1, Ordering::Relaxed);
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("#{n}")
        };
        Self { suffix }
    }

    fn of(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }
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
    tree::settle(&tree.root.get_cell(), Duration::from_secs(1)).await;
    tracing::info!("supervision tree:\n{}", tree.render().trim_end());
    Ok(tree)
}

/// Control calls into a running tree, by the registered names of its
/// actors; cheap to clone and to keep.
#[derive(Clone, Debug)]
pub struct TreeHandle {
    names: Names,
}

impl TreeHandle {
    /// Reloads one module: a new instance is loaded and swapped in while
    /// requests in flight finish on the old one. On failure the old
    /// instance keeps serving and the reason is returned.
    pub async fn reload_module(&self, module: &str) -> Result<(), String> {
        let modules = ActorRef::<ModulesMsg>::where_is(self.names.of("modules"))
            .ok_or("the modules supervisor is not running")?;
        let module_name = module;
        let module = module.to_owned();
        match modules
            .call(
                |reply| ModulesMsg::Reload(module, reply),
                Some(Duration::from_secs(30)),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            Ok(ractor::rpc::CallResult::Timeout) => Err("the reload timed out".into()),
            // The host stopped before answering: its load failed.
            Ok(ractor::rpc::CallResult::SenderError) => Err(format!(
                "module `{name}` failed to load (see the log)",
                name = module_name
            )),
            Err(e) => Err(e.to_string()),
        }
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
enum RootMsg {
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

/// Whether exits of children are failures or expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping,
}

struct RootState {
    children: Children,
    listeners: Vec<(String, ActorRef<ListenerMsg>)>,
    phase: Phase,
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
        let RootArgs { spec, names } = args;
        let cell = me.get_cell();
        let mut children = Children::new(spec.policy);

        let config = spec.config.clone();
        let name = names.of("config");
        children
            .start(
                &name,
                start_fn(name.clone(), move || {
                    (ConfigActor::default(), config.clone())
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
        let hosts = spec.modules;
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
        for socket in spec.listeners {
            let addr = socket.local_addr()?;
            let name = names.of(&format!("listener.{addr}"));
            let listener =
                start_listener(&mut children, &cell, &name, socket, spec.app.clone()).await?;
            tracing::info!(%addr, "listening");
            listeners.push((name, listener.into()));
        }
        if let Some((socket, app)) = spec.admin {
            let addr = socket.local_addr()?;
            let name = names.of(&format!("admin.{addr}"));
            let listener = start_listener(&mut children, &cell, &name, socket, app).await?;
            tracing::info!(%addr, "admin API started");
            listeners.push((name, listener.into()));
        }
        Ok(RootState {
            children,
            listeners,
            phase: Phase::Running,
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
                    if let Some(entry) = st.listeners.iter_mut().find(|(n, _)| *n == name)
                        && let Some(fresh) = ActorRef::<ListenerMsg>::where_is(name.clone())
                    {
                        entry.1 = fresh;
                    }
                }
            }
            RootMsg::Shutdown { drain, reply } => {
                st.phase = Phase::Stopping;
                // Forgetting the specs drops the last handle on each bound
                // socket once its accept loop ends, so new connections are
                // refused from here on.
                for (name, _) in &st.listeners {
                    st.children.forget(name);
                }
                let drains = st.listeners.drain(..).map(|(_, l)| async move {
                    l.call(
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
