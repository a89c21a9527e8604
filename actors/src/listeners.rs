//! The listeners supervisor: parent of one listener actor per listen
//! address, the admin API's included (`admin.<addr>`).
//!
//! It restarts a failed listener on the same socket (the connections it
//! had carry on, see [`Connections`]), and escalates one that fails too
//! often to the root, which restarts this supervisor and so every listener.
//! A config reload adds and removes listeners through
//! [`ListenersMsg::Change`]; the graceful shutdown starts here with
//! [`ListenersMsg::Drain`], before the rest of the tree stops.
//!
//! The set of sockets outlives any one incarnation of this supervisor (the
//! root restarts it with the same [`Bound`] list), so a restarted
//! supervisor listens where the config in force says, on the same sockets.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};

use crate::{
    children::{Children, StartFn, start_fn},
    listener::{Connections, Listener, ListenerArgs, ListenerMsg},
    restart::RestartPolicy,
    seams::App,
    socket::{ListenAddr, ListenSocket},
    tree::Labels,
};

/// The supervisor's name in the tree.
pub(crate) const NAME: &str = "listeners";

/// The listeners supervisor, generic over the app that serves the
/// connections of the addresses a config reload adds.
pub struct Listeners<A>(std::marker::PhantomData<fn() -> A>);

impl<A> Default for Listeners<A> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// Messages the listeners supervisor takes.
pub enum ListenersMsg {
    /// Restart a child whose backoff has elapsed.
    RestartChild(String),
    /// A config reload changed the listen addresses: start a listener for
    /// each added socket, drain and stop the removed ones.
    Change {
        /// Sockets already bound, keyed by the address as configured.
        add: Vec<(ListenAddr, ListenSocket)>,
        /// Configured addresses gone from the config.
        remove: Vec<ListenAddr>,
        /// How long a removed listener's connections may take to finish.
        drain: Duration,
        /// Answered once the added listeners run (removed ones drain on).
        reply: RpcReplyPort<()>,
    },
    /// Graceful shutdown: every listener stops accepting, its connections
    /// get `deadline` to finish, then the listeners stop. Replies with the
    /// number of connections cut at the deadline.
    Drain {
        /// How long connections may take to finish.
        deadline: Duration,
        /// Gets the number of connections cut.
        reply: RpcReplyPort<usize>,
    },
}

/// One listen socket and how its listener actor is (re)started.
#[derive(Clone)]
pub struct Bound {
    name: String,
    /// The address as configured; none for the admin API's.
    key: Option<ListenAddr>,
    /// The address actually bound (port 0 resolved).
    addr: ListenAddr,
    start: StartFn,
}

impl Bound {
    /// A listener for `socket`, serving with `app`, named
    /// `listener.<addr>` (or `admin.<addr>` when `key` is none). Its
    /// connection set outlives any one incarnation of the actor.
    pub fn new<L: App>(
        labels: &Arc<Labels>,
        key: Option<ListenAddr>,
        socket: ListenSocket,
        app: Arc<L>,
    ) -> std::io::Result<Self> {
        let addr = socket.local()?;
        let name = match key {
            Some(_) => format!("listener.{addr}"),
            None => format!("admin.{addr}"),
        };
        let socket = Arc::new(socket);
        let conns = Arc::new(Connections::default());
        let for_actor = labels.clone();
        let listen = key.clone().unwrap_or_else(|| addr.clone());
        let start = start_fn(labels, &name, None, move || {
            (
                Listener::<L>::default(),
                ListenerArgs {
                    app: app.clone(),
                    socket: socket.clone(),
                    listen: listen.clone(),
                    conns: conns.clone(),
                    labels: for_actor.clone(),
                },
            )
        });
        Ok(Self {
            name,
            key,
            addr,
            start,
        })
    }
}

/// What the listeners supervisor is started with.
pub struct ListenersArgs<A> {
    /// Serves the connections of addresses a reload adds.
    pub app: Arc<A>,
    /// How failed listeners are restarted.
    pub policy: RestartPolicy,
    /// The tree's display names.
    pub labels: Arc<Labels>,
    /// The listeners of the config in force; kept current across reloads,
    /// so that a restarted supervisor starts the same ones.
    pub bound: Arc<Mutex<Vec<Bound>>>,
}

/// Whether exits of children are failures or expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping,
}

/// The supervisor's state.
pub struct ListenersState<A> {
    children: Children,
    app: Arc<A>,
    labels: Arc<Labels>,
    bound: Arc<Mutex<Vec<Bound>>>,
    phase: Phase,
}

impl<A> ListenersState<A> {
    fn bound(&self) -> std::sync::MutexGuard<'_, Vec<Bound>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the listener actor of `b` and says so.
async fn listen(
    children: &mut Children,
    me: &ActorRef<ListenersMsg>,
    b: &Bound,
) -> Result<(), SpawnErr> {
    children
        .start(&b.name, b.start.clone(), &me.get_cell())
        .await?;
    let addr = &b.addr;
    match b.key {
        Some(_) => tracing::info!(%addr, "listening"),
        None => tracing::info!(%addr, "admin API started"),
    }
    Ok(())
}

/// Asks a listener to drain; `None` if it stopped first.
async fn drain(listener: ActorRef<ListenerMsg>, deadline: Duration) -> Option<usize> {
    let asked = listener
        .call(
            |reply| ListenerMsg::Drain { deadline, reply },
            Some(deadline + Duration::from_secs(1)),
        )
        .await;
    match asked {
        Ok(ractor::rpc::CallResult::Success(n)) => Some(n),
        _ => None,
    }
}

impl<A: App> Actor for Listeners<A> {
    type Msg = ListenersMsg;
    type State = ListenersState<A>;
    type Arguments = ListenersArgs<A>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Named before its children start: their events are logged with
        // this supervisor's path, possibly before its own start returns.
        args.labels.set(&me.get_cell(), NAME);
        let mut children = Children::new(args.policy, args.labels.clone());
        let bound = args.bound.lock().map(|b| b.clone()).unwrap_or_default();
        for b in &bound {
            listen(&mut children, &me, b).await?;
        }
        Ok(ListenersState {
            children,
            app: args.app,
            labels: args.labels,
            bound: args.bound,
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
            ListenersMsg::RestartChild(name) => {
                if st.phase == Phase::Running {
                    let retry = st.children.restart(&name, &me.get_cell()).await;
                    if let Some(failed) = retry.schedule(&me, ListenersMsg::RestartChild) {
                        return Err(format!("{failed} cannot be restarted").into());
                    }
                }
            }
            ListenersMsg::Change {
                add,
                remove,
                drain: deadline,
                reply,
            } => {
                for key in remove {
                    let gone = {
                        let mut bound = st.bound();
                        let Some(at) = bound.iter().position(|b| b.key.as_ref() == Some(&key))
                        else {
                            continue;
                        };
                        bound.remove(at)
                    };
                    let Some(actor) = st.children.forget(&gone.name) else {
                        continue;
                    };
                    tracing::info!(actor = %st.labels.path_of(&actor), "stopping (its address left the config); draining");
                    let actor = ActorRef::<ListenerMsg>::from(actor);
                    // New clients find no socket file from here on (and a
                    // later reload may bind the path again); connections
                    // already open are not touched by it.
                    key.unlink();
                    // Draining may take the whole deadline: not in here.
                    tokio::spawn(async move {
                        drain(actor.clone(), deadline).await;
                        actor.stop(Some("its address left the config".into()));
                    });
                }
                for (key, socket) in add {
                    let started =
                        match Bound::new(&st.labels, Some(key.clone()), socket, st.app.clone()) {
                            Ok(b) => listen(&mut st.children, &me, &b).await.map(|()| b),
                            Err(e) => Err(SpawnErr::StartupFailed(e.into())),
                        };
                    match started {
                        Ok(b) => st.bound().push(b),
                        Err(e) => {
                            tracing::error!(%key, error = %e, "cannot start a listener");
                            key.unlink();
                        }
                    }
                }
                let _ = reply.send(());
            }
            ListenersMsg::Drain { deadline, reply } => {
                st.phase = Phase::Stopping;
                // Dropping every start function drops the last handle on
                // each bound socket once its accept loop ends, so new
                // connections are refused from here on; a Unix socket's
                // file goes with it.
                for b in st.bound().drain(..) {
                    b.key.iter().for_each(ListenAddr::unlink);
                }
                let listening = st.children.forget_all();
                let drains = listening
                    .into_iter()
                    .map(|(_, cell)| drain(ActorRef::from(cell), deadline));
                let cut: usize = futures_util::future::join_all(drains)
                    .await
                    .into_iter()
                    .flatten()
                    .sum();
                if cut > 0 {
                    tracing::warn!(cut, "drain deadline reached; connections cut");
                }
                me.stop_children_and_wait(None, Some(Duration::from_secs(5)))
                    .await;
                let _ = reply.send(cut);
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
        match event.schedule(&me, ListenersMsg::RestartChild) {
            None => Ok(()),
            Some(name) => Err(format!("{name} failed too often").into()),
        }
    }
}
