//! The per-connection watchdog: the header and idle timeouts and the drain.
//!
//! It runs as a small task beside the connection, wakes on a coarse tick
//! (a quarter of the shortest timeout), and compares the connection's
//! counters with what it saw last time:
//!
//! - **header timeout** (HTTP/1): bytes arrived after the last request was
//!   dispatched or answered, nothing is in flight, and no request has started within
//!   `header_timeout` → abort (the slowloris case);
//! - **idle timeout**: no bytes moved either way and nothing in flight for
//!   `keepalive_timeout` → close gracefully;
//! - **drain**: the listener is shutting down → close gracefully;
//! - **stalled close**: after a graceful close was asked for, no bytes move
//!   for another `keepalive_timeout` (a client that stopped reading a
//!   response) → abort, like nginx's `send_timeout`;
//! - **cut**: the drain deadline passed → abort.
//!
//! Deciding on a tick means a timeout fires up to one tick late, in return
//! for no timer work on the request path.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use troupe_actors::ConnShutdown;

use super::activity::{Action, Activity, Counters};

/// The timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

impl Timeouts {
    fn tick(&self) -> Duration {
        (self.header.min(self.idle) / 4).max(Duration::from_millis(10))
    }
}

/// How long tunnels get between the drain deadline and the abort of their
/// connection (within the listener's one-second grace).
const TUNNEL_GOODBYE: Duration = Duration::from_millis(300);

/// Watches one connection until it is done.
pub(super) async fn watch(activity: Arc<Activity>, timeouts: Timeouts, shutdown: ConnShutdown) {
    let mut state = Watch::new(activity.counters(), Instant::now());
    let tick = timeouts.tick();
    let mut draining = false;
    loop {
        tokio::select! {
            _ = activity.done.notified() => return,
            _ = shutdown.cut.cancelled() => {
                // Tunnels that say goodbye at the deadline (a module's
                // WebSocket sends close 1001) get a moment to, before an
                // HTTP/2 connection carrying them goes.
                if activity.tunnels.get().is_some_and(|t| !t.is_empty()) {
                    tokio::time::sleep(TUNNEL_GOODBYE).await;
                }
                activity.signal(Action::Abort);
                return;
            }
            _ = shutdown.drain.cancelled(), if !draining => {
                draining = true;
                state.closing(Instant::now());
                activity.signal(Action::Graceful);
            }
            _ = tokio::time::sleep(tick) => {
                match state.check(activity.counters(), Instant::now(), timeouts) {
                    Action::None => {}
                    Action::Graceful => activity.signal(Action::Graceful),
                    Action::Abort => {
                        activity.signal(Action::Abort);
                        return;
                    }
                }
            }
        }
    }
}

/// What the watchdog remembers between ticks.
#[derive(Debug)]
struct Watch {
    seen: Counters,
    idle_since: Instant,
    head_since: Option<Instant>,
    /// When a graceful close was asked for (or last made progress).
    closing_since: Option<Instant>,
}

impl Watch {
    fn new(seen: Counters, now: Instant) -> Self {
        Self {
            seen,
            idle_since: now,
            head_since: None,
            closing_since: None,
        }
    }

    /// A graceful close was asked for: from now on, a connection that moves
    /// no bytes for a whole idle timeout is cut (a client that stopped
    /// reading would otherwise hold its response, and the close, forever).
    fn closing(&mut self, now: Instant) {
        self.closing_since.get_or_insert(now);
    }

    fn check(&mut self, now_counters: Counters, now: Instant, t: Timeouts) -> Action {
        let c = now_counters;
        let busy = c.in_flight > 0;
        let moved = c.reads != self.seen.reads || c.writes != self.seen.writes;
        if busy || moved {
            self.idle_since = now;
        }
        let head_arriving = !busy && !c.http2 && c.reads > c.reads_settled;
        if !head_arriving {
            self.head_since = None;
        } else if self.head_since.is_none() {
            self.head_since = Some(now);
        }
        self.seen = c;
        if let Some(since) = self.closing_since {
            if moved {
                self.closing_since = Some(now);
                return Action::None;
            }
            return if now.duration_since(since) >= t.idle {
                Action::Abort
            } else {
                Action::None
            };
        }
        if let Some(since) = self.head_since
            && now.duration_since(since) >= t.header
        {
            return Action::Abort;
        }
        if now.duration_since(self.idle_since) >= t.idle {
            self.closing(now);
            return Action::Graceful;
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(30),
    };

    fn counters(reads: u64, writes: u64, at_dispatch: u64, in_flight: usize) -> Counters {
        Counters {
            reads,
            writes,
            reads_settled: at_dispatch,
            in_flight,
            http2: false,
        }
    }

    #[test]
    fn a_trickled_header_is_aborted_after_the_header_timeout() {
        let t0 = Instant::now();
        let mut w = Watch::new(counters(0, 0, 0, 0), t0);
        let s = |n| t0 + Duration::from_secs(n);
        assert_eq!(w.check(counters(1, 0, 0, 0), s(1), T), Action::None);
        assert_eq!(w.check(counters(5, 0, 0, 0), s(6), T), Action::None);
        assert_eq!(w.check(counters(9, 0, 0, 0), s(11), T), Action::Abort);
    }

    #[test]
    fn a_dispatched_request_resets_the_header_clock() {
        let t0 = Instant::now();
        let mut w = Watch::new(counters(0, 0, 0, 0), t0);
        let s = |n| t0 + Duration::from_secs(n);
        assert_eq!(w.check(counters(1, 0, 0, 0), s(1), T), Action::None);
        assert_eq!(w.check(counters(2, 1, 2, 0), s(9), T), Action::None);
        assert_eq!(w.check(counters(2, 1, 2, 0), s(15), T), Action::None);
    }

    #[test]
    fn silence_closes_after_the_idle_timeout_but_work_does_not() {
        let t0 = Instant::now();
        let mut w = Watch::new(counters(1, 1, 1, 0), t0);
        let s = |n| t0 + Duration::from_secs(n);
        assert_eq!(w.check(counters(1, 1, 1, 1), s(29), T), Action::None);
        assert_eq!(w.check(counters(1, 1, 1, 0), s(40), T), Action::None);
        assert_eq!(w.check(counters(1, 1, 1, 0), s(71), T), Action::Graceful);
    }

    #[test]
    fn a_close_that_makes_no_progress_is_cut() {
        let t0 = Instant::now();
        let mut w = Watch::new(counters(1, 1, 1, 0), t0);
        let s = |n| t0 + Duration::from_secs(n);
        assert_eq!(w.check(counters(1, 1, 1, 0), s(31), T), Action::Graceful);
        // The client still reads, slowly: progress keeps the close graceful.
        assert_eq!(w.check(counters(1, 2, 1, 0), s(50), T), Action::None);
        assert_eq!(w.check(counters(1, 3, 1, 0), s(70), T), Action::None);
        // Then it stops reading for a whole idle timeout.
        assert_eq!(w.check(counters(1, 3, 1, 0), s(95), T), Action::None);
        assert_eq!(w.check(counters(1, 3, 1, 0), s(101), T), Action::Abort);
    }
}
