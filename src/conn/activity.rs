//! Per-connection bookkeeping shared by the socket wrapper, the request
//! service, the connection driver and its watchdog.
//!
//! The request path only bumps counters and reads one atomic: everything
//! that needs a clock (the header timeout, the idle timeout) is decided by
//! the watchdog on a coarse tick, and handed to the driver as an
//! [`Action`] plus a wake-up. That keeps timers and locks off the
//! per-request path (see `BENCHMARKS.md` for what it saved).

use std::{
    any::Any,
    io,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;

use super::request_line::LineWatch;
use crate::{
    observe::metrics::HttpMetrics, pipeline::layers::smuggling::Sniff, sendfile::FileRegions,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Notify,
};
use tokio_util::task::TaskTracker;

/// What the watchdog (or the service) asks the connection driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Action {
    /// Nothing pending.
    None = 0,
    /// Finish in-flight requests, then close (drain, idle, request cap).
    Graceful = 1,
    /// Close now (a header that never completed).
    Abort = 2,
}

/// What a connection has been doing.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Reads that returned bytes.
    reads: AtomicU64,
    /// Writes that took bytes.
    writes: AtomicU64,
    /// `reads` when the latest request was dispatched or answered (its
    /// body may arrive in between): more reads since then, with nothing in
    /// flight, mean a request head is arriving.
    reads_settled: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicU64,
    http2: AtomicBool,
    action: AtomicU8,
    driver: AtomicWaker,
    /// Tells the watchdog the connection is gone.
    pub(super) done: Notify,
    /// Shown every read: the smuggling layer's hook in the socket.
    pub(super) sniff: Sniff,
    /// Shown every read and write: turns hyper's 431 for an overlong
    /// request line into a 414 (`request_line.rs`).
    pub(super) line: LineWatch,
    /// Upgraded connections taken over by a handler (`pipeline::tunnels`):
    /// each counts as a request in flight, so the watchdog's header and
    /// idle timeouts leave it to the tunnel's own idle timeout. Made on
    /// the first upgrade: most connections never have one.
    pub(super) tunnels: OnceLock<TaskTracker>,
    /// File mappings the socket wrapper sends with `sendfile`; enabled on
    /// plain TCP only (`src/sendfile.rs`).
    pub(super) regions: Arc<FileRegions>,
}

/// A copy of the counters, taken by the watchdog on each tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counters {
    pub reads: u64,
    pub writes: u64,
    pub reads_settled: u64,
    pub in_flight: usize,
    pub http2: bool,
}

impl Activity {
    /// Records a dispatched request; returns how many this connection has
    /// served. Only the connection's own task calls this, so the counters
    /// are updated with plain loads and stores, not locked instructions.
    pub fn dispatched(&self, http2: bool) -> u64 {
        self.reads_settled
            .store(self.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        self.line.settled();
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        let served = self.served.load(Ordering::Relaxed) + 1;
        self.served.store(served, Ordering::Relaxed);
        served
    }

    /// Marks the connection HTTP/2 before its first request (ALPN said so).
    pub fn mark_http2(&self) {
        self.http2.store(true, Ordering::Relaxed);
    }

    /// Whether the connection has carried an HTTP/2 request.
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// Records that a request was answered: reads up to here were its own
    /// (and so is a smuggling mark they set).
    pub fn answered(&self) {
        self.reads_settled
            .store(self.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sniff.answered();
        self.line.settled();
    }

    /// Shows plaintext just read to the hooks that look at heads.
    fn saw(&self, bytes: &[u8]) {
        self.sniff.read(bytes);
        self.line.read(bytes);
    }

    /// Counts a request that has to wait in; paired with
    /// [`Activity::end_waiting`]. A request answered at once is never in
    /// flight between two watchdog ticks, so it is not counted.
    pub fn begin_waiting(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a waiting request out (answered, or dropped by a client that
    /// left); may run on any thread.
    pub fn end_waiting(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> Counters {
        Counters {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            reads_settled: self.reads_settled.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed)
                + self.tunnels.get().map_or(0, TaskTracker::len),
            http2: self.http2.load(Ordering::Relaxed),
        }
    }

    /// Asks the driver to act, and wakes it. A stronger action wins.
    pub fn signal(&self, action: Action) {
        self.action.fetch_max(action as u8, Ordering::Relaxed);
        self.driver.wake();
    }

    /// Called by the driver on every poll: registers its waker and takes
    /// the pending action (one relaxed load when there is none).
    pub fn poll_action(&self, cx: &Context<'_>) -> Action {
        self.driver.register(cx.waker());
        if self.action.load(Ordering::Relaxed) == Action::None as u8 {
            return Action::None;
        }
        match self.action.swap(Action::None as u8, Ordering::Relaxed) {
            2 => Action::Abort,
            1 => Action::Graceful,
            _ => Action::None,
        }
    }
}

/// Tells the watchdog the connection is gone when dropped.
pub(super) struct Done(pub Arc<Activity>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done.notify_one();
    }
}

/// Adds one to a counter that only the connection's task writes.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A socket that counts the reads and writes that move bytes, and the
/// bytes themselves (in plain fields: only the connection's task touches
/// them; they reach the metrics once, when the connection closes), and
/// shows each read to the smuggling sniff when `SNIFF`.
///
/// Under TLS it wraps the TCP socket (`SNIFF` off), so a client that
/// trickles TLS records after the handshake is seen reading, and its
/// unfinished head is cut by the header timeout as on a plain connection;
/// [`Sniffed`] shows the plaintext to the sniff, above the TLS stream.
pub(super) struct Tracked<const SNIFF: bool, S = TcpStream> {
    inner: S,
    counts: Counts<SNIFF>,
}

/// What [`Tracked`] counts of its connection, reported to the metrics
/// when dropped (with the socket, or on its own once a tunnel took the
/// socket: [`Tracked::into_parts`]).
pub(crate) struct Counts<const SNIFF: bool> {
    activity: Arc<Activity>,
    received: u64,
    sent: u64,
    metrics: HttpMetrics,
}

impl<const SNIFF: bool> Counts<SNIFF> {
    /// Counts bytes moved after the socket left its wrapper.
    pub(crate) fn add(&mut self, received: u64, sent: u64) {
        self.received += received;
        self.sent += sent;
    }
}

impl<const SNIFF: bool, S> Tracked<SNIFF, S> {
    pub fn new(inner: S, activity: Arc<Activity>, metrics: HttpMetrics) -> Self {
        Self {
            inner,
            counts: Counts {
                activity,
                received: 0,
                sent: 0,
                metrics,
            },
        }
    }

    /// The socket, and the counts that still report when dropped.
    pub(super) fn into_parts(self) -> (S, Counts<SNIFF>) {
        (self.inner, self.counts)
    }
}

impl<const SNIFF: bool> Drop for Counts<SNIFF> {
    fn drop(&mut self) {
        self.metrics.received.inc_by(self.received);
        self.metrics.sent.inc_by(self.sent);
        if SNIFF {
            self.metrics
                .sendfile
                .inc_by(self.activity.regions.take_sent());
        }
    }
}

impl<const SNIFF: bool, S: AsyncRead + Unpin> AsyncRead for Tracked<SNIFF, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.counts.received += (buf.filled().len() - before) as u64;
            bump(&this.counts.activity.reads);
            if SNIFF {
                this.counts.activity.saw(&buf.filled()[before..]);
            }
        }
        res
    }
}

impl<const SNIFF: bool, S> Tracked<SNIFF, S> {
    fn wrote(&mut self, res: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = res
            && *n > 0
        {
            self.counts.sent += *n as u64;
            bump(&self.counts.activity.writes);
        }
    }
}

impl<const SNIFF: bool, S: AsyncWrite + Unpin + 'static> AsyncWrite for Tracked<SNIFF, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = match SNIFF {
            true => swapped_write(
                &mut this.inner,
                cx,
                &this.counts.activity.line,
                &[io::IoSlice::new(buf)],
            ),
            false => None,
        }
        .unwrap_or_else(|| Pin::new(&mut this.inner).poll_write(cx, buf));
        this.wrote(&res);
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if SNIFF
            && let Some(res) = swapped_write(&mut this.inner, cx, &this.counts.activity.line, bufs)
        {
            this.wrote(&res);
            return res;
        }
        // A plain TCP socket sends file regions itself (`src/sendfile.rs`);
        // the downcast is decided at compile time.
        if SNIFF
            && let Some(sock) = (&mut this.inner as &mut dyn Any).downcast_mut::<TcpStream>()
            && let Some(res) = this
                .counts
                .activity
                .regions
                .poll_write_vectored(sock, cx, bufs)
        {
            this.wrote(&res);
            return res;
        }
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&res);
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

/// A TLS stream whose plaintext reads the smuggling sniff sees (what
/// [`Tracked`] shows it on a plain connection).
pub(super) struct Sniffed<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Sniffed<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.saw(&buf.filled()[before..]);
        }
        res
    }
}

writes_pass_through!(Sniffed, |this, cx, bufs| swapped_write(
    &mut this.inner,
    cx,
    &this.activity.line,
    bufs
));

/// Writes `bufs` to `inner` with hyper's 431 for an overlong request line
/// swapped for a 414 ([`LineWatch::swap`]); `None` when there is nothing
/// to swap, and the caller writes as usual.
fn swapped_write<S: AsyncWrite + Unpin>(
    inner: &mut S,
    cx: &mut Context<'_>,
    line: &LineWatch,
    bufs: &[io::IoSlice<'_>],
) -> Option<Poll<io::Result<usize>>> {
    let first = line.swap(bufs.first()?)?;
    let mut all = Vec::with_capacity(bufs.len());
    all.push(io::IoSlice::new(&first));
    all.extend_from_slice(&bufs[1..]);
    let res = Pin::new(inner).poll_write_vectored(cx, &all);
    if let Poll::Ready(Ok(n)) = &res {
        line.swapped(*n);
    }
    Some(res)
}
