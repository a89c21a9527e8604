//! The key-value store every module shares, and its memory bulkhead: each
//! module's quota of keys and bytes (`kv` in its config, [`KvQuota`]).
//!
//! The namespace is one: any module reads, overwrites and deletes any key.
//! What is per module is the bill. Each entry is charged to the module that
//! wrote it last (key + value + [`KV_ENTRY_OVERHEAD`]); an overwrite charges
//! the writer and credits the previous owner, a delete credits the owner. A
//! write that would take its writer past its quota is refused with
//! [`KvRefused`], which the module sees; nothing is ever evicted to make
//! room, so no module can push another's keys out.
//!
//! A read takes only the map's shard lock, as it did before there were
//! quotas. A write changes the entry under the shard's write lock and the
//! ledgers of the writer and the previous owner under each one's own mutex
//! (always shard first, then one ledger at a time, so nothing deadlocks):
//! two modules racing on one key are serialized by the shard, and two keys
//! of one module on different shards by its ledger, so a module's usage is
//! exactly the sum of what it owns and never passes its quota.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dashmap::{DashMap, mapref::entry::Entry as Slot};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};

pub use crate::config::schema::{KV_ENTRY_OVERHEAD, KvQuota};

/// Why a write was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KvRefused {
    /// It would take the module past its quota.
    #[error("{0}")]
    Full(String),
    /// It never reached the store: a module process whose server did not
    /// answer in time, or an instance that is already gone.
    #[error("{0}")]
    Unavailable(String),
}

impl KvRefused {
    /// The C ABI's return code for it (`TROUPE_KV_FULL`, `TROUPE_ERROR`).
    pub fn code(&self) -> i32 {
        match self {
            KvRefused::Full(_) => troupe_abi::KV_FULL,
            KvRefused::Unavailable(_) => troupe_abi::ERROR,
        }
    }
}

/// What one key costs its owner.
pub fn entry_cost(key: &str, value: &[u8]) -> u64 {
    (key.len() as u64)
        .saturating_add(value.len() as u64)
        .saturating_add(KV_ENTRY_OVERHEAD)
}

/// One value and who pays for it.
struct Entry {
    value: Bytes,
    owner: Arc<Account>,
    /// What it was charged ([`entry_cost`]), credited back when it goes.
    cost: u64,
}

/// A module's usage and quota, and its series.
struct Account {
    module: Arc<str>,
    ledger: Mutex<Ledger>,
    keys: IntGauge,
    bytes: IntGauge,
    refused: IntCounter,
}

#[derive(Debug, Clone, Copy)]
struct Ledger {
    keys: u64,
    bytes: u64,
    quota: KvQuota,
}

impl Account {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // The ledger is plain numbers, consistent after every statement.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `keys` keys and `add` bytes and takes `sub` bytes off (an
    /// overwrite of its own key), unless that passes the quota. A change
    /// that does not grow a count is never refused, so a module over a
    /// quota lowered by a reload can still shrink and delete.
    fn charge(&self, keys: u64, add: u64, sub: u64) -> Result<(), KvRefused> {
        let mut l = self.ledger();
        let new_keys = l.keys.saturating_add(keys);
        let new_bytes = l.bytes.saturating_add(add).saturating_sub(sub);
        let q = l.quota;
        let refusal = if q.keys == 0 && q.bytes == 0 {
            Some(format!(
                "module `{}` may not write the store (its `kv` quota is 0 keys, 0 bytes)",
                self.module
            ))
        } else if keys > 0 && new_keys > q.keys {
            Some(format!(
                "module `{}` is over its store quota: it holds {} of {} keys (`kv.keys`)",
                self.module, l.keys, q.keys
            ))
        } else if new_bytes > l.bytes && new_bytes > q.bytes {
            Some(format!(
                "module `{}` is over its store quota: the write needs {} bytes and {} of {} are in use (`kv.bytes`)",
                self.module,
                add.saturating_sub(sub),
                l.bytes,
                q.bytes
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            drop(l);
            self.refused.inc();
            tracing::debug!(module = %self.module, "store write refused: {why}");
            return Err(KvRefused::Full(why));
        }
        l.keys = new_keys;
        l.bytes = new_bytes;
        self.publish(&l);
        Ok(())
    }

    /// Takes back what a key it owned cost.
    fn credit(&self, keys: u64, bytes: u64) {
        let mut l = self.ledger();
        l.keys = l.keys.saturating_sub(keys);
        l.bytes = l.bytes.saturating_sub(bytes);
        self.publish(&l);
    }

    /// The gauges, set under the ledger's lock so they never go back in time.
    fn publish(&self, l: &Ledger) {
        self.keys.set(i64::try_from(l.keys).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(l.bytes).unwrap_or(i64::MAX));
    }
}

/// The store's series, one label `module` each.
#[derive(Debug, Clone)]
struct Series {
    refused: IntCounterVec,
    keys: IntGaugeVec,
    bytes: IntGaugeVec,
}

impl Series {
    fn new(registry: &Registry) -> Self {
        let refused = IntCounterVec::new(
            Opts::new(
                "troupe_module_kv_refused_total",
                "Writes to the shared store refused because the module was at its `kv` quota.",
            ),
            &["module"],
        )
        .expect("the metric name and labels are valid");
        let keys = IntGaugeVec::new(
            Opts::new(
                "troupe_module_kv_keys",
                "Keys of the shared store each module owns (wrote last).",
            ),
            &["module"],
        )
        .expect("the metric name and labels are valid");
        let bytes = IntGaugeVec::new(
            Opts::new(
                "troupe_module_kv_bytes",
                "Bytes of the shared store charged to each module (keys, values and a fixed overhead per key).",
            ),
            &["module"],
        )
        .expect("the metric name and labels are valid");
        // A second server in one process registers again; the first wins.
        let _ = registry.register(Box::new(refused.clone()));
        let _ = registry.register(Box::new(keys.clone()));
        let _ = registry.register(Box::new(bytes.clone()));
        Self {
            refused,
            keys,
            bytes,
        }
    }
}

/// The shared store.
pub struct Store {
    map: DashMap<String, Entry>,
    /// One per module that was given a quota or wrote; never removed, so an
    /// entry's owner stays the account its module's later writes use.
    accounts: DashMap<Arc<str>, Arc<Account>>,
    series: Series,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.map.len())
            .field("modules", &self.accounts.len())
            .finish()
    }
}

impl Store {
    /// An empty store whose series are registered in `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            map: DashMap::new(),
            accounts: DashMap::new(),
            series: Series::new(registry),
        }
    }

    fn account(&self, module: &str) -> Arc<Account> {
        if let Some(a) = self.accounts.get(module) {
            return a.clone();
        }
        self.accounts
            .entry(Arc::from(module))
            .or_insert_with(|| {
                Arc::new(Account {
                    module: Arc::from(module),
                    ledger: Mutex::new(Ledger {
                        keys: 0,
                        bytes: 0,
                        quota: KvQuota::default(),
                    }),
                    keys: self.series.keys.with_label_values(&[module]),
                    bytes: self.series.bytes.with_label_values(&[module]),
                    refused: self.series.refused.with_label_values(&[module]),
                })
            })
            .clone()
    }

    /// Sets `module`'s quota (at each load of the module, from its config).
    /// What it holds already stays; past a lowered quota, its writes that
    /// would grow its usage are refused until it is back under.
    pub fn set_quota(&self, module: &str, quota: KvQuota) {
        let account = self.account(module);
        account.ledger().quota = quota;
        // The series exist from the start, so a dashboard sees 0, not nothing.
        let l = *account.ledger();
        account.publish(&l);
    }

    /// A key's value.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.map.get(key).map(|e| e.value.clone())
    }

    /// Stores `value` under `key`, charged to `module`, unless that takes
    /// `module` past its quota.
    pub fn set(&self, module: &str, key: &str, value: Bytes) -> Result<(), KvRefused> {
        let writer = self.account(module);
        let cost = entry_cost(key, &value);
        // The entry stays locked until the ledgers agree with it.
        match self.map.entry(key.to_owned()) {
            Slot::Occupied(mut slot) => {
                let old = slot.get();
                if Arc::ptr_eq(&old.owner, &writer) {
                    writer.charge(0, cost, old.cost)?;
                } else {
                    writer.charge(1, cost, 0)?;
                    old.owner.credit(1, old.cost);
                }
                slot.insert(Entry {
                    value,
                    owner: writer,
                    cost,
                });
            }
            Slot::Vacant(slot) => {
                writer.charge(1, cost, 0)?;
                slot.insert(Entry {
                    value,
                    owner: writer,
                    cost,
                });
            }
        }
        Ok(())
    }

    /// Deletes `key`, crediting its owner.
    pub fn delete(&self, key: &str) {
        // Credited while the entry is still locked: a write of the same key
        // waits for it, so the owner is never charged twice at once.
        self.map.remove_if(key, |_, e| {
            e.owner.credit(1, e.cost);
            true
        });
    }

    /// What `module` holds: (keys, bytes).
    pub fn usage(&self, module: &str) -> (u64, u64) {
        self.accounts.get(module).map_or((0, 0), |a| {
            let l = a.ledger();
            (l.keys, l.bytes)
        })
    }

    /// Writes `module` was refused.
    pub fn refused(&self, module: &str) -> u64 {
        self.series.refused.with_label_values(&[module]).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(&Registry::new())
    }

    fn quota(keys: u64, bytes: u64) -> KvQuota {
        KvQuota { keys, bytes }
    }

    /// The usage of every module, recounted from the entries.
    fn recount(s: &Store) -> std::collections::HashMap<String, (u64, u64)> {
        let mut out = std::collections::HashMap::new();
        for e in s.map.iter() {
            let u = out.entry(e.owner.module.to_string()).or_insert((0, 0));
            u.0 += 1;
            u.1 += e.cost;
        }
        out
    }

    #[test]
    fn writes_past_the_quota_are_refused_and_counted() {
        let s = store();
        let cost = entry_cost("k0", b"0123456789");
        s.set_quota("a", quota(3, 1_000_000));
        for i in 0..3 {
            s.set("a", &format!("k{i}"), Bytes::from_static(b"0123456789"))
                .unwrap();
        }
        let err = s.set("a", "k3", Bytes::from_static(b"x")).unwrap_err();
        assert!(
            matches!(&err, KvRefused::Full(m) if m.contains("3 of 3 keys")),
            "{err}"
        );
        assert_eq!(s.get("k3"), None);
        assert_eq!(s.refused("a"), 1);
        // Overwriting its own key adds no key, so it still fits.
        s.set("a", "k0", Bytes::from_static(b"short")).unwrap();
        assert_eq!(s.usage("a"), (3, 2 * cost + entry_cost("k0", b"short")));

        s.set_quota("b", quota(100, 2 * KV_ENTRY_OVERHEAD + 10));
        s.set("b", "x", Bytes::from_static(b"1234")).unwrap();
        let err = s.set("b", "y", Bytes::from(vec![0; 100])).unwrap_err();
        assert!(
            matches!(&err, KvRefused::Full(m) if m.contains("kv.bytes")),
            "{err}"
        );
        assert_eq!(s.refused("b"), 1);
        assert_eq!(s.usage("b"), (1, entry_cost("x", b"1234")));
    }

    #[test]
    fn a_zero_quota_may_not_write_but_may_read_and_delete() {
        let s = store();
        s.set("a", "k", Bytes::from_static(b"v")).unwrap();
        s.set_quota("ro", quota(0, 0));
        let err = s.set("ro", "k2", Bytes::from_static(b"v")).unwrap_err();
        assert!(err.to_string().contains("may not write"), "{err}");
        assert_eq!(s.get("k").as_deref(), Some(&b"v"[..]));
        s.delete("k");
        assert_eq!(s.usage("a"), (0, 0));
    }

    #[test]
    fn an_overwrite_moves_the_charge_and_a_delete_credits_the_owner() {
        let s = store();
        s.set("a", "shared", Bytes::from_static(b"from a")).unwrap();
        assert_eq!(s.usage("a"), (1, entry_cost("shared", b"from a")));
        s.set("b", "shared", Bytes::from_static(b"b's longer value"))
            .unwrap();
        assert_eq!(s.usage("a"), (0, 0));
        assert_eq!(s.usage("b"), (1, entry_cost("shared", b"b's longer value")));
        // Anyone may delete; the owner gets the credit.
        s.delete("shared");
        assert_eq!(s.usage("b"), (0, 0));
        s.delete("shared");
        assert_eq!(s.usage("b"), (0, 0));
    }

    #[test]
    fn a_module_at_its_quota_cannot_take_over_anothers_key() {
        let s = store();
        s.set_quota("full", quota(1, 1_000));
        s.set("full", "mine", Bytes::from_static(b"v")).unwrap();
        s.set("other", "theirs", Bytes::from_static(b"keep"))
            .unwrap();
        assert!(s.set("full", "theirs", Bytes::from_static(b"x")).is_err());
        // Refused means untouched: the value and the bill stay the other's.
        assert_eq!(s.get("theirs").as_deref(), Some(&b"keep"[..]));
        assert_eq!(s.usage("other"), (1, entry_cost("theirs", b"keep")));
    }

    #[test]
    fn a_lowered_quota_keeps_what_is_held_and_lets_it_shrink() {
        let s = store();
        s.set("a", "k", Bytes::from(vec![0; 500])).unwrap();
        s.set_quota("a", quota(1, 100));
        assert!(s.set("a", "k", Bytes::from(vec![0; 600])).is_err());
        s.set("a", "k", Bytes::from(vec![0; 400])).unwrap();
        assert_eq!(s.usage("a"), (1, entry_cost("k", &[0; 400])));
    }

    #[test]
    fn concurrent_writers_keep_the_ledgers_exact_and_within_quota() {
        let s = Arc::new(store());
        let modules = ["a", "b", "c", "d"];
        for m in modules {
            s.set_quota(m, quota(40, 40 * (KV_ENTRY_OVERHEAD + 20)));
        }
        let threads: Vec<_> = modules
            .into_iter()
            .enumerate()
            .map(|(t, m)| {
                let s = s.clone();
                std::thread::spawn(move || {
                    // Every module writes, overwrites and deletes the same
                    // 64 keys, with values of varying length.
                    for i in 0..20_000u64 {
                        let key = format!("k{}", (i * 7 + t as u64) % 64);
                        if i % 5 == 0 {
                            s.delete(&key);
                        } else {
                            let len = ((i * 13 + t as u64) % 17) as usize;
                            let _ = s.set(m, &key, Bytes::from(vec![b'x'; len]));
                        }
                        let (keys, bytes) = s.usage(m);
                        assert!(keys <= 40 && bytes <= 40 * (KV_ENTRY_OVERHEAD + 20));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The quotas were met (64 keys for 4 × 40), so refusals raced too.
        assert!(modules.iter().all(|m| s.refused(m) > 0));
        let counted = recount(&s);
        for m in modules {
            assert_eq!(
                s.usage(m),
                counted.get(m).copied().unwrap_or((0, 0)),
                "module {m}"
            );
            let a = s.account(m);
            assert_eq!(a.keys.get() as u64, s.usage(m).0);
            assert_eq!(a.bytes.get() as u64, s.usage(m).1);
        }
    }
}
