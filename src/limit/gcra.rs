//! A keyed GCRA (the generic cell rate algorithm, as in ATM networks,
//! nginx's `limit_req` and governor): per key, one instant, the
//! *theoretical arrival time* (TAT) of its next cell. A key may send
//! `burst` cells at once, then one per `period`.
//!
//! [`Gcra::reserve`] differs from governor's `check_key` in one way: a
//! cell that does not conform yet may *reserve* its place (the TAT moves
//! on) and be told how long to wait, so concurrent waiters queue one
//! `period` apart instead of all waking at once; a cell that would wait
//! longer than the caller allows is refused and reserves nothing.

use std::{
    hash::Hash,
    time::{Duration, Instant},
};

use dashmap::DashMap;

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

/// Per-key rate state: `burst` at once, then one per `period`.
#[derive(Debug)]
pub struct Gcra<K: Hash + Eq> {
    period: Duration,
    /// `burst × period`: how far ahead of now a key's TAT may run.
    tolerance: Duration,
    tats: DashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Gcra<K> {
    /// `burst` cells at once (at least one), then one per `period`.
    pub fn new(period: Duration, burst: u32) -> Self {
        Self {
            period,
            tolerance: period.saturating_mul(burst.max(1)),
            tats: DashMap::new(),
        }
    }

    /// Takes a cell for `key` at `now`: at once, after a wait of at most
    /// `max_wait` (reserved), or refused.
    pub fn reserve(&self, key: &K, now: Instant, max_wait: Duration) -> Decision {
        let mut tat = self.tats.entry(key.clone()).or_insert(now);
        let next = (*tat).max(now) + self.period;
        // The cell conforms once `next` is within the tolerance of now.
        let wait = next.saturating_duration_since(now + self.tolerance);
        if wait.is_zero() {
            *tat = next;
            Decision::Now
        } else if wait <= max_wait {
            *tat = next;
            Decision::After(wait)
        } else {
            Decision::Refused(wait)
        }
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }

    /// Forgets the keys whose TAT has passed: they are as good as new.
    pub fn forget_idle(&self, now: Instant) {
        self.tats.retain(|_, tat| *tat > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_goes_at_once_then_one_per_period() {
        let g = Gcra::new(S, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.reserve(&1, t0, S * 10), Decision::Now);
        }
        // Concurrent waiters queue one period apart.
        assert_eq!(g.reserve(&1, t0, S * 10), Decision::After(S));
        assert_eq!(g.reserve(&1, t0, S * 10), Decision::After(S * 2));
        // Another key is not touched.
        assert_eq!(g.reserve(&2, t0, S * 10), Decision::Now);
    }

    #[test]
    fn a_refused_cell_reserves_nothing() {
        let g = Gcra::new(S, 1);
        let t0 = Instant::now();
        assert_eq!(g.reserve(&1, t0, S), Decision::Now);
        assert_eq!(g.reserve(&1, t0, S), Decision::After(S));
        assert_eq!(g.reserve(&1, t0, S), Decision::Refused(S * 2));
        assert_eq!(g.reserve(&1, t0, S), Decision::Refused(S * 2));
        // Time heals.
        assert_eq!(g.reserve(&1, t0 + S * 2, S), Decision::Now);
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let g = Gcra::new(S, 2);
        let t0 = Instant::now();
        g.reserve(&1, t0, S);
        g.reserve(&2, t0 + S * 5, S);
        g.forget_idle(t0 + S * 2);
        assert_eq!(g.len(), 1);
    }
}
