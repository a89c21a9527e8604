//! Picking a backend for a request, inline on the request's task, from
//! atomics only: smooth weighted round-robin (nginx's), least
//! connections, consistent hashing (ketama, nginx-compatible) and
//! peak-EWMA over two random choices (linkerd, Finagle).
//!
//! Every policy takes a filter, so a retry skips the backends already
//! tried and a backend out of health or full is passed over.

use std::{
    cell::Cell,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
};

use pingora_ketama::{Bucket, Continuum};

use super::backend::{Backend, now_ns};

/// Most backends in a group (the tried set is a bit mask).
pub const MAX_BACKENDS: usize = 64;

/// What a `Hash` policy hashes.
#[derive(Debug, Clone)]
pub enum HashKey {
    /// The client's address as text.
    RemoteAddr,
    /// The path and query as received.
    Uri,
    /// A request header's value.
    Header(http::HeaderName),
}

/// What a request offers a hash key.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// The client.
    pub peer: std::net::IpAddr,
    /// The request's head.
    pub head: &'a http::request::Parts,
}

/// A group's policy, with what it keeps between requests.
pub enum Balancer {
    /// Smooth weighted round-robin: nginx's sequence, computed once,
    /// walked by an atomic cursor.
    RoundRobin {
        /// Backend indices in nginx's smooth order, one period.
        order: Box<[u8]>,
        /// The next position.
        cursor: AtomicUsize,
    },
    /// Fewest in flight for the weight; ties go round-robin.
    LeastConn {
        /// Where the scan starts.
        cursor: AtomicUsize,
    },
    /// Ketama over the backends' addresses and weights.
    Hash {
        /// The key.
        key: HashKey,
        /// The ring.
        ring: Continuum,
    },
    /// Two random candidates, the cheaper by peak-EWMA cost.
    PeakEwma,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RoundRobin { .. } => "RoundRobin",
            Self::LeastConn { .. } => "LeastConn",
            Self::Hash { .. } => "Hash",
            Self::PeakEwma => "PeakEwma",
        })
    }
}

impl Balancer {
    /// Smooth weighted round-robin over `weights`.
    pub fn round_robin(weights: &[u32]) -> Self {
        Self::RoundRobin {
            order: smooth_order(weights),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Least connections.
    pub fn least_conn() -> Self {
        Self::LeastConn {
            cursor: AtomicUsize::new(0),
        }
    }

    /// Consistent hashing on `key` over the backends at `addrs`.
    pub fn hash(key: HashKey, addrs: &[SocketAddr], weights: &[u32]) -> Self {
        let buckets: Vec<Bucket> = addrs
            .iter()
            .zip(weights)
            .map(|(a, w)| Bucket::new(*a, *w))
            .collect();
        Self::Hash {
            key,
            ring: Continuum::new(&buckets),
        }
    }

    /// Picks a backend for the request from `peer` with `head` among
    /// those `ok` accepts (by index).
    pub fn pick(
        &self,
        backends: &[Arc<Backend>],
        weights: &[u32],
        req: Key<'_>,
        ok: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = backends.len();
        match self {
            Self::RoundRobin { order, cursor } => {
                let start = cursor.fetch_add(1, Relaxed);
                // The smooth order first; past a few misses, any that is ok.
                (0..n.min(order.len()))
                    .map(|k| usize::from(order[(start + k) % order.len()]))
                    .find(|&i| ok(i))
                    .or_else(|| (0..n).map(|k| (start + k) % n).find(|&i| ok(i)))
            }
            Self::LeastConn { cursor } => {
                let start = cursor.fetch_add(1, Relaxed);
                let mut best: Option<(usize, u64, u64)> = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    if !ok(i) {
                        continue;
                    }
                    let (load, w) = (u64::from(backends[i].inflight()), u64::from(weights[i]));
                    // load/w < best_load/best_w, without division.
                    if best.is_none_or(|(_, bl, bw)| load * bw < bl * w) {
                        best = Some((i, load, w));
                    }
                }
                best.map(|(i, _, _)| i)
            }
            Self::Hash { key, ring } => {
                let remote;
                let bytes: &[u8] = match key {
                    HashKey::RemoteAddr => {
                        remote = req.peer.to_string();
                        remote.as_bytes()
                    }
                    HashKey::Uri => req
                        .head
                        .uri
                        .path_and_query()
                        .map_or(b"/", |p| p.as_str().as_bytes()),
                    HashKey::Header(name) => {
                        req.head.headers.get(name).map_or(&[][..], |v| v.as_bytes())
                    }
                };
                ring.node_iter(bytes)
                    .take(n * 4)
                    .filter_map(|addr| backends.iter().position(|b| b.addr == *addr))
                    .find(|&i| ok(i))
                    .or_else(|| (0..n).find(|&i| ok(i)))
            }
            Self::PeakEwma => {
                let mut candidates = [0u8; MAX_BACKENDS];
                let mut m = 0;
                for i in 0..n {
                    if ok(i) {
                        candidates[m] = i as u8;
                        m += 1;
                    }
                }
                match m {
                    0 => None,
                    1 => Some(usize::from(candidates[0])),
                    _ => {
                        let a = random(m);
                        let b = (a + 1 + random(m - 1)) % m;
                        let (a, b) = (usize::from(candidates[a]), usize::from(candidates[b]));
                        let now = now_ns();
                        Some(if backends[a].cost(now) <= backends[b].cost(now) {
                            a
                        } else {
                            b
                        })
                    }
                }
            }
        }
    }
}

/// nginx's smooth weighted round-robin, run for one period (the sum of
/// the weights divided by their gcd): each step every backend gains its
/// weight, the richest is picked and pays the total.
fn smooth_order(weights: &[u32]) -> Box<[u8]> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&w) {
            *c += w;
        }
        let best = (0..w.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        current[best] -= total;
        order.push(best as u8);
    }
    order.into()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A uniform index below `n` (> 0) from a per-thread xorshift generator:
/// no lock, no syscall.
fn random(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let addr = &STATE as *const _ as u64;
            (now_ns() ^ addr.rotate_left(32)) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (((x >> 32) * n as u64) >> 32) as usize
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn backends(n: u16) -> Vec<Arc<Backend>> {
        (0..n)
            .map(|i| Arc::new(Backend::new(([127, 0, 0, 1], 9000 + i).into())))
            .collect()
    }

    struct Req(std::net::IpAddr, http::request::Parts);

    impl Req {
        fn key(&self) -> Key<'_> {
            Key {
                peer: self.0,
                head: &self.1,
            }
        }
    }

    fn req(peer: &str, path: &str) -> Req {
        let (head, ()) = http::Request::get(path)
            .header("x-user", "alice")
            .body(())
            .expect("request")
            .into_parts();
        Req(peer.parse().expect("peer"), head)
    }

    #[test]
    fn smooth_round_robin_is_nginxs_sequence() {
        // nginx's example: weights 5, 1, 1 → a a b a c a a.
        assert_eq!(&*smooth_order(&[5, 1, 1]), &[0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(&*smooth_order(&[2, 2]), &[0, 1]);
        let b = backends(3);
        let bal = Balancer::round_robin(&[5, 1, 1]);
        let r = req("1.1.1.1", "/");
        let mut counts = [0; 3];
        for _ in 0..70 {
            counts[bal.pick(&b, &[5, 1, 1], r.key(), |_| true).expect("pick")] += 1;
        }
        assert_eq!(counts, [50, 10, 10]);
        // A backend filtered out is skipped, never picked.
        for _ in 0..20 {
            assert_ne!(bal.pick(&b, &[5, 1, 1], r.key(), |i| i != 0), Some(0));
        }
        assert_eq!(bal.pick(&b, &[5, 1, 1], r.key(), |_| false), None);
    }

    #[test]
    fn least_conn_picks_the_least_loaded_for_its_weight() {
        let b = backends(3);
        let r = req("1.1.1.1", "/");
        let bal = Balancer::least_conn();
        let _busy: Vec<_> = (0..3)
            .map(|_| super::super::backend::InFlight::start(&b[0]))
            .chain((0..2).map(|_| super::super::backend::InFlight::start(&b[1])))
            .chain((0..1).map(|_| super::super::backend::InFlight::start(&b[2])))
            .collect();
        assert_eq!(bal.pick(&b, &[1, 1, 1], r.key(), |_| true), Some(2));
        // Weight 4 makes 3 in flight cheaper than 1 at weight 1.
        assert_eq!(bal.pick(&b, &[4, 1, 1], r.key(), |_| true), Some(0));
        assert_eq!(bal.pick(&b, &[1, 1, 1], r.key(), |i| i != 2), Some(1));
    }

    #[test]
    fn hashing_keeps_a_key_on_its_backend_and_moves_few() {
        let b = backends(4);
        let addrs: Vec<_> = b.iter().map(|b| b.addr).collect();
        let bal = Balancer::hash(HashKey::Uri, &addrs, &[1, 1, 1, 1]);
        let picks: Vec<usize> = (0..200)
            .map(|k| {
                let r = req("1.1.1.1", &format!("/k{k}"));
                bal.pick(&b, &[1; 4], r.key(), |_| true).expect("pick")
            })
            .collect();
        let again: Vec<usize> = (0..200)
            .map(|k| {
                let r = req("2.2.2.2", &format!("/k{k}"));
                bal.pick(&b, &[1; 4], r.key(), |_| true).expect("pick")
            })
            .collect();
        assert_eq!(picks, again, "a key keeps its backend");
        for i in 0..4 {
            assert!(picks.iter().filter(|&&p| p == i).count() > 20, "{picks:?}");
        }
        // Backend 3 down: only its keys move.
        let moved: Vec<usize> = (0..200)
            .map(|k| {
                let r = req("1.1.1.1", &format!("/k{k}"));
                bal.pick(&b, &[1; 4], r.key(), |i| i != 3).expect("pick")
            })
            .collect();
        for (before, after) in picks.iter().zip(&moved) {
            if *before != 3 {
                assert_eq!(before, after);
            }
        }
        // A header key: the same header, the same backend.
        let bal = Balancer::hash(
            HashKey::Header("x-user".parse().expect("name")),
            &addrs,
            &[1; 4],
        );
        let one = bal.pick(&b, &[1; 4], req("1.1.1.1", "/a").key(), |_| true);
        assert_eq!(
            one,
            bal.pick(&b, &[1; 4], req("9.9.9.9", "/b").key(), |_| true)
        );
    }

    #[test]
    fn peak_ewma_avoids_the_slow_backend() {
        let b = backends(3);
        let now = now_ns();
        b[0].observe(Duration::from_millis(1), now);
        b[1].observe(Duration::from_millis(1), now);
        b[2].observe(Duration::from_millis(25), now);
        let r = req("1.1.1.1", "/");
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[Balancer::PeakEwma
                .pick(&b, &[1; 3], r.key(), |_| true)
                .expect("pick")] += 1;
        }
        // The slow one loses every pairing it is drawn into.
        assert_eq!(counts[2], 0, "{counts:?}");
        assert!(counts[0] > 1000 && counts[1] > 1000, "{counts:?}");
        assert_eq!(
            Balancer::PeakEwma.pick(&b, &[1; 3], r.key(), |i| i == 2),
            Some(2)
        );
    }
}
