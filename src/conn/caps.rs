//! Connection caps (P7.2): a cap on open connections across every
//! listener (nginx's `worker_connections`) and one per client address
//! (nginx's `limit_conn` on `$binary_remote_addr`; IPv6 counted by /64,
//! which one client usually holds whole). A connection is counted from
//! its accept to its close, whatever config generation it started under.
//!
//! At the global cap the listeners either stop accepting until one
//! closes (`Pause`, nginx's way: new clients wait in the kernel's
//! backlog) or accept and close at once (`Close`). Over the per-address
//! cap a connection is always closed at once. Connections already open
//! are served as usual either way.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
};

use futures_util::future::BoxFuture;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::config::schema::AtConnectionCap;

/// The caps of one config generation.
#[derive(Debug, Clone, Copy)]
pub struct CapLimits {
    /// Open connections, all listeners together.
    pub max: usize,
    /// Open connections per client address (IPv6: per /64), if capped.
    pub per_ip: Option<u32>,
    /// What happens at `max`.
    pub at_cap: AtConnectionCap,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The global cap is reached.
    Full,
    /// Its address has its share.
    PerIp,
}

/// The open connections, counted (one per server, kept across reloads).
#[derive(Debug, Default)]
pub struct Caps {
    open: AtomicUsize,
    per_ip: DashMap<IpAddr, u32>,
    /// Woken when a connection closes while a listener waits for room.
    room: Notify,
    waiting: AtomicBool,
}

/// One admitted connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Permit {
    caps: Arc<Caps>,
    key: Option<IpAddr>,
}

impl Caps {
    /// Open connections.
    pub fn open(&self) -> usize {
        self.open.load(SeqCst)
    }

    /// Counts a connection from `ip` (none on a Unix socket, where only
    /// the global cap applies), unless a cap says no.
    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        limits: &CapLimits,
    ) -> Result<Permit, Refused> {
        if self.open.fetch_add(1, SeqCst) >= limits.max {
            self.open.fetch_sub(1, SeqCst);
            return Err(Refused::Full);
        }
        // From here the permit gives back whatever was taken.
        let mut permit = Permit {
            caps: self.clone(),
            key: None,
        };
        if let (Some(cap), Some(ip)) = (limits.per_ip, ip) {
            let key = key_of(ip);
            let mut n = self.per_ip.entry(key).or_insert(0);
            if *n >= cap {
                // A cap of 0 would otherwise leave the key behind.
                drop(n);
                self.per_ip.remove_if(&key, |_, n| *n == 0);
                return Err(Refused::PerIp);
            }
            *n += 1;
            permit.key = Some(key);
        }
        Ok(permit)
    }

    /// Waits until fewer than `max` connections are open.
    pub async fn room(&self, max: usize) {
        loop {
            // Both before the check: a close after it sees `waiting` and
            // wakes `closed`, a close before it shows in `open`.
            let closed = self.room.notified();
            self.waiting.store(true, SeqCst);
            if self.open() < max {
                return;
            }
            closed.await;
        }
    }
}

impl Permit {
    /// `conn`, holding this place until it ends.
    pub fn hold(self, conn: impl Future<Output = ()> + Send + 'static) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            conn.await;
            drop(self);
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            // Removed at zero, so the map holds only addresses with
            // connections open.
            self.caps.per_ip.remove_if_mut(&key, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
        self.caps.open.fetch_sub(1, SeqCst);
        if self.caps.waiting.swap(false, SeqCst) {
            self.caps.room.notify_waiters();
        }
    }
}

/// The address a per-client cap counts: IPv4 as is, IPv6 by its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: Option<u32>) -> CapLimits {
        CapLimits {
            max,
            per_ip,
            at_cap: AtConnectionCap::Close,
        }
    }

    #[test]
    fn the_caps_count_and_give_back() {
        let caps = Arc::new(Caps::default());
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let l = limits(3, Some(2));
        let p1 = caps.admit(a, &l).unwrap();
        let _p2 = caps.admit(a, &l).unwrap();
        assert_eq!(caps.admit(a, &l).unwrap_err(), Refused::PerIp);
        let _p3 = caps.admit(b, &l).unwrap();
        assert_eq!(caps.admit(b, &l).unwrap_err(), Refused::Full);
        assert_eq!(caps.open(), 3);
        drop(p1);
        assert_eq!(caps.open(), 2);
        assert!(caps.admit(a, &l).is_ok());
        assert_eq!(caps.open(), 2, "the permit was dropped at once");
        // A Unix socket's clients have no address: the global cap only.
        let _p4 = caps.admit(None, &l).unwrap();
        assert_eq!(caps.admit(None, &l).unwrap_err(), Refused::Full);
    }

    #[test]
    fn ipv6_is_counted_by_its_64() {
        let caps = Arc::new(Caps::default());
        let l = limits(10, Some(1));
        let _p = caps
            .admit(Some("2001:db8:1:2::1".parse().unwrap()), &l)
            .unwrap();
        assert!(
            caps.admit(Some("2001:db8:1:2::ffff".parse().unwrap()), &l)
                .is_err()
        );
        assert!(
            caps.admit(Some("2001:db8:1:3::1".parse().unwrap()), &l)
                .is_ok()
        );
        assert_eq!(caps.per_ip.len(), 1, "the dropped one left the map");
    }

    #[test]
    fn a_refused_address_leaves_nothing_behind() {
        let caps = Arc::new(Caps::default());
        let l = limits(10, Some(0));
        assert_eq!(
            caps.admit(Some("10.0.0.1".parse().unwrap()), &l)
                .unwrap_err(),
            Refused::PerIp
        );
        assert!(caps.per_ip.is_empty());
        assert_eq!(caps.open(), 0);
    }
}
