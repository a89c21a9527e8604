//! A byte pattern for very large bodies that is free to make and cheap to
//! check: byte `i` of a body is `table[i % PERIOD]`. A chunk lost,
//! doubled or out of place shows as a mismatch at its offset (the period
//! is prime, so no chunk size is a multiple of it), and both ends check by
//! comparing slices (memcmp) rather than hashing a gigabyte byte by byte
//! in a debug build.

use std::{convert::Infallible, sync::OnceLock};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Frame;

/// The pattern repeats every this many bytes (a prime).
const PERIOD: usize = 65_521;
/// Frames are at most this long, and so is each comparison.
pub const CHUNK: usize = 64 * 1024;

/// One period and then a chunk more, so that any chunk of the pattern
/// is one slice of it.
fn table() -> &'static Bytes {
    static TABLE: OnceLock<Bytes> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..PERIOD + CHUNK)
            .map(|i| {
                let i = (i % PERIOD) as u32;
                (i.wrapping_mul(2_654_435_761) >> 24) as u8
            })
            .collect::<Vec<u8>>()
            .into()
    })
}

/// The `len` (at most [`CHUNK`]) bytes of the pattern from `offset`,
/// without a copy.
pub fn slice(offset: u64, len: usize) -> Bytes {
    assert!(len <= CHUNK);
    let start = (offset % PERIOD as u64) as usize;
    table().slice(start..start + len)
}

/// A body of `n` bytes of the pattern, as [`CHUNK`]-sized frames made
/// when they are polled.
pub fn frames(n: u64) -> impl Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static {
    let chunks = n.div_ceil(CHUNK as u64);
    futures_util::stream::iter((0..chunks).map(move |i| {
        let offset = i * CHUNK as u64;
        let len = (n - offset).min(CHUNK as u64) as usize;
        Ok(Frame::data(slice(offset, len)))
    }))
}

/// Checks a body against the pattern as it arrives, keeping only counts.
#[derive(Debug, Default)]
pub struct Check {
    len: u64,
    bad: Option<u64>,
}

impl Check {
    /// The next bytes of the body.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min(CHUNK);
            let (piece, rest) = data.split_at(n);
            if self.bad.is_none() {
                let want = slice(self.len, n);
                if piece != &want[..] {
                    let at = piece.iter().zip(want.iter()).take_while(|(a, b)| a == b);
                    self.bad = Some(self.len + at.count() as u64);
                }
            }
            self.len += n as u64;
            data = rest;
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// The offset of the first byte that was not the pattern's, if any.
    pub fn first_bad(&self) -> Option<u64> {
        self.bad
    }

    /// `LEN`, or `LEN bad at OFFSET`: what `/sink` answers.
    pub fn verdict(&self) -> String {
        match self.bad {
            None => self.len.to_string(),
            Some(at) => format!("{} bad at {at}", self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_checks_whatever_its_chunking_and_a_shift_is_found() {
        let body: Vec<u8> = (0..3)
            .flat_map(|i| slice(i * CHUNK as u64, CHUNK).to_vec())
            .collect();
        let mut c = Check::default();
        for piece in body.chunks(1000) {
            c.feed(piece);
        }
        assert_eq!((c.bytes(), c.first_bad()), (3 * CHUNK as u64, None));
        // One byte lost at 70 000: found there, or just after.
        let mut lost = body.clone();
        lost.remove(70_000);
        let mut c = Check::default();
        c.feed(&lost);
        assert!(
            c.first_bad()
                .is_some_and(|at| (70_000..70_100).contains(&at))
        );
    }
}
