//! 414 for a request line longer than the head limit.
//!
//! RFC 9112 §3: a server that receives a request-target longer than any
//! URI it wishes to parse MUST answer 414 (URI Too Long). hyper bounds the
//! whole head (`max_buf_size`, from `max_header_bytes`) and answers 431
//! when it overflows, whether the request line or the fields filled it;
//! its own 414 covers only targets over 65,534 bytes inside a head that
//! fits, which the limit stops first.
//!
//! So the socket wrappers show each read to a [`LineWatch`], which keeps
//! two facts: whether a line end arrived since the last request was
//! dispatched or answered, and how many bytes have arrived since the last
//! line end. When hyper then writes its 431 and neither a line end nor
//! fewer than hyper's smallest head limit of bytes came since, the head was
//! all request line: the status line is swapped for a 414 of the same
//! length (the reason phrase is padded with words), so hyper's accounting
//! of what it wrote stays true, even across a partial write.
//!
//! One case is misread: a pipelined request whose request line arrived
//! before the previous answer, followed by a single field line longer than
//! the whole head limit, gets 414 where 431 was due. Both are refusals.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::settings::MIN_HEAD_BUF;

/// The status line hyper writes when a head overflows its buffer.
const HYPERS_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n";
/// Ours, of the same length.
const OURS_414: &[u8] = b"HTTP/1.1 414 URI Too Long (the request line)\r\n";
const _: () = assert!(HYPERS_431.len() == OURS_414.len());

/// What one connection's reads say about the request line being read.
/// Only the connection's own task touches it: relaxed loads and stores.
#[derive(Debug, Default)]
pub(crate) struct LineWatch {
    /// A line end arrived since the last request was dispatched or answered.
    line_end: AtomicBool,
    /// Bytes read since the last line end (or since the last dispatch or
    /// answer).
    run: AtomicUsize,
    /// Bytes of [`OURS_414`] handed to the socket so far: 0 when no
    /// swap is under way.
    swapped: AtomicUsize,
}

impl LineWatch {
    /// Looks at bytes just read from the socket.
    pub(crate) fn read(&self, bytes: &[u8]) {
        match memchr::memrchr(b'\n', bytes) {
            Some(i) => {
                self.run.store(bytes.len() - i - 1, Ordering::Relaxed);
                if !self.line_end.load(Ordering::Relaxed) {
                    self.line_end.store(true, Ordering::Relaxed);
                }
            }
            None => {
                let run = self.run.load(Ordering::Relaxed);
                self.run
                    .store(run.saturating_add(bytes.len()), Ordering::Relaxed);
            }
        }
    }

    /// A request was dispatched or answered: what follows is the next one.
    pub(crate) fn settled(&self) {
        if self.line_end.load(Ordering::Relaxed) {
            self.line_end.store(false, Ordering::Relaxed);
        }
        if self.run.load(Ordering::Relaxed) != 0 {
            self.run.store(0, Ordering::Relaxed);
        }
    }

    /// What to write in place of `first`, the first bytes of a write: the
    /// 414 over hyper's 431 (or the rest of it, after a partial write).
    /// `None`: write them as they are.
    pub(crate) fn swap(&self, first: &[u8]) -> Option<Vec<u8>> {
        let done = self.swapped.load(Ordering::Relaxed);
        if done == 0 {
            if self.run.load(Ordering::Relaxed) < MIN_HEAD_BUF
                || self.line_end.load(Ordering::Relaxed)
                || !first.starts_with(HYPERS_431)
            {
                return None;
            }
        } else if done >= OURS_414.len() {
            return None;
        }
        // hyper resumes a partial write where the socket stopped: `first`
        // starts `done` bytes into its status line.
        let rest = &OURS_414[done..];
        let n = rest.len().min(first.len());
        let mut out = first.to_vec();
        out[..n].copy_from_slice(&rest[..n]);
        Some(out)
    }

    /// `n` bytes of a swapped write went out.
    pub(crate) fn swapped(&self, n: usize) {
        let done = self.swapped.load(Ordering::Relaxed);
        self.swapped
            .store((done + n).min(OURS_414.len()), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overflowing(w: &LineWatch) {
        w.read(b"GET /");
        w.read(&vec![b'a'; MIN_HEAD_BUF]);
    }

    #[test]
    fn a_head_without_a_line_end_swaps_the_431() {
        let w = LineWatch::default();
        overflowing(&w);
        let mut hyper = HYPERS_431.to_vec();
        hyper.extend_from_slice(b"content-length: 0\r\n\r\n");
        let out = w.swap(&hyper).unwrap();
        assert!(out.starts_with(OURS_414));
        assert_eq!(out.len(), hyper.len());
        w.swapped(10);
        // A partial write: hyper goes on from byte 10 of its line.
        let again = w.swap(&hyper[10..]).unwrap();
        assert_eq!(&again[..OURS_414.len() - 10], &OURS_414[10..]);
        w.swapped(again.len());
        assert!(w.swap(b"anything").is_none());
    }

    #[test]
    fn a_line_end_in_the_head_keeps_the_431() {
        let w = LineWatch::default();
        w.read(b"GET / HTTP/1.1\r\nX-A: ");
        w.read(&vec![b'a'; MIN_HEAD_BUF * 2]);
        assert!(w.swap(HYPERS_431).is_none());
    }

    #[test]
    fn an_answer_or_a_short_run_is_never_swapped() {
        let w = LineWatch::default();
        overflowing(&w);
        w.settled();
        assert!(w.swap(HYPERS_431).is_none(), "a proxied 431 after a body");
        w.read(b"GET / HTTP/1.1\r\n\r\n");
        w.settled();
        w.read(b"GET /short");
        assert!(w.swap(HYPERS_431).is_none());
    }
}
