//! Connections a handler takes over after an upgrade (a proxied
//! WebSocket): where they run, so that they still count as open
//! connections.
//!
//! hyper hands an upgraded connection to whoever awaits its `OnUpgrade`
//! and forgets it: its graceful shutdown no longer sees it (axum-server
//! #40). The connection layer (`conn/`) therefore puts a [`Tunnels`] into
//! the extensions of each request that can be upgraded (hyper marked it
//! with an `OnUpgrade`); a handler runs what it takes over with
//! [`Tunnels::spawn`]. The connection's task waits for its tunnels before
//! it ends, so the listener's drain waits for them as for any connection,
//! and its deadline (`cut`) closes them. A config reload does not drain
//! listeners it keeps, so it never touches a tunnel.

use std::future::Future;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The tunnels of one connection.
#[derive(Debug, Clone)]
pub struct Tunnels {
    tracker: TaskTracker,
    cut: CancellationToken,
}

impl Tunnels {
    /// Tunnels tracked by `tracker` (which the connection waits for) and
    /// closed when `cut` fires (the drain deadline).
    pub(crate) fn new(tracker: TaskTracker, cut: CancellationToken) -> Self {
        Self { tracker, cut }
    }

    /// Runs `tunnel` as part of its connection until it ends or the drain
    /// deadline passes (then it is dropped, which closes its sockets).
    pub fn spawn<F>(&self, tunnel: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cut = self.cut.clone();
        self.tracker.spawn(async move {
            cut.run_until_cancelled(tunnel).await;
        });
    }

    /// Runs what `start` makes as part of its connection, handing it the
    /// drain deadline's token instead of dropping it then: for a
    /// connection that says goodbye (a WebSocket's close 1001). It must
    /// end soon after the token fires (the listener waits one second).
    pub fn spawn_until_cut<F>(&self, start: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(start(self.cut.clone()));
    }
}
