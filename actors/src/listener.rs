//! A listener actor: one per listen address, parent of its connections.
//!
//! The accept loop runs as a task the actor owns. Each accepted connection is
//! a task in the listener's [`TaskTracker`] rather than an actor: spawning an
//! actor per connection costs several times a plain task (see
//! `BENCHMARKS.md`), and a connection has no mailbox worth having. A panic
//! in a connection is caught and reported to this actor as a message, so
//! connections are still supervised under their listener.

use std::{
    net::SocketAddr,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use tokio_util::{
    sync::{CancellationToken, DropGuard},
    task::TaskTracker,
};

use crate::{
    seams::{App, ConnShutdown},
    socket::{Acceptor, ListenAddr, ListenSocket},
    tree::Labels,
};

/// The listener actor, generic over the app that serves its connections.
pub struct Listener<A>(std::marker::PhantomData<fn() -> A>);

impl<A> Default for Listener<A> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// Messages a listener takes.
#[derive(Debug)]
pub enum ListenerMsg {
    /// Stop accepting, ask every connection to finish, and wait for them up
    /// to the deadline. Replies with how many were still open at the end.
    Drain {
        /// How long connections may take to finish.
        deadline: Duration,
        /// Gets the number of connections cut at the deadline.
        reply: RpcReplyPort<usize>,
    },
    /// A connection task panicked (sent by the task itself).
    ConnectionPanicked {
        /// The client address (none on a Unix socket).
        peer: Option<SocketAddr>,
        /// The panic message.
        reason: String,
    },
}

/// The connections of one listen address. They outlive any one listener
/// actor: a restarted listener takes over the same set, so a later drain
/// still reaches connections accepted before the restart.
#[derive(Debug, Default)]
pub struct Connections {
    shutdown: ConnShutdown,
    tracker: TaskTracker,
    active: AtomicUsize,
}

/// What a listener is started with.
pub struct ListenerArgs<A> {
    /// Serves each accepted connection.
    pub app: Arc<A>,
    /// The bound socket; the listener accepts on a duplicate of it, so a
    /// restarted listener keeps the same port and its backlog.
    pub socket: Arc<ListenSocket>,
    /// The address as configured, handed to the app with each connection.
    pub listen: ListenAddr,
    /// The connections accepted on this address, by any incarnation.
    pub conns: Arc<Connections>,
    /// The tree's display names, for its path in logs.
    pub labels: Arc<Labels>,
}

/// The listener's state.
pub struct ListenerState {
    stop_accepting: CancellationToken,
    /// Stops the accept loop when the state is dropped, which ractor does
    /// when the actor fails or is killed (when `post_stop` does not run).
    _accept_guard: DropGuard,
    conns: Arc<Connections>,
    accept_loop: Option<JoinHandle<()>>,
    labels: Arc<Labels>,
}

/// How long cut connections get to notice before the drain gives up.
const CUT_GRACE: Duration = Duration::from_secs(1);

impl<A: App> Actor for Listener<A> {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerArgs<A>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = args.socket.acceptor()?;
        let stop_accepting = CancellationToken::new();
        let accept = AcceptLoop {
            listener,
            listen: args.listen,
            app: args.app,
            me,
            stop: stop_accepting.clone(),
            conns: args.conns.clone(),
        };
        Ok(ListenerState {
            _accept_guard: stop_accepting.clone().drop_guard(),
            stop_accepting,
            conns: args.conns,
            accept_loop: Some(tokio::spawn(accept.run())),
            labels: args.labels,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ListenerMsg::Drain { deadline, reply } => {
                st.stop_accepting.cancel();
                if let Some(accept) = st.accept_loop.take() {
                    let _ = accept.await;
                }
                let conns = &st.conns;
                conns.shutdown.drain.cancel();
                conns.tracker.close();
                let open = conns.active.load(Ordering::Relaxed);
                tracing::info!(actor = %st.labels.path_of(&me.get_cell()), open, "draining connections");
                let mut cut = 0;
                if tokio::time::timeout(deadline, conns.tracker.wait())
                    .await
                    .is_err()
                {
                    cut = conns.active.load(Ordering::Relaxed);
                    conns.shutdown.cut.cancel();
                    let _ = tokio::time::timeout(CUT_GRACE, conns.tracker.wait()).await;
                }
                let _ = reply.send(cut);
            }
            ListenerMsg::ConnectionPanicked { peer, reason } => {
                let peer = peer.map_or_else(|| "unix".to_owned(), |p| p.to_string());
                tracing::error!(actor = %st.labels.path_of(&me.get_cell()), %peer, %reason, "connection task panicked; connection closed");
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Stopped without a drain (e.g. fast shutdown): close the socket now.
        st.stop_accepting.cancel();
        Ok(())
    }
}

/// The accept loop of one listener, run as a task the actor owns.
struct AcceptLoop<A> {
    listener: Acceptor,
    listen: ListenAddr,
    app: Arc<A>,
    me: ActorRef<ListenerMsg>,
    stop: CancellationToken,
    conns: Arc<Connections>,
}

/// Decrements the open-connection count when a connection task ends, even by panic.
struct ActiveGuard(Arc<Connections>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<A: App> AcceptLoop<A> {
    async fn run(self) {
        // Accept errors (EMFILE, ENFILE, ENOBUFS) are transient: back off
        // instead of spinning, and reset after a success.
        let mut backoff = Duration::from_millis(5);
        // Failures in a row: the first is logged, the recovery too.
        let mut failures = 0u64;
        loop {
            if let Some(room) = self.app.room() {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = room => {}
                }
            }
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let accepted = match accepted {
                Ok(ok) => {
                    if failures > 0 {
                        tracing::info!(failures, "accepting again");
                        failures = 0;
                    }
                    backoff = Duration::from_millis(5);
                    ok
                }
                Err(err) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%err, "accept failed; backing off until it works again");
                    } else {
                        tracing::debug!(%err, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    }
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let peer = accepted.peer();
            self.conns.active.fetch_add(1, Ordering::Relaxed);
            let guard = ActiveGuard(self.conns.clone());
            let conn = self
                .app
                .serve(accepted, &self.listen, self.conns.shutdown.clone());
            let me = self.me.clone();
            self.conns.tracker.spawn(async move {
                let _guard = guard;
                if let Err(panic) = AssertUnwindSafe(conn).catch_unwind().await {
                    let reason = panic_message(panic.as_ref());
                    let _ = me.cast(ListenerMsg::ConnectionPanicked { peer, reason });
                }
            });
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
