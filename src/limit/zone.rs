//! A rate-limit zone (nginx `limit_req_zone`): a rate, what requests are
//! keyed by, and one arrival time per key, with a cap on the keys kept.
//!
//! Past the cap, a new key shares one overflow bucket with every other
//! new key (at the zone's rate) until the `limits` actor's sweep forgets
//! idle ones: a flood of fresh addresses can fill the cap, but it cannot
//! grow memory past it, and the keys already known keep their own
//! buckets. nginx instead answers 503 when its zone is full.

use std::{
    fmt,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::HeaderName;
use prometheus::{IntCounter, IntGauge};

use super::gcra::{Decision, Gcra};

/// What a zone keys requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// The client's address ([`crate::client::ClientAddr`]); IPv6
    /// addresses grouped by their first `ipv6_prefix` bits.
    Client {
        /// Bits of an IPv6 address that name a client (64: one subnet).
        ipv6_prefix: u8,
    },
    /// The route: every client of a route shares one bucket.
    Route,
    /// The server: every client of a server shares one bucket.
    Server,
    /// A request header's value; a request without it is not limited by
    /// the zone (as nginx skips an empty key).
    Header(HeaderName),
    /// The key a module's request filter chose for the request
    /// ([`super::ModuleKey`], `set_rate_key`): checked once the route's
    /// filters ran, so after its body is read. A request no filter keyed
    /// is not limited by the zone.
    Module,
}

/// One key of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An address (IPv4 mapped into IPv6), masked to the zone's prefix.
    Addr(u128),
    /// A route's pattern or a server's name.
    Name(Arc<str>),
    /// A header's value, or the key a module chose.
    Bytes(Box<[u8]>),
    /// Every new key once the zone is at its cap.
    Overflow,
}

impl Key {
    /// The key of a client address.
    pub fn addr(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Key::Addr(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Key::Addr(u128::from(v6) & mask)
            }
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Addr(bits) => {
                let ip = std::net::Ipv6Addr::from(*bits);
                match ip.to_ipv4_mapped() {
                    Some(v4) => v4.fmt(f),
                    None => ip.fmt(f),
                }
            }
            Key::Name(name) => f.write_str(name),
            Key::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
            Key::Overflow => f.write_str("(overflow)"),
        }
    }
}

/// What makes a zone: a reload that keeps all of it keeps the zone and
/// its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneParams {
    /// Time between two requests of one key at the zone's rate.
    pub period: Duration,
    /// What requests are keyed by.
    pub key: KeyKind,
    /// Keys kept at most.
    pub max_keys: usize,
}

/// The series of one zone.
#[derive(Debug, Clone)]
pub(super) struct ZoneSeries {
    pub(super) keys: IntGauge,
    pub(super) delayed: IntCounter,
    pub(super) refused: IntCounter,
    pub(super) dry_run: IntCounter,
    pub(super) overflow: IntCounter,
}

/// One zone and its per-key state.
#[derive(Debug)]
pub struct Zone {
    name: Arc<str>,
    params: ZoneParams,
    gcra: Gcra<Key>,
    /// Keys in the store, counted up as they come and set right by each
    /// sweep: reading it costs the request path no lock.
    keys: AtomicUsize,
    pub(super) series: ZoneSeries,
    /// The second (since `born`) of the last refusal logged, so a flood
    /// writes one log line per second, not one per request.
    logged: AtomicU64,
    born: Instant,
}

impl Zone {
    pub(super) fn new(name: &str, params: ZoneParams, series: ZoneSeries) -> Self {
        Self {
            name: name.into(),
            gcra: Gcra::new(params.period),
            params,
            keys: AtomicUsize::new(0),
            series,
            logged: AtomicU64::new(u64::MAX),
            born: Instant::now(),
        }
    }

    /// The period between two requests of one key.
    pub fn period(&self) -> Duration {
        self.params.period
    }

    /// Takes a request for `key` (see [`Gcra::reserve`]); a new key past
    /// the cap goes to the overflow bucket.
    pub fn take(&self, key: &Key, now: Instant, burst: u32, max_wait: Duration) -> Decision {
        static OVERFLOW: Key = Key::Overflow;
        let key = if self.keys.load(Ordering::Relaxed) >= self.params.max_keys
            && !self.gcra.contains(key)
        {
            self.series.overflow.inc();
            &OVERFLOW
        } else {
            key
        };
        let (decision, new) = self.gcra.reserve(key, now, burst, max_wait);
        if new {
            self.keys.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// Keys kept now (exact: takes every shard's lock in turn).
    pub fn len(&self) -> usize {
        self.gcra.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.gcra.is_empty()
    }

    /// Forgets the keys whose arrival time has passed, and counts again.
    pub fn sweep(&self, now: Instant) {
        self.gcra.forget_idle(now);
        let n = self.gcra.len();
        self.keys.store(n, Ordering::Relaxed);
        self.series.keys.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Whether a refusal at `now` should be logged: the first of each
    /// second.
    pub(super) fn log_now(&self, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.born).as_secs();
        self.logged.swap(second, Ordering::Relaxed) != second
    }
}

impl crate::kept::Named for Zone {
    type Params = ZoneParams;

    fn name(&self) -> &str {
        &self.name
    }

    fn params(&self) -> &ZoneParams {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(max_keys: usize) -> Zone {
        let series = super::super::registry::Zones::default().series("test");
        Zone::new(
            "test",
            ZoneParams {
                period: Duration::from_secs(1),
                key: KeyKind::Client { ipv6_prefix: 64 },
                max_keys,
            },
            series,
        )
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_prefix() {
        let a = Key::addr("2001:db8:1:2::1".parse().expect("ip"), 64);
        let b = Key::addr("2001:db8:1:2:ffff::9".parse().expect("ip"), 64);
        let c = Key::addr("2001:db8:1:3::1".parse().expect("ip"), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // An IPv4 client is one key, however it is written.
        let v4 = Key::addr("192.0.2.1".parse().expect("ip"), 64);
        assert_eq!(v4, Key::addr("::ffff:192.0.2.1".parse().expect("ip"), 64));
        assert_eq!(v4.to_string(), "192.0.2.1");
        assert_ne!(v4, Key::addr("192.0.2.2".parse().expect("ip"), 64));
    }

    /// The flood: a million distinct addresses against a zone
    /// capped at 10,000 keys. The store never holds more than the cap
    /// (plus the overflow bucket), the addresses past it share one
    /// bucket, and a sweep after their arrival times pass empties it.
    #[test]
    fn a_million_addresses_stay_within_the_cap() {
        let z = zone(10_000);
        let now = Instant::now();
        let mut refused = 0u32;
        for i in 0..1_000_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if let Decision::Refused(_) = z.take(&Key::addr(ip, 64), now, 1, Duration::ZERO) {
                refused += 1;
            }
        }
        assert!(z.len() <= 10_001, "{} keys", z.len());
        assert_eq!(z.series.overflow.get(), 990_000);
        // The first 10,000 had a bucket each; all the rest shared one,
        // which let one through.
        assert_eq!(refused, 990_000 - 1);
        z.sweep(now + Duration::from_secs(2));
        assert_eq!(z.len(), 0);
        assert_eq!(z.series.keys.get(), 0);
    }
}
