//! The one restart policy: exponential backoff inside an intensity window.
//!
//! Every supervisor in the tree uses it, so a crashing child is restarted the
//! same way wherever it lives, and a child that keeps crashing escalates
//! instead of spinning.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// How a supervisor restarts a failed child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed inside `window` before the supervisor gives up.
    pub max_restarts: u32,
    /// The sliding window that `max_restarts` counts in.
    pub window: Duration,
    /// Delay before the first restart; doubles with each restart in the window.
    pub backoff_base: Duration,
    /// Upper bound of the delay.
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    /// 5 restarts in 30 s, backing off from 50 ms to 5 s.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(30),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// What to do about one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart the child after this delay.
    Restart {
        /// How long to wait first.
        after: Duration,
        /// The restart count inside the current window, this one included.
        attempt: u32,
    },
    /// Too many restarts in the window: escalate.
    GiveUp,
}

/// Failure history of one child under a [`RestartPolicy`].
#[derive(Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    total: u64,
}

impl RestartTracker {
    /// A tracker with no failures yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Records a failure at `now` and decides what to do.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        while let Some(first) = self.recent.front() {
            if now.duration_since(*first) > self.policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.total += 1;
        if self.recent.len() as u32 >= self.policy.max_restarts {
            return Decision::GiveUp;
        }
        self.recent.push_back(now);
        let attempt = self.recent.len() as u32;
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        let after = self
            .policy
            .backoff_base
            .saturating_mul(factor)
            .min(self.policy.backoff_max);
        Decision::Restart { after, attempt }
    }

    /// The policy this tracker applies.
    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// Failures recorded over the child's whole life.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(250),
        }
    }

    #[test]
    fn backoff_doubles_then_caps_then_gives_up() {
        let mut t = RestartTracker::new(policy());
        let now = Instant::now();
        let delays: Vec<_> = (0..3)
            .map(|_| match t.on_failure(now) {
                Decision::Restart { after, .. } => after,
                Decision::GiveUp => panic!("gave up too early"),
            })
            .collect();
        assert_eq!(delays, [100, 200, 250].map(Duration::from_millis).to_vec());
        assert_eq!(t.on_failure(now), Decision::GiveUp);
        assert_eq!(t.total(), 4);
    }

    #[test]
    fn window_forgets_old_failures() {
        let mut t = RestartTracker::new(policy());
        let start = Instant::now();
        for _ in 0..3 {
            t.on_failure(start);
        }
        let later = start + Duration::from_secs(11);
        assert_eq!(
            t.on_failure(later),
            Decision::Restart {
                after: Duration::from_millis(100),
                attempt: 1
            }
        );
    }
}
