//! One backend's active-health verdict: up or down, the probes in a row
//! that disagree with it, and why the last probe failed.
//!
//! Only its group's health actor writes it (one probe at a time per
//! backend); requests read `down` with one relaxed load. It lives in the
//! `Backend`, so it survives a reload that keeps the backend and a
//! restart of the actor.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU32, Ordering::Relaxed},
};

/// A change of verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// `fall` probes failed in a row: out.
    Down,
    /// `rise` probes passed in a row: back.
    Up,
}

/// The verdict of active checks on one backend (up until probed).
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    down: AtomicBool,
    /// Probes in a row against the verdict: passes while down, failures
    /// while up.
    streak: AtomicU32,
    /// Why the last probe failed; empty after a pass.
    last_error: Mutex<String>,
}

impl Verdict {
    /// Whether active checks have it out.
    pub(crate) fn down(&self) -> bool {
        self.down.load(Relaxed)
    }

    /// Why the last probe failed, if it did.
    pub(crate) fn last_error(&self) -> Option<String> {
        let e = self.last_error.lock().ok()?;
        (!e.is_empty()).then(|| e.clone())
    }

    /// Records one probe's outcome; returns the change it made, if any.
    pub(crate) fn record(&self, outcome: Result<(), String>, rise: u32, fall: u32) -> Option<Turn> {
        let passed = outcome.is_ok();
        if let Ok(mut e) = self.last_error.lock() {
            *e = outcome.err().unwrap_or_default();
        }
        let down = self.down();
        if passed != down {
            // Agrees with the verdict: nothing builds up.
            self.streak.store(0, Relaxed);
            return None;
        }
        let streak = self.streak.fetch_add(1, Relaxed) + 1;
        if streak < if down { rise } else { fall } {
            return None;
        }
        self.streak.store(0, Relaxed);
        self.down.store(!down, Relaxed);
        Some(if down { Turn::Up } else { Turn::Down })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_failures_take_it_down_and_rise_passes_bring_it_back() {
        let v = Verdict::default();
        let fail = || Err("status 503".to_owned());
        assert_eq!(v.record(fail(), 2, 3), None);
        assert_eq!(v.record(fail(), 2, 3), None);
        // A pass in between starts the count again.
        assert_eq!(v.record(Ok(()), 2, 3), None);
        assert_eq!(v.record(fail(), 2, 3), None);
        assert_eq!(v.record(fail(), 2, 3), None);
        assert_eq!(v.record(fail(), 2, 3), Some(Turn::Down));
        assert!(v.down());
        assert_eq!(v.last_error().as_deref(), Some("status 503"));
        assert_eq!(v.record(Ok(()), 2, 3), None);
        assert_eq!(v.record(fail(), 2, 3), None);
        assert_eq!(v.record(Ok(()), 2, 3), None);
        assert_eq!(v.record(Ok(()), 2, 3), Some(Turn::Up));
        assert!(!v.down());
        assert_eq!(v.last_error(), None);
    }
}
