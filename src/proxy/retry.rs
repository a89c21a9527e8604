//! When a failed try may be tried again, and the retry budget.
//!
//! The rules (nginx's, Pingora's): a request whose connection could not
//! be opened, or that never left (hyper gave it back), may always go to
//! another backend; one that was sent only if its method is idempotent
//! and its body was kept whole; never once anything of the response has
//! reached the client (the proxy returns before relaying). On top, a
//! budget: retries may not pass a share of the group's recent requests,
//! so a failing group is not hit with the retries too.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::backend::now_ms;

/// The budget's window.
const WINDOW_MS: u64 = 10_000;

/// How a try failed, as far as a retry cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The request did not leave: no connection, or hyper gave it back.
    No,
    /// It may have reached the backend.
    Maybe,
}

/// Whether a try that failed this way may be made again (the budget and
/// the limits aside).
pub(crate) fn safe(sent: Sent, idempotent: bool, replayable: bool) -> bool {
    match sent {
        Sent::No => true,
        Sent::Maybe => idempotent && replayable,
    }
}

/// Whether an HTTP/2 request failed in a way that says the backend never
/// processed it, so any method may go again (RFC 9113 §8.7): its stream
/// was refused, or a graceful GOAWAY left it out. HTTP/1.1 has no such
/// word.
pub(crate) fn unprocessed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        source = s.source();
    }
    false
}

/// Retries allowed as a share of requests over a sliding 10 s (two
/// fixed windows, the previous one weighted by how much of it still
/// overlaps). Counted with atomics; a race at a window's turn may lose
/// a count, which only nudges the share.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// The current window's number (`now_ms / WINDOW_MS`).
    window: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    prev_requests: AtomicU64,
    prev_retries: AtomicU64,
}

impl Budget {
    fn turn(&self, now: u64) {
        let w = now / WINDOW_MS;
        let current = self.window.load(Relaxed);
        if current == w {
            return;
        }
        if self
            .window
            .compare_exchange(current, w, Relaxed, Relaxed)
            .is_ok()
        {
            let (req, ret) = (
                self.requests.swap(0, Relaxed),
                self.retries.swap(0, Relaxed),
            );
            // A gap of more than one window leaves nothing to carry.
            let keep = w == current + 1;
            self.prev_requests
                .store(if keep { req } else { 0 }, Relaxed);
            self.prev_retries.store(if keep { ret } else { 0 }, Relaxed);
        }
    }

    /// Counts a request (its first try).
    pub(crate) fn request(&self) {
        self.turn(now_ms());
        self.requests.fetch_add(1, Relaxed);
    }

    /// Takes a retry from the budget, if there is one left: retries in
    /// the window stay under `min + share × requests`.
    pub(crate) fn try_retry(&self, share: f64, min: u32) -> bool {
        let now = now_ms();
        self.turn(now);
        let overlap = 1.0 - (now % WINDOW_MS) as f64 / WINDOW_MS as f64;
        let requests =
            self.requests.load(Relaxed) as f64 + self.prev_requests.load(Relaxed) as f64 * overlap;
        let retries =
            self.retries.load(Relaxed) as f64 + self.prev_retries.load(Relaxed) as f64 * overlap;
        if retries + 1.0 > f64::from(min) + share * requests {
            return false;
        }
        self.retries.fetch_add(1, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_tries_are_retried() {
        assert!(safe(Sent::No, false, false));
        assert!(safe(Sent::Maybe, true, true));
        assert!(!safe(Sent::Maybe, false, true), "a sent POST");
        assert!(!safe(Sent::Maybe, true, false), "a streamed body");
    }

    #[test]
    fn only_a_refused_or_left_out_h2_stream_is_unprocessed() {
        let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert!(unprocessed(&refused));
        // Found down the chain, as hyper wraps it (its `source`).
        #[derive(Debug)]
        struct Wrap(h2::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert!(unprocessed(&Wrap(h2::Reason::REFUSED_STREAM.into())));
        assert!(!unprocessed(&Wrap(h2::Reason::PROTOCOL_ERROR.into())));
        assert!(!unprocessed(&h2::Error::from(h2::Reason::INTERNAL_ERROR)));
        assert!(!unprocessed(&h2::Error::from(h2::Reason::CANCEL)));
        assert!(!unprocessed(&std::io::Error::other("reset")));
    }

    #[test]
    fn the_budget_caps_retries_at_a_share_of_requests() {
        let b = Budget::default();
        for _ in 0..100 {
            b.request();
        }
        let allowed = (0..100).filter(|_| b.try_retry(0.2, 3)).count();
        // 3 + 20% of 100, give or take the window's turn.
        assert!((20..=23).contains(&allowed), "{allowed}");
        let quiet = Budget::default();
        assert_eq!((0..10).filter(|_| quiet.try_retry(0.2, 3)).count(), 3);
    }
}
