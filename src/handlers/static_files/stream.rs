//! A file body streamed from disk in large chunks, one blocking read each,
//! or, on a plain HTTP/1.1 connection, sent by the kernel with `sendfile`
//! (`src/sendfile.rs`) without passing through user space.
//!
//! `tokio::fs::File` reads into its own buffer, which `ReaderStream` then
//! copies again; here each chunk is read straight into the buffer that
//! becomes the body frame, and the next read starts as soon as a chunk is
//! handed to hyper, so disk reads overlap socket writes. Chunk buffers come
//! from a small pool and go back to it when hyper has written them: a fresh
//! 256 KiB allocation per chunk costs page faults (and, above glibc's mmap
//! threshold, an mmap/munmap pair) on every chunk.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::sendfile::{FileRegions, Mapping, Sendable, Stamp};

/// Chunk size: large enough to keep blocking hops and syscalls rare.
pub(super) const CHUNK: u64 = 256 * 1024;

/// Buffers kept for reuse, at most; beyond that they are freed.
const POOL_MAX: usize = 64;

/// Chunk buffers shared by every download of one `Static` handler.
#[derive(Debug, Default)]
pub(super) struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK as usize))
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        if let Ok(mut free) = self.free.lock()
            && free.len() < POOL_MAX
        {
            free.push(buf);
        }
    }
}

/// A chunk's bytes; returns its buffer to the pool when hyper drops it.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// `count` bytes of a file from `start`, as an `http_body::Body`: read in
/// chunks on the blocking pool, or, once the connection asks for it
/// ([`Sendable::use_sendfile`]), one mapped chunk the socket sends with
/// `sendfile`. If the client leaves mid-download, the read in progress
/// finishes on its own thread and its chunk is dropped; nothing waits for
/// it.
#[derive(Debug)]
pub(super) struct FileBody {
    file: Arc<File>,
    /// What the response's headers were made from.
    stamp: Stamp,
    /// The file offset of the first byte not yet handed out.
    offset: u64,
    /// The read in progress, if any.
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    /// The whole rest of the body as one mapped chunk (sendfile mode).
    mapped: Option<Bytes>,
    /// Bytes not yet handed out, including the read in progress.
    remaining: u64,
    pool: Arc<BufPool>,
}

impl FileBody {
    /// Opens `path`, positioned at `start`, with nothing to send yet
    /// ([`FileBody::limit`] says how much). No byte is read until the
    /// first poll: the connection may choose sendfile. The stamp is the
    /// opened file's own (`fstat`); the headers are made from it.
    ///
    /// On the calling thread, as nginx opens files on its event loop: the
    /// path was just resolved or found in the file cache, so its inode is
    /// in memory and `open` takes microseconds, where a hop to the
    /// blocking pool and back cost two thread wake-ups per download
    /// (`BENCHMARKS.md`, static-1m). A file system that stalls on `open`
    /// (a dead network mount) stalls this worker, as it would nginx's.
    pub fn open(path: &std::path::Path, start: u64, pool: Arc<BufPool>) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let stamp = Stamp::of(&file)?;
        if start > 0 {
            file.seek(SeekFrom::Start(start))?;
        }
        Ok(Self {
            file: Arc::new(file),
            stamp,
            offset: start,
            pending: None,
            mapped: None,
            remaining: 0,
            pool,
        })
    }

    /// Sends `count` bytes from where the file was opened.
    pub fn limit(mut self, count: u64) -> Self {
        self.remaining = count;
        self
    }

    /// The opened file's length and mtime.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    fn read_next(&mut self) {
        if self.remaining == 0 || self.pending.is_some() {
            return;
        }
        let n = self.remaining.min(CHUNK);
        let last = n == self.remaining;
        let pool = self.pool.clone();
        let file = self.file.clone();
        let stamp = self.stamp;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut buf = pool.take();
            (&*file).take(n).read_to_end(&mut buf)?;
            // The last chunk leaves only if the file is still the one the
            // headers describe: else the response is cut, never a mix.
            if last && Stamp::of(&file)? != stamp {
                return Err(io::Error::other(
                    "file changed while being sent; response cut",
                ));
            }
            Ok(Bytes::from_owner(Pooled { buf, pool }))
        }));
    }
}

impl Sendable for FileBody {
    fn use_sendfile(&mut self, regions: &Arc<FileRegions>) {
        if self.pending.is_some() || self.mapped.is_some() || self.remaining == 0 {
            return;
        }
        let Ok(len) = usize::try_from(self.remaining) else {
            return;
        };
        match Mapping::bytes(&self.file, self.offset, len, self.stamp, regions) {
            Ok(bytes) => self.mapped = Some(bytes),
            // Reading still works: serve it that way.
            Err(err) => tracing::debug!(%err, "mmap failed; file sent by reads"),
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.mapped.take() {
            this.remaining = 0;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        this.read_next();
        let Some(pending) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let joined = ready!(Pin::new(pending).poll(cx));
        this.pending = None;
        let chunk = joined.map_err(io::Error::other)??;
        if chunk.is_empty() {
            // The file shrank under us: end early rather than spin.
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            ))));
        }
        this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
        this.offset += chunk.len() as u64;
        // Overlap the next disk read with this chunk's socket write.
        this.read_next();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
