//! Per-connection bookkeeping shared by the socket wrapper, the request
//! service and the connection task: bytes moving, requests in flight, and a
//! close request (for HTTP/2, which has no `Connection: close`).

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Notify,
    time::Instant,
};

/// What a connection has been doing.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Bumped by every read or write that moved bytes.
    io_events: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicU64,
    close: Notify,
    /// Set when raw bytes carried both `Content-Length` and
    /// `Transfer-Encoding` header lines (see [`sniff_smuggling`]).
    length_and_chunked: AtomicBool,
}

impl Activity {
    /// Counts a request in; returns how many this connection has served,
    /// and a guard that counts it out when dropped (also on cancellation).
    pub fn begin_request(self: &Arc<Self>) -> (u64, InFlight) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        (served, InFlight(self.clone()))
    }

    /// Whether the request head just read declared both a length and a
    /// transfer coding; clears the flag.
    pub fn take_length_and_chunked(&self) -> bool {
        self.length_and_chunked.swap(false, Ordering::Relaxed)
    }

    pub fn request_close(&self) {
        self.close.notify_one();
    }

    pub async fn close_requested(&self) {
        self.close.notified().await;
    }

    /// A watch that expires after `timeout` with no bytes and no requests.
    pub fn idle_watch(&self, timeout: Duration) -> IdleWatch<'_> {
        IdleWatch {
            activity: self,
            timeout,
            seen: self.io_events.load(Ordering::Relaxed),
            since: Instant::now(),
        }
    }
}

/// A request being handled; dropping it counts the request out.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tracks how long a connection has been idle, polled on a coarse tick.
pub(super) struct IdleWatch<'a> {
    activity: &'a Activity,
    timeout: Duration,
    seen: u64,
    since: Instant,
}

impl IdleWatch<'_> {
    pub fn expired(&mut self) -> bool {
        let now = Instant::now();
        let events = self.activity.io_events.load(Ordering::Relaxed);
        if events != self.seen || self.activity.in_flight.load(Ordering::Relaxed) > 0 {
            self.seen = events;
            self.since = now;
            return false;
        }
        now.duration_since(self.since) >= self.timeout
    }
}

/// A socket that bumps [`Activity::io_events`] whenever bytes move.
pub(super) struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Tracked {
    pub fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    fn bump(&self) {
        self.activity.io_events.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.bump();
            if sniff_smuggling(&buf.filled()[before..]) {
                this.activity
                    .length_and_chunked
                    .store(true, Ordering::Relaxed);
            }
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.bump();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.bump();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper follows RFC 9112 when a request has both `Content-Length` and
/// `Transfer-Encoding`: it drops the length, uses chunked, and closes the
/// connection afterwards, so the service never sees both. We answer such a
/// request with 400 instead, as request-smuggling defences should, so the
/// raw bytes are sniffed here. The common case costs one SIMD substring
/// search per read; lines are only examined when a transfer coding appears.
/// A head split across reads escapes the sniff, and then hyper's own
/// handling (chunked wins, connection closes) still applies.
fn sniff_smuggling(bytes: &[u8]) -> bool {
    if memchr::memmem::find(bytes, b"ransfer-").is_none() {
        return false;
    }
    let mut te = false;
    let mut cl = false;
    for line in bytes.split(|&b| b == b'\n') {
        if line.len() >= 18 && line[..18].eq_ignore_ascii_case(b"transfer-encoding:") {
            te = true;
        } else if line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            cl = true;
        } else if line == b"\r" || line.is_empty() {
            // End of a head: a length and a coding must be in the same one.
            if te && cl {
                return true;
            }
            te = false;
            cl = false;
        }
    }
    te && cl
}

#[cfg(test)]
mod tests {
    use super::sniff_smuggling;

    #[test]
    fn sniffs_length_with_chunked_in_one_head_only() {
        assert!(sniff_smuggling(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(sniff_smuggling(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-LENGTH: 5\r\n\r\n"
        ));
        assert!(!sniff_smuggling(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!sniff_smuggling(
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde"
        ));
        assert!(!sniff_smuggling(
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }
}
