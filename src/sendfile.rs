//! Files sent from the page cache to a plain TCP socket with `sendfile(2)`,
//! under hyper's own HTTP/1.1 framing.
//!
//! hyper owns the write side: it queues the head and each body chunk and
//! hands them to the socket as one `writev` (its `Queue` write strategy,
//! chosen because the socket is vectored; it never copies queued chunks).
//! So a file body on a plain HTTP/1.1 connection yields one [`Bytes`]
//! backed by a read-only mapping of the file ([`Mapping`]), registered in
//! the connection's [`FileRegions`]; the socket wrapper
//! (`conn::activity::Tracked`) recognises a slice inside a registered
//! mapping and sends that slice with `sendfile` from the file, by offset,
//! instead of writing it. hyper still counts every byte it framed, so
//! Content-Length, keep-alive and pipelining stay its business.
//!
//! User space never reads the mapped pages on this path, so a file
//! truncated under us cannot raise SIGBUS: `sendfile` just stops short,
//! and the response is cut. The mapping is made only where the wrapper is
//! known to be in the loop, after every middleware has run
//! (`pipeline::respond`); TLS, HTTP/2 and transformed bodies read the file
//! with `pread` instead.
//!
//! The head and the file leave corked (`TCP_CORK` from the head's write to
//! the file's last byte, nginx's `tcp_nopush`): the head waits in the
//! kernel for the file's first bytes, and only the last segment of the
//! answer goes out short. Written head-first with `TCP_NODELAY`, a 1 MiB
//! answer left as a tiny head segment, full segments, and a short tail,
//! and on loopback `compare static-1m` measured 0.67 of nginx; corked, 0.99.
//!
//! Before the file's last chunk is handed to `sendfile`, the file is
//! `fstat`ed: if its length or mtime is no longer what the headers
//! promised, the response is cut (the connection ends short) instead of
//! completing with bytes of another version; a file truncated before then
//! stops `sendfile` short, which cuts it too. One window stays, as with
//! nginx's sendfile: the socket holds references to the page cache, not
//! copies, so a write after that check, while bytes are still queued in
//! the socket, can still reach the client in a complete response.
//! (Closing it would mean waiting for the send queue to drain before the
//! last chunk: one round trip per response.)

// mmap/munmap, and a `Bytes` over the mapping: each block says why it holds.
#![allow(unsafe_code)]

use std::{
    fs::File,
    io,
    ptr::NonNull,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::SystemTime,
};

use bytes::Bytes;
use rustix::mm::{MapFlags, ProtFlags};
use tokio::{
    io::{AsyncWrite, Interest},
    net::TcpStream,
};

/// What a file looked like when its response headers were made: the
/// length and mtime its `Content-Length` and `ETag` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Length in bytes.
    pub len: u64,
    /// Last modification.
    pub modified: SystemTime,
}

impl Stamp {
    /// The stamp of an open file (`fstat`).
    pub fn of(file: &File) -> io::Result<Self> {
        let meta = file.metadata()?;
        Ok(Self {
            len: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

/// A body that can be switched to [`Mapping`]s before its first poll.
pub trait Sendable:
    http_body::Body<Data = Bytes, Error = io::Error> + Send + Unpin + std::fmt::Debug + 'static
{
    /// The connection will send mapped chunks with `sendfile`: yield them
    /// instead of reading. Does nothing once the body has started.
    fn use_sendfile(&mut self, regions: &Arc<FileRegions>);
}

/// The file mappings a connection's socket wrapper sends with `sendfile`.
#[derive(Debug, Default)]
pub struct FileRegions {
    /// Set for a plain TCP socket, whose wrapper looks regions up.
    enabled: AtomicBool,
    /// Registered mappings: the wrapper's check when there are none.
    live: AtomicUsize,
    list: Mutex<Vec<Region>>,
    /// Bytes that went out with `sendfile`, for the metrics.
    sent: AtomicU64,
}

/// One registered mapping: which file bytes its addresses stand for.
#[derive(Debug)]
struct Region {
    start: usize,
    end: usize,
    file: Arc<File>,
    /// The file offset of `start`.
    offset: u64,
    stamp: Stamp,
}

/// What the wrapper does with the slices it was given.
enum Step {
    /// Send `count` bytes of `file` from `offset`.
    Send {
        file: Arc<File>,
        offset: u64,
        count: usize,
    },
    /// The response's last `count` bytes: check the file, send them,
    /// and uncork once they are all queued.
    Last {
        file: Arc<File>,
        offset: u64,
        count: usize,
        stamp: Stamp,
    },
}

impl FileRegions {
    /// Marks the connection's socket as one the wrapper can `sendfile` to.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether mapped bodies may be used on this connection.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Takes the count of bytes sent with `sendfile` so far.
    pub fn take_sent(&self) -> u64 {
        self.sent.swap(0, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Region>> {
        // A panic elsewhere cannot leave the list half-updated: each
        // change is one push or one swap_remove.
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, region: Region) {
        self.lock().push(region);
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    fn unregister(&self, start: usize) {
        let mut list = self.lock();
        if let Some(i) = list.iter().position(|r| r.start == start) {
            list.swap_remove(i);
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Writes `bufs` to `sock`, sending with `sendfile` a slice that lies
    /// in a registered mapping. `None` when no slice does: the caller
    /// writes them as usual. Slices before a mapped one are written first,
    /// on their own (hyper calls again with the rest).
    pub fn poll_write_vectored(
        &self,
        sock: &mut TcpStream,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        if self.live.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let (first, step) = {
            let list = self.lock();
            bufs.iter()
                .enumerate()
                .find_map(|(i, b)| step(&list, b).map(|s| (i, s)))?
        };
        if first > 0 {
            // The head: held until the file's bytes join it (uncorked
            // with the last of them).
            let _ = rustix::net::sockopt::set_tcp_cork(&*sock, true);
            return Some(std::pin::Pin::new(sock).poll_write_vectored(cx, &bufs[..first]));
        }
        let sock: &TcpStream = sock;
        let res = match step {
            Step::Send {
                file,
                offset,
                count,
            } => poll_sendfile(sock, cx, &file, offset, count),
            Step::Last {
                file,
                offset,
                count,
                stamp,
            } => poll_last(sock, cx, &file, offset, count, stamp),
        };
        if let Poll::Ready(Ok(n)) = &res {
            self.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        Some(res)
    }
}

/// What to do with `buf`, if it lies in one of the regions.
fn step(list: &[Region], buf: &[u8]) -> Option<Step> {
    let at = buf.as_ptr() as usize;
    let end = at + buf.len();
    let r = list
        .iter()
        .find(|r| !buf.is_empty() && r.start <= at && end <= r.end)?;
    let offset = r.offset + (at - r.start) as u64;
    let file = r.file.clone();
    let count = buf.len();
    Some(if end == r.end {
        Step::Last {
            file,
            offset,
            count,
            stamp: r.stamp,
        }
    } else {
        Step::Send {
            file,
            offset,
            count,
        }
    })
}

fn poll_sendfile(
    sock: &TcpStream,
    cx: &mut Context<'_>,
    file: &File,
    offset: u64,
    count: usize,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(sock.poll_write_ready(cx))?;
        let mut off = offset;
        match sock.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(sock, file, Some(&mut off), count).map_err(io::Error::from)
        }) {
            Ok(0) => return Poll::Ready(Err(shrank())),
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

fn poll_last(
    sock: &TcpStream,
    cx: &mut Context<'_>,
    file: &File,
    offset: u64,
    count: usize,
    stamp: Stamp,
) -> Poll<io::Result<usize>> {
    if Stamp::of(file)? != stamp {
        return Poll::Ready(Err(io::Error::other(
            "file changed while being sent; response cut",
        )));
    }
    let sent = ready!(poll_sendfile(sock, cx, file, offset, count))?;
    if sent == count {
        // Every byte of the answer is queued: let the tail go.
        let _ = rustix::net::sockopt::set_tcp_cork(sock, false);
    }
    Poll::Ready(Ok(sent))
}

fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file shrank while being sent; response cut",
    )
}

/// A read-only mapping of part of a file, registered with a connection's
/// [`FileRegions`] while it lives; the owner of a body chunk's [`Bytes`].
/// Its pages are never read in user space (see the module doc).
#[derive(Debug)]
pub struct Mapping {
    base: NonNull<std::ffi::c_void>,
    map_len: usize,
    data: usize,
    len: usize,
    regions: Arc<FileRegions>,
}

// SAFETY: the mapping is plain memory owned by this value; nothing in it is
// tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; it is only ever read through shared references.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` from `offset` (both within `stamp.len`)
    /// and registers them with `regions`; the chunk to hand to hyper.
    pub fn bytes(
        file: &Arc<File>,
        offset: u64,
        len: usize,
        stamp: Stamp,
        regions: &Arc<FileRegions>,
    ) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let page = rustix::param::page_size() as u64;
        let aligned = offset - offset % page;
        let skip = (offset - aligned) as usize;
        let map_len = skip + len;
        // SAFETY: a fresh read-only shared mapping at an address the kernel
        // picks; it aliases no Rust memory. Its pages are only handed to
        // `sendfile` by address range, never dereferenced here.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                map_len,
                ProtFlags::READ,
                MapFlags::SHARED,
                &**file,
                aligned,
            )
        }?;
        let base = NonNull::new(base).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let data = base.as_ptr() as usize + skip;
        regions.register(Region {
            start: data,
            end: data + len,
            file: file.clone(),
            offset,
            stamp,
        });
        Ok(Bytes::from_owner(Mapping {
            base,
            map_len,
            data,
            len,
            regions: regions.clone(),
        }))
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data..data+len` lies inside the live mapping. `Bytes`
        // takes the pointer and length from this; the wrapper only sends
        // the range by address (see the module doc).
        unsafe { std::slice::from_raw_parts(self.data as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.regions.unregister(self.data);
        // SAFETY: unmapped once, by its owner, after the last `Bytes` that
        // pointed into it was dropped and its region unregistered.
        if let Err(err) = unsafe { rustix::mm::munmap(self.base.as_ptr(), self.map_len) } {
            tracing::warn!(%err, "munmap of a sent file failed");
        }
    }
}
