//! A keyed GCRA (the generic cell rate algorithm, as in ATM networks,
//! nginx's `limit_req` and governor): per key, one instant, the
//! *theoretical arrival time* (TAT) of its next cell. A key may send
//! `burst` cells at once, then one per `period`.
//!
//! The TATs live in governor's keyed store (one atomic per key in a
//! sharded map, updated by compare-and-swap, with its eviction of keys
//! whose TAT has passed). The decision is ours, because governor's own
//! only answers "now" or "not yet": [`Gcra::reserve`] lets a cell that
//! does not conform yet *reserve* its place (the TAT moves on) and be
//! told how long to wait, so concurrent waiters queue one `period` apart
//! instead of all waking at once, which is nginx's `limit_req` without
//! `nodelay`. A cell that would wait longer than the caller allows is
//! refused and reserves nothing.

use std::{
    hash::Hash,
    time::{Duration, Instant},
};

use governor::{
    nanos::Nanos,
    state::{StateStore, keyed::DashMapStateStore, keyed::ShrinkableKeyedStateStore},
};

/// What [`Gcra::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go now.
    Now,
    /// A place is reserved: go after this long.
    After(Duration),
    /// No place within the allowed wait; the next cell conforms after
    /// this long.
    Refused(Duration),
}

/// Per-key rate state: one cell per `period`, a burst chosen per call.
pub struct Gcra<K: Hash + Eq + Clone> {
    period: u64,
    /// Instant 0 of the stored TATs (governor stores nanoseconds since
    /// a reference; 0 means "no state").
    epoch: Instant,
    tats: DashMapStateStore<K>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Gcra<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcra")
            .field("period", &Duration::from_nanos(self.period))
            .field("keys", &self.tats.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> Gcra<K> {
    /// One cell per `period` (at least a nanosecond).
    pub fn new(period: Duration) -> Self {
        // Starting the clock a second back keeps every TAT above 0, the
        // store's "no state".
        let epoch = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        Self {
            period: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1),
            epoch,
            tats: DashMapStateStore::default(),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes a cell for `key` at `now`: at once if fewer than `burst`
    /// (at least one) are ahead of the rate, after a wait of at most
    /// `max_wait` (reserved), or refused. The flag says whether the key
    /// was new to the store.
    pub fn reserve(
        &self,
        key: &K,
        now: Instant,
        burst: u32,
        max_wait: Duration,
    ) -> (Decision, bool) {
        let now = self.nanos(now);
        let tolerance = self.period.saturating_mul(u64::from(burst.max(1)));
        let max_wait = u64::try_from(max_wait.as_nanos()).unwrap_or(u64::MAX);
        let decided = self.tats.measure_and_replace(key, |tat| {
            let fresh = tat.is_none();
            let tat = tat.map_or(now, Nanos::as_u64);
            let next = tat.max(now).saturating_add(self.period);
            // The cell conforms once `next` is within the tolerance of now.
            let wait = next.saturating_sub(now.saturating_add(tolerance));
            if wait == 0 {
                Ok(((Decision::Now, fresh), Nanos::from(next)))
            } else if wait <= max_wait {
                Ok((
                    (Decision::After(Duration::from_nanos(wait)), fresh),
                    Nanos::from(next),
                ))
            } else {
                Err(Duration::from_nanos(wait))
            }
        });
        decided.unwrap_or_else(|wait| (Decision::Refused(wait), false))
    }

    /// Whether `key` has state.
    pub fn contains(&self, key: &K) -> bool {
        self.tats.contains_key(key)
    }

    /// Keys tracked (takes every shard's lock in turn: not for the
    /// request path).
    pub fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&self.tats)
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&self.tats)
    }

    /// Forgets the keys whose TAT has passed at `now` (they are as good
    /// as new) and gives the memory back.
    pub fn forget_idle(&self, now: Instant) {
        ShrinkableKeyedStateStore::retain_recent(&self.tats, Nanos::from(self.nanos(now)));
        ShrinkableKeyedStateStore::shrink_to_fit(&self.tats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn take(g: &Gcra<u32>, key: u32, now: Instant, burst: u32, max_wait: Duration) -> Decision {
        g.reserve(&key, now, burst, max_wait).0
    }

    #[test]
    fn a_burst_goes_at_once_then_one_per_period() {
        let g = Gcra::new(S);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(take(&g, 1, t0, 3, S * 10), Decision::Now);
        }
        // Concurrent waiters queue one period apart.
        assert_eq!(take(&g, 1, t0, 3, S * 10), Decision::After(S));
        assert_eq!(take(&g, 1, t0, 3, S * 10), Decision::After(S * 2));
        // Another key is not touched.
        assert_eq!(take(&g, 2, t0, 3, S * 10), Decision::Now);
    }

    #[test]
    fn a_refused_cell_reserves_nothing() {
        let g = Gcra::new(S);
        let t0 = Instant::now();
        assert_eq!(take(&g, 1, t0, 1, S), Decision::Now);
        assert_eq!(take(&g, 1, t0, 1, S), Decision::After(S));
        assert_eq!(take(&g, 1, t0, 1, S), Decision::Refused(S * 2));
        assert_eq!(take(&g, 1, t0, 1, S), Decision::Refused(S * 2));
        // Time heals.
        assert_eq!(take(&g, 1, t0 + S * 2, 1, S), Decision::Now);
    }

    #[test]
    fn the_first_cell_of_a_key_says_it_is_new() {
        let g = Gcra::new(S);
        let t0 = Instant::now();
        assert_eq!(g.reserve(&1, t0, 1, S), (Decision::Now, true));
        assert_eq!(g.reserve(&1, t0, 1, S), (Decision::After(S), false));
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let g = Gcra::new(S);
        let t0 = Instant::now();
        take(&g, 1, t0, 2, S);
        take(&g, 2, t0 + S * 5, 2, S);
        g.forget_idle(t0 + S * 2);
        assert_eq!(g.len(), 1);
        assert!(g.contains(&2));
    }
}
