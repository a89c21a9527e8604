//! Files sent from the page cache to a plain TCP socket with `sendfile(2)`,
//! under hyper's own HTTP/1.1 framing.
//!
//! hyper owns the write side: it queues the head and each body chunk and
//! hands them to the socket as one `writev` (its `Queue` write strategy,
//! chosen because the socket is vectored; it never copies queued chunks).
//! So a file body on a plain HTTP/1.1 connection yields one [`Bytes`]
//! naming a range of a read-only mapping of the file ([`Mapping`]; one
//! mapping per [`OpenFile`], which the static-file cache keeps across
//! requests), registered in the connection's [`FileRegions`]; the socket
//! wrapper
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
        Arc, Mutex, OnceLock,
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
/// length and mtime its `Content-Length` and `ETag` come from, and which
/// file it was (a file renamed over the path is another one, even with
/// the same length and mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Length in bytes.
    pub len: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// Device and inode number.
    pub inode: (u64, u64),
}

impl Stamp {
    /// The stamp of an open file (`fstat`).
    pub fn of(file: &File) -> io::Result<Self> {
        Ok(Self::from_meta(&file.metadata()?))
    }

    /// The stamp in a file's metadata (`stat` or `fstat`).
    pub fn from_meta(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            len: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            inode: (meta.dev(), meta.ino()),
        }
    }
}

/// An open file and its stamp when it was opened. Shared by every request
/// that sends it while the static-file cache trusts its entry (nginx's
/// `open_file_cache`), so a hot file costs no `open`, `mmap`, `munmap` or
/// `close` per request; reads use `pread`, never the shared position.
#[derive(Debug)]
pub struct OpenFile {
    file: File,
    stamp: Stamp,
    /// The whole file mapped (made at its first `sendfile`, `None` if
    /// that failed), the address range its chunks are named by.
    map: OnceLock<Option<FileMap>>,
}

impl OpenFile {
    /// Opens `path` and takes its stamp.
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let stamp = Stamp::of(&file)?;
        Ok(Self {
            file,
            stamp,
            map: OnceLock::new(),
        })
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// What the file looked like when opened.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Whether the file is still what it was when opened (one `fstat`).
    pub fn unchanged(&self) -> io::Result<bool> {
        Ok(Stamp::of(&self.file)? == self.stamp)
    }

    fn map(&self) -> io::Result<&FileMap> {
        self.map
            .get_or_init(|| match FileMap::new(&self.file, self.stamp.len) {
                Ok(map) => Some(map),
                Err(err) => {
                    tracing::debug!(%err, "mmap failed; file sent by reads");
                    None
                }
            })
            .as_ref()
            .ok_or_else(|| io::Error::other("the file could not be mapped"))
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

/// One registered chunk: which file bytes its addresses stand for.
#[derive(Debug)]
struct Region {
    start: usize,
    end: usize,
    file: Arc<OpenFile>,
    /// The file offset of `start`.
    offset: u64,
}

/// What the wrapper does with the slices it was given.
enum Step {
    /// Send `count` bytes of `file` from `offset`.
    Send {
        file: Arc<OpenFile>,
        offset: u64,
        count: usize,
    },
    /// The response's last `count` bytes: check the file, send them,
    /// and uncork once they are all queued.
    Last {
        file: Arc<OpenFile>,
        offset: u64,
        count: usize,
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

    /// Removes a region of `start..end`. Two chunks of one file can share
    /// a range (pipelined requests for it); their regions are equal, so
    /// either may go.
    fn unregister(&self, start: usize, end: usize) {
        let mut list = self.lock();
        if let Some(i) = list.iter().position(|r| r.start == start && r.end == end) {
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
            } => poll_sendfile(sock, cx, &file.file, offset, count),
            Step::Last {
                file,
                offset,
                count,
            } => poll_last(sock, cx, &file, offset, count),
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
    file: &OpenFile,
    offset: u64,
    count: usize,
) -> Poll<io::Result<usize>> {
    if !file.unchanged()? {
        return Poll::Ready(Err(io::Error::other(
            "file changed while being sent; response cut",
        )));
    }
    let sent = ready!(poll_sendfile(sock, cx, &file.file, offset, count))?;
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

/// A read-only shared mapping of a whole file. Its pages are never read in
/// user space (see the module doc): its addresses only name the file's
/// bytes to the socket wrapper.
#[derive(Debug)]
struct FileMap {
    base: NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing in it is
// tied to a thread.
unsafe impl Send for FileMap {}
// SAFETY: as above; it is never written, and only read by address range.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps the first `len` bytes of `file` (not 0).
    fn new(file: &File, len: u64) -> io::Result<Self> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: a fresh read-only shared mapping at an address the kernel
        // picks; it aliases no Rust memory. Its pages are only handed to
        // `sendfile` by address range, never dereferenced here.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                file,
                0,
            )
        }?;
        let base = NonNull::new(base).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { base, len })
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmapped once, by its owner, the `OpenFile` that every
        // chunk naming it holds: the last chunk is gone.
        if let Err(err) = unsafe { rustix::mm::munmap(self.base.as_ptr(), self.len) } {
            tracing::warn!(%err, "munmap of a sent file failed");
        }
    }
}

/// Part of a mapped file, registered with a connection's [`FileRegions`]
/// while it lives; the owner of a body chunk's [`Bytes`].
#[derive(Debug)]
pub struct Mapping {
    /// Keeps the mapping alive.
    _file: Arc<OpenFile>,
    data: usize,
    len: usize,
    regions: Arc<FileRegions>,
}

impl Mapping {
    /// `len` bytes of `file` from `offset` (both within its stamp's
    /// length), registered with `regions`: the chunk to hand to hyper.
    pub fn bytes(
        file: &Arc<OpenFile>,
        offset: u64,
        len: usize,
        regions: &Arc<FileRegions>,
    ) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let map = file.map()?;
        let skip = usize::try_from(offset).map_err(io::Error::other)?;
        if skip.checked_add(len).is_none_or(|end| end > map.len) {
            return Err(io::Error::other("chunk past the end of the mapping"));
        }
        let data = map.base.as_ptr() as usize + skip;
        regions.register(Region {
            start: data,
            end: data + len,
            file: file.clone(),
            offset,
        });
        Ok(Bytes::from_owner(Mapping {
            _file: file.clone(),
            data,
            len,
            regions: regions.clone(),
        }))
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data..data+len` lies inside the live mapping, which
        // `self._file` keeps. `Bytes` takes the pointer and length from
        // this; the wrapper only sends the range by address (see the
        // module doc).
        unsafe { std::slice::from_raw_parts(self.data as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.regions.unregister(self.data, self.data + self.len);
    }
}
