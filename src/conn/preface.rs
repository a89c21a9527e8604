//! Telling HTTP/2 with prior knowledge (h2c) from HTTP/1.x on a plain
//! connection: [`read_preface`] reads the first bytes, and [`Prefixed`]
//! hands them back to hyper ahead of the socket.
//!
//! hyper-util's auto builder does the same with a 24-byte read. That costs
//! a second `read` before hyper sees the rest of the request line, and the
//! request it then finds 24 bytes into its 8 KiB buffer makes the buffer
//! grow to 16 KiB for the life of the connection. One read into a buffer of
//! our own, handed over whole, leaves hyper one 8 KiB buffer per idle
//! connection (BENCHMARKS.md, "TLS against nginx").

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first read's size: a whole typical request head.
const FIRST_READ: usize = 4096;

/// Reads until the bytes are, or cannot become, the HTTP/2 preface. Returns
/// whether they are, and what was read (empty if the client closed first).
pub(super) async fn read_preface<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<(bool, Bytes)> {
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    loop {
        let n = io.read_buf(&mut buf).await?;
        let seen = &buf[..buf.len().min(PREFACE.len())];
        if n == 0 || !PREFACE.starts_with(seen) {
            return Ok((false, buf.freeze()));
        }
        if seen.len() == PREFACE.len() {
            return Ok((true, buf.freeze()));
        }
    }
}

/// A stream that reads `prefix` before the stream's own bytes.
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// What is left of the prefix, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        if this.prefix.is_empty() {
            // Give the allocation back now, not when the connection ends.
            this.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

writes_pass_through!(Prefixed);

#[cfg(test)]
mod tests {
    use super::*;

    async fn sniff(chunks: &[&[u8]]) -> (bool, Vec<u8>) {
        let mut io = reader(chunks);
        let (h2, prefix) = read_preface(&mut io).await.expect("read");
        let mut all = Vec::new();
        Prefixed::new(prefix, io)
            .read_to_end(&mut all)
            .await
            .expect("the rest");
        (h2, all)
    }

    /// A reader that returns each chunk from its own read.
    fn reader(chunks: &[&[u8]]) -> impl AsyncRead + Unpin {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in chunks {
                theirs.write_all(&c).await.expect("write");
                tokio::task::yield_now().await;
            }
        });
        ours
    }

    #[tokio::test]
    async fn an_http1_request_is_told_from_the_first_bytes_and_nothing_is_lost() {
        let (h2, all) = sniff(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).await;
        assert!(!h2);
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        // "P" could still be the preface; "PO" cannot.
        let (h2, all) = sniff(&[b"P", b"OST / HTTP/1.1\r\n\r\n"]).await;
        assert!(!h2);
        assert_eq!(all, b"POST / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn the_preface_is_recognised_even_when_it_arrives_in_pieces() {
        let (h2, all) = sniff(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n", b"frames"]).await;
        assert!(h2);
        assert_eq!(all, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nframes");
    }

    #[tokio::test]
    async fn a_client_that_closes_first_reads_as_empty_http1() {
        assert_eq!(sniff(&[]).await, (false, Vec::new()));
    }
}
