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
    io,
    os::unix::fs::FileExt,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::sendfile::{FileRegions, Mapping, OpenFile, Sendable};

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

    /// Takes a buffer back as it is: its length stays, so the next read
    /// into it need not zero it again.
    fn give_back(&self, buf: Vec<u8>) {
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
    /// The file, perhaps shared with other requests (the file cache's).
    file: Arc<OpenFile>,
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
    /// `count` bytes of `file` from `start`. No byte is read until the
    /// first poll: the connection may choose sendfile. The response's
    /// headers are made from the file's stamp.
    pub fn new(file: Arc<OpenFile>, start: u64, count: u64, pool: Arc<BufPool>) -> Self {
        Self {
            file,
            offset: start,
            pending: None,
            mapped: None,
            remaining: count,
            pool,
        }
    }

    fn read_next(&mut self) {
        if self.remaining == 0 || self.pending.is_some() {
            return;
        }
        let n = self.remaining.min(CHUNK) as usize;
        let last = n as u64 == self.remaining;
        let at = self.offset;
        let pool = self.pool.clone();
        let file = self.file.clone();
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut buf = pool.take();
            buf.resize(n, 0);
            let mut got = 0;
            while got < n {
                match file.file().read_at(&mut buf[got..], at + got as u64) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(got);
            // The last chunk leaves only if the file is still the one the
            // headers describe: else the response is cut, never a mix.
            if last && !file.unchanged()? {
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
        match Mapping::bytes(&self.file, self.offset, len, regions) {
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
