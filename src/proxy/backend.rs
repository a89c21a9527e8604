//! One backend's runtime state: requests in flight, failures in a row,
//! ejection, the peak-EWMA latency estimate and the connection pool.
//!
//! It outlives config generations: the [`super::upstream::Registry`]
//! hands the same `Arc<Backend>` to every generation that keeps the
//! backend, so a reload keeps its counts and its pooled connections. The
//! request path reads and writes it with atomics only (the pool has a
//! short lock of its own).

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use http::HeaderValue;

use super::{pool::Pool, verdict::Verdict};

/// Milliseconds on the process's monotonic clock (ejection deadlines).
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    // +1 so that 0 always means "never".
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// The latency assumed for a backend with no sample yet (tower's and
/// linkerd's `default_rtt` is 30 ms; a local backend answers far faster,
/// and an overestimate only sends it fewer requests until it is measured).
const DEFAULT_RTT_NS: f64 = 5_000_000.0;
/// How fast the estimate forgets (linkerd's decay: 10 s).
const DECAY_NS: f64 = 10_000_000_000.0;

/// One backend of an upstream group, shared by every generation that has it.
#[derive(Debug)]
pub struct Backend {
    /// Where it is.
    pub addr: SocketAddr,
    /// The name it was resolved from (`app.internal` of
    /// `app.internal:8080`), if the config gave one: SNI when the group
    /// sets no `server_name`.
    pub host: Option<Arc<str>>,
    /// `host:port`, or `ip:port` without a name: the `Host` that
    /// `host: Backend` and health checks send, made once.
    pub(crate) authority: HeaderValue,
    inflight: AtomicU32,
    fails: AtomicU32,
    /// `now_ms()` until which it is out; 0: in.
    ejected_until: AtomicU64,
    /// Peak-EWMA latency estimate, f64 nanoseconds as bits (0: none yet).
    ewma: AtomicU64,
    /// `now_ns` of the estimate's last update.
    ewma_at: AtomicU64,
    /// Requests sent to it (answered or not), for tests and the admin API.
    served: AtomicU64,
    /// Its keep-alive connections.
    pub(crate) pool: Pool,
    /// What active health checks found (written by its group's actor).
    pub(crate) verdict: Verdict,
}

impl Backend {
    /// A backend with no history.
    pub fn new(addr: SocketAddr) -> Self {
        Self::named(addr, None)
    }

    /// A backend with no history at `addr`, resolved from the name `host`
    /// (when there is one).
    pub fn named(addr: SocketAddr, host: Option<Arc<str>>) -> Self {
        let authority = match &host {
            Some(h) => format!("{h}:{}", addr.port()),
            None => addr.to_string(),
        };
        Self {
            addr,
            // A name that is not a valid header value was refused at
            // config load; the address always is one.
            authority: HeaderValue::try_from(authority)
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            host,
            inflight: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ewma: AtomicU64::new(0),
            ewma_at: AtomicU64::new(0),
            served: AtomicU64::new(0),
            pool: Pool::default(),
            verdict: Verdict::default(),
        }
    }

    /// Requests in flight to it.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Relaxed)
    }

    /// Requests sent to it so far.
    pub fn served(&self) -> u64 {
        self.served.load(Relaxed)
    }

    /// Whether passive health has it out at `now` (`now_ms()`).
    pub fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Relaxed) > now
    }

    /// Whether it takes requests at `now`: not ejected by passive health,
    /// nor down by active checks when its group has them (`checked`; a
    /// verdict left from a config that had checks does not count).
    pub fn usable(&self, now: u64, checked: bool) -> bool {
        !(self.ejected(now) || (checked && self.verdict.down()))
    }

    /// Whether active checks have it down.
    pub fn down(&self) -> bool {
        self.verdict.down()
    }

    /// Active checks found it healthy again: the failures that passive
    /// health counted while it was down are forgotten, so it is not
    /// ejected again for them.
    pub(crate) fn forgive(&self) {
        self.fails.store(0, Relaxed);
        self.ejected_until.store(0, Relaxed);
    }

    /// Whether it has room for one more connection (`max_total`) or an
    /// idle one to reuse.
    pub(crate) fn has_room(&self, max_total: Option<u32>) -> bool {
        max_total.is_none_or(|max| self.pool.total() < max || self.pool.has_idle())
    }

    /// A request failed on it (no connection, an error, a timeout): after
    /// `max_fails` in a row it is out for `fail_timeout`. Returns whether
    /// this failure took it out.
    pub(crate) fn failed(&self, max_fails: u32, fail_timeout: Duration) -> bool {
        let fails = self.fails.fetch_add(1, Relaxed) + 1;
        if max_fails == 0 || fails < max_fails {
            return false;
        }
        let until = now_ms() + fail_timeout.as_millis() as u64;
        self.ejected_until.store(until, Relaxed);
        true
    }

    /// A request got an answer from it: the failure count starts again.
    pub(crate) fn succeeded(&self) {
        if self.fails.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
        }
    }

    /// Its cost for peak-EWMA balancing: the decayed latency estimate
    /// times (requests in flight + 1).
    pub(crate) fn cost(&self, now_ns: u64) -> f64 {
        let est = match f64::from_bits(self.ewma.load(Relaxed)) {
            e if e > 0.0 => {
                let elapsed = now_ns.saturating_sub(self.ewma_at.load(Relaxed)) as f64;
                e * (-elapsed / DECAY_NS).exp()
            }
            _ => DEFAULT_RTT_NS,
        };
        est * f64::from(self.inflight() + 1)
    }

    /// Folds one round-trip time into the estimate, tower's `PeakEwma`
    /// rule: a slower sample replaces it at once, a faster one pulls it
    /// down with a weight that grows with the time since the last one.
    /// Two concurrent updates may lose one sample, which costs nothing.
    pub(crate) fn observe(&self, rtt: Duration, now_ns: u64) {
        let rtt = rtt.as_nanos() as f64;
        let est = f64::from_bits(self.ewma.load(Relaxed));
        let next = if est <= 0.0 || rtt > est {
            rtt
        } else {
            let elapsed = now_ns.saturating_sub(self.ewma_at.load(Relaxed)) as f64;
            let w = (-elapsed / DECAY_NS).exp();
            est * w + rtt * (1.0 - w)
        };
        self.ewma.store(next.to_bits(), Relaxed);
        self.ewma_at.store(now_ns, Relaxed);
    }
}

/// Nanoseconds on the process's monotonic clock (latency estimates).
pub(crate) fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A request in flight to a backend: counted while it lives, so
/// least-connections and peak-EWMA see it; dropped when the response
/// body ends or the request is abandoned.
#[derive(Debug)]
pub(crate) struct InFlight {
    backend: Arc<Backend>,
    start: Instant,
}

impl InFlight {
    /// Counts a request to `backend` from now.
    pub(crate) fn start(backend: &Arc<Backend>) -> Self {
        backend.inflight.fetch_add(1, Relaxed);
        backend.served.fetch_add(1, Relaxed);
        Self {
            backend: backend.clone(),
            start: Instant::now(),
        }
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// The response head arrived: records the round-trip time, which it
    /// returns.
    pub(crate) fn answered(&self) -> Duration {
        let rtt = self.start.elapsed();
        self.backend.observe(rtt, now_ns());
        self.backend.succeeded();
        rtt
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.inflight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_eject_then_expire() {
        let b = Backend::new(([127, 0, 0, 1], 1).into());
        assert!(!b.failed(2, Duration::from_millis(50)));
        b.succeeded();
        assert!(!b.failed(2, Duration::from_millis(50)));
        assert!(b.failed(2, Duration::from_millis(50)));
        assert!(b.ejected(now_ms()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!b.ejected(now_ms()));
    }

    #[test]
    fn a_check_verdict_counts_only_where_checked_and_coming_back_forgives() {
        let b = Backend::new(([127, 0, 0, 1], 1).into());
        for _ in 0..3 {
            b.verdict.record(Err("status 503".into()), 2, 3);
        }
        assert!(b.down());
        assert!(!b.usable(now_ms(), true));
        // A generation without checks ignores a verdict left behind.
        assert!(b.usable(now_ms(), false));
        assert!(b.failed(1, Duration::from_secs(10)));
        assert!(!b.usable(now_ms(), false));
        b.forgive();
        assert!(b.usable(now_ms(), false));
    }

    #[test]
    fn the_estimate_takes_peaks_at_once_and_decays_slowly() {
        let b = Backend::new(([127, 0, 0, 1], 1).into());
        b.observe(Duration::from_millis(1), 1);
        b.observe(Duration::from_millis(20), 2);
        assert!((b.cost(2) - 20e6).abs() < 1.0, "{}", b.cost(2));
        // A fast sample right after barely moves it.
        b.observe(Duration::from_millis(1), 3);
        assert!(b.cost(3) > 19e6);
        // Seconds later, a fast sample pulls it most of the way down.
        b.observe(Duration::from_millis(1), 30_000_000_000);
        assert!(b.cost(30_000_000_000) < 3e6);
    }
}
