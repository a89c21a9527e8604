//! The tunnel pump: a tunnel whose two sides are plain TCP sockets (a
//! proxied WebSocket, unencrypted both ways) has its bytes moved here, by
//! an event loop in the manner of nginx's, instead of by a tokio task.
//!
//! Why: a tunnel mostly moves small messages, and per message tokio's
//! machinery (a readiness wake-up, a task scheduled and polled, the
//! wrappers of hyper's `Upgraded`) cost twice nginx's user-space time, and
//! left Troupe 2–5% behind nginx on the proxied WebSocket echo
//! (`BENCHMARKS.md`). A pump is a thread blocked in `epoll_wait` on its
//! tunnels' sockets (mio, edge-triggered): each wake-up serves every socket
//! that became ready with a read and a write, and no task, waker or
//! allocation per message. Nesting the pump's epoll set in tokio's (one
//! task per pump) was tried first: it halved the user time too, but paid
//! two `epoll_wait`s per wake-up, and stayed behind.
//!
//! There is one pump per worker thread of the runtime (`workers`),
//! started by the first tunnel; tunnels are dealt to them in turn,
//! through an inbox and a `mio::Waker`. A tunnel still belongs to its
//! connection: [`join`] is what the connection's tunnel task awaits, and
//! it returns when the pump closes the tunnel. When that task is dropped
//! instead (the drain deadline), the pump closes the tunnel at once.
//!
//! Flow control: a side is read only once the bytes last read from it are
//! all written to the other side; what the other side does not take at
//! once waits in the tunnel (at most one read) until it becomes writable.
//! Reads go into one buffer per pump. A side that ends (EOF) shuts the
//! other's writing half once its bytes are through, as
//! `tokio::io::copy_bidirectional` does; the tunnel closes when both have,
//! on an error on either, or after `idle` with no byte read.

use std::{
    io::{self, Read, Write},
    net::Shutdown,
    sync::{
        Mutex, OnceLock, PoisonError,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};
use mio::{Events, Interest, Poll, Token, net::TcpStream};
use slab::Slab;
use tokio::sync::oneshot;

use super::{backend::InFlight, tunnel::IdleWatch};
use crate::conn::Counts;

/// One read from a side: sized for a burst of small messages, or a slice
/// of a large one.
const READ: usize = 16 * 1024;
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 256;

/// A tunnel for a pump: both sockets, non-blocking, and what was read
/// from either before the upgrade.
pub(super) struct Joined {
    pub client: std::net::TcpStream,
    pub backend: std::net::TcpStream,
    /// The client's bytes read before the upgrade, for the backend.
    pub to_backend: Bytes,
    /// The backend's bytes read before the upgrade, for the client.
    pub to_client: Bytes,
    pub idle: Duration,
    /// Keeps the tunnel counted on its backend until it closes.
    pub inflight: InFlight,
    /// The client connection's byte counts, which the tunnel's bytes join.
    pub counts: Counts<true>,
}

/// Runs the tunnel on a pump until it closes.
pub(super) async fn join(joined: Joined) {
    let (done, closed) = oneshot::channel();
    let Some(pump) = pumps().next() else {
        tracing::error!("no tunnel pump runs; tunnel closed");
        return;
    };
    pump.send(Msg::Add(Box::new(joined), done));
    // Dropped before the tunnel closed (the drain deadline): the pump
    // looks for tunnels nobody waits for.
    struct Abandoned(Option<&'static Handle>);
    impl Drop for Abandoned {
        fn drop(&mut self) {
            if let Some(pump) = self.0.take() {
                pump.send(Msg::Sweep);
            }
        }
    }
    let mut abandoned = Abandoned(Some(pump));
    // The pump drops `done` when it closes the tunnel.
    let _ = closed.await;
    abandoned.0 = None;
}

enum Msg {
    Add(Box<Joined>, oneshot::Sender<()>),
    /// Close the tunnels whose connection let go of them.
    Sweep,
}

/// How the runtime reaches a pump's thread: its inbox, and the waker
/// that interrupts its `epoll_wait`.
struct Handle {
    inbox: Mutex<Vec<Msg>>,
    waker: mio::Waker,
}

impl Handle {
    fn send(&self, msg: Msg) {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(msg);
        if let Err(error) = self.waker.wake() {
            tracing::error!(%error, "tunnel pump not woken");
        }
    }
}

/// The waker's token; sockets have `2 × key + side`.
const WAKER: Token = Token(usize::MAX);

/// The pumps, one per runtime worker, started by the first tunnel; they run as
/// long as the process does.
struct Pumps {
    all: Vec<&'static Handle>,
    next: AtomicUsize,
}

impl Pumps {
    /// The next pump in turn.
    fn next(&self) -> Option<&'static Handle> {
        let i = self.next.fetch_add(1, Relaxed);
        self.all.get(i % self.all.len().max(1)).copied()
    }
}

fn pumps() -> &'static Pumps {
    static PUMPS: OnceLock<Pumps> = OnceLock::new();
    PUMPS.get_or_init(|| {
        // As many as the runtime has workers (`workers` in the config).
        let n = tokio::runtime::Handle::try_current().map_or_else(
            |_| std::thread::available_parallelism().map_or(1, usize::from),
            |rt| rt.metrics().num_workers().max(1),
        );
        let all = (0..n)
            .filter_map(|i| match start(i) {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::error!(%error, "tunnel pump {i} could not start");
                    None
                }
            })
            .collect();
        Pumps {
            all,
            next: AtomicUsize::new(0),
        }
    })
}

/// Starts pump `i` on a thread of its own.
fn start(i: usize) -> io::Result<&'static Handle> {
    let poll = Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKER)?;
    // A few, for the process's life.
    let handle: &'static Handle = Box::leak(Box::new(Handle {
        inbox: Mutex::new(Vec::new()),
        waker,
    }));
    std::thread::Builder::new()
        .name(format!("tunnel-pump-{i}"))
        .spawn(move || run(poll, handle))?;
    Ok(handle)
}

/// The pump's loop, nginx's in small: wait for readiness (or the next
/// sweep), move what it allows, take new tunnels.
fn run(mut poll: Poll, handle: &'static Handle) {
    let mut pump = Pump {
        events: Events::with_capacity(EVENTS),
        scratch: vec![0; READ].into_boxed_slice(),
        tunnels: Slab::new(),
    };
    let mut next_sweep: Option<Instant> = None;
    let mut inbox = Vec::new();
    loop {
        let wait = next_sweep.map(|at| at.saturating_duration_since(Instant::now()));
        let woken = match pump.turn(&mut poll, wait) {
            Ok(woken) => woken,
            Err(error) => {
                // Only an epoll set gone bad fails here; its tunnels go
                // with it.
                tracing::error!(%error, "tunnel pump failed; its tunnels closed");
                return;
            }
        };
        // Every message comes with a wake-up: without one, the inbox is
        // not worth its lock.
        if woken {
            std::mem::swap(
                &mut inbox,
                &mut *handle.inbox.lock().unwrap_or_else(PoisonError::into_inner),
            );
        }
        let mut cut = false;
        for msg in inbox.drain(..) {
            match msg {
                Msg::Add(joined, done) => {
                    if let Some(period) = pump.add(&poll, *joined, done) {
                        let at = Instant::now() + period;
                        next_sweep = Some(next_sweep.map_or(at, |t| t.min(at)));
                    }
                }
                Msg::Sweep => cut = true,
            }
        }
        let due = next_sweep.is_some_and(|at| at <= Instant::now());
        if due || cut {
            let period = pump.sweep(due);
            if due || period.is_none() {
                next_sweep = period.map(|p| Instant::now() + p);
            }
        }
    }
}

struct Pump {
    events: Events,
    scratch: Box<[u8]>,
    tunnels: Slab<Tunnel>,
}

impl Pump {
    /// Registers a tunnel and starts it (bytes read ahead go out now).
    /// Returns how often it must be checked for idleness, or `None` if
    /// it could not be registered (it is closed).
    fn add(&mut self, poll: &Poll, joined: Joined, done: oneshot::Sender<()>) -> Option<Duration> {
        let entry = self.tunnels.vacant_entry();
        let key = entry.key();
        let mut socks = [
            TcpStream::from_std(joined.client),
            TcpStream::from_std(joined.backend),
        ];
        for (side, sock) in socks.iter_mut().enumerate() {
            let both = Interest::READABLE | Interest::WRITABLE;
            if let Err(error) = poll.registry().register(sock, Token(key * 2 + side), both) {
                tracing::debug!(%error, "tunnel not registered; closed");
                return None;
            }
        }
        let idle = IdleWatch::new(joined.idle);
        let period = idle.tick();
        entry.insert(Tunnel {
            socks,
            // Registering reports what is ready already; until then, a
            // write is worth trying.
            readable: [false; 2],
            writable: [true; 2],
            ended: [false; 2],
            eof: [false; 2],
            shut: [false; 2],
            pending: [
                BytesMut::from(joined.to_backend),
                BytesMut::from(joined.to_client),
            ],
            read: [0; 2],
            idle,
            done,
            inflight: joined.inflight,
            counts: joined.counts,
        });
        drive(&mut self.tunnels, &mut self.scratch, key);
        Some(period)
    }

    /// Waits up to `wait` (`None`: until something happens) for ready
    /// sockets, and moves what they allow. Returns whether the waker
    /// woke it (there is mail).
    fn turn(&mut self, poll: &mut Poll, wait: Option<Duration>) -> io::Result<bool> {
        match poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        let mut woken = false;
        let Pump {
            events,
            scratch,
            tunnels,
        } = self;
        for event in events.iter() {
            if event.token() == WAKER {
                woken = true;
                continue;
            }
            let (key, side) = (event.token().0 / 2, event.token().0 % 2);
            let Some(tunnel) = tunnels.get_mut(key) else {
                continue;
            };
            // The end of the stream is reported once, maybe together
            // with the last bytes: it stays readable until read.
            tunnel.ended[side] |= event.is_read_closed();
            tunnel.readable[side] |=
                event.is_readable() || event.is_read_closed() || event.is_error();
            tunnel.writable[side] |=
                event.is_writable() || event.is_write_closed() || event.is_error();
            drive(tunnels, scratch, key);
        }
        Ok(woken)
    }

    /// Closes tunnels idle for their timeout (when `idle`) and those
    /// whose connection let go of them. Returns the shortest check period
    /// of the tunnels left.
    fn sweep(&mut self, idle: bool) -> Option<Duration> {
        let now = Instant::now();
        let mut gone = Vec::new();
        for (key, tunnel) in &mut self.tunnels {
            if tunnel.done.is_closed() {
                gone.push((key, "tunnel cut"));
            } else if idle && tunnel.idle.expired(tunnel.read[0] + tunnel.read[1], now) {
                gone.push((key, "tunnel idle; closed"));
            }
        }
        for (key, why) in gone {
            close(&mut self.tunnels, key, why);
        }
        self.tunnels.iter().map(|(_, t)| t.idle.tick()).min()
    }
}

/// Moves what a tunnel's sockets allow both ways; closes it if it is
/// through or failed.
fn drive(tunnels: &mut Slab<Tunnel>, scratch: &mut [u8], key: usize) {
    let Some(tunnel) = tunnels.get_mut(key) else {
        return;
    };
    match tunnel
        .flow(0, scratch)
        .and_then(|()| tunnel.flow(1, scratch))
    {
        Ok(()) if tunnel.shut == [true; 2] => close(tunnels, key, "tunnel closed"),
        Ok(()) => {}
        Err(error) => {
            tracing::debug!(%error, "tunnel failed");
            close(tunnels, key, "tunnel ended");
        }
    }
}

fn close(tunnels: &mut Slab<Tunnel>, key: usize, why: &'static str) {
    let mut tunnel = tunnels.remove(key);
    let (up, down) = (tunnel.read[0], tunnel.read[1]);
    tunnel.counts.add(up, down);
    let backend = tunnel.inflight.backend().addr;
    tracing::debug!(%backend, up, down, idle = ?tunnel.idle.timeout, "{why}");
    // Dropping it closes both sockets (which leaves the epoll set), ends
    // the backend's count, and wakes `join`.
}

/// A tunnel's two sides: index 0 is the client, 1 the backend.
struct Tunnel {
    socks: [TcpStream; 2],
    /// Readiness seen and not used up (edge-triggered).
    readable: [bool; 2],
    writable: [bool; 2],
    /// The side's end of stream was reported (it may still have bytes).
    ended: [bool; 2],
    /// The side's last byte was read.
    eof: [bool; 2],
    /// The side's writing half is shut (the other's EOF passed on).
    shut: [bool; 2],
    /// Bytes read from the side, waiting for the other to take them.
    pending: [BytesMut; 2],
    /// Bytes read from each side.
    read: [u64; 2],
    idle: IdleWatch,
    done: oneshot::Sender<()>,
    inflight: InFlight,
    counts: Counts<true>,
}

impl Tunnel {
    /// Moves bytes from side `from` to the other until one of them would
    /// block.
    fn flow(&mut self, from: usize, scratch: &mut [u8]) -> io::Result<()> {
        let to = 1 - from;
        if !self.pending[from].is_empty() {
            if !self.writable[to] {
                return Ok(());
            }
            let n = write_some(
                &mut self.socks[to],
                &self.pending[from],
                &mut self.writable[to],
            )?;
            self.pending[from].advance(n);
            if !self.pending[from].is_empty() {
                return Ok(());
            }
        }
        loop {
            if self.eof[from] {
                if !self.shut[to] {
                    self.shut[to] = true;
                    // The other side may have gone already.
                    let _ = self.socks[to].shutdown(Shutdown::Write);
                }
                return Ok(());
            }
            if !self.readable[from] {
                return Ok(());
            }
            match self.socks[from].read(scratch) {
                Ok(0) => self.eof[from] = true,
                Ok(n) => {
                    self.read[from] += n as u64;
                    // A short read emptied the socket (epoll reports
                    // the next bytes), which saves the read that would
                    // say so, as tokio does.
                    if n < scratch.len() && !self.ended[from] {
                        self.readable[from] = false;
                    }
                    let w = match self.writable[to] {
                        true => {
                            write_some(&mut self.socks[to], &scratch[..n], &mut self.writable[to])?
                        }
                        false => 0,
                    };
                    if w < n {
                        self.pending[from].extend_from_slice(&scratch[w..n]);
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable[from] = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes what the socket takes of `buf`; clears `writable` when it
/// would block.
fn write_some(sock: &mut TcpStream, buf: &[u8], writable: &mut bool) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match sock.write(&buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *writable = false;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
