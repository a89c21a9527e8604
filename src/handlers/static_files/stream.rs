//! A file body streamed from disk in large chunks, one blocking read each.
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

/// A finished read: the file (for the next one) and the chunk.
type Chunk = (File, io::Result<Bytes>);

/// `count` bytes of a file from `start`, as an `http_body::Body`. If the
/// client leaves mid-download, the read in progress finishes on its own
/// thread and its chunk is dropped; nothing waits for it.
pub(super) struct FileBody {
    /// The read in progress, if any.
    pending: Option<JoinHandle<Chunk>>,
    /// Bytes not yet handed out, including the read in progress.
    remaining: u64,
    pool: Arc<BufPool>,
}

impl FileBody {
    /// Opens `path` on a blocking thread and starts the first read.
    pub async fn open(
        path: std::path::PathBuf,
        start: u64,
        count: u64,
        pool: Arc<BufPool>,
    ) -> io::Result<Self> {
        let file = tokio::task::spawn_blocking(move || -> io::Result<File> {
            let mut f = File::open(path)?;
            if start > 0 {
                f.seek(SeekFrom::Start(start))?;
            }
            Ok(f)
        })
        .await
        .map_err(io::Error::other)??;
        let mut body = Self {
            pending: None,
            remaining: count,
            pool,
        };
        body.read_next(file);
        Ok(body)
    }

    fn read_next(&mut self, mut file: File) {
        if self.remaining == 0 || self.pending.is_some() {
            return;
        }
        let n = self.remaining.min(CHUNK);
        let pool = self.pool.clone();
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut buf = pool.take();
            let read = (&mut file)
                .take(n)
                .read_to_end(&mut buf)
                .map(|_| Bytes::from_owner(Pooled { buf, pool }));
            (file, read)
        }));
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
        let Some(pending) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let joined = ready!(Pin::new(pending).poll(cx));
        this.pending = None;
        let (file, read) = joined.map_err(io::Error::other)?;
        let chunk = read?;
        if chunk.is_empty() {
            // The file shrank under us: end early rather than spin.
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            ))));
        }
        this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
        this.read_next(file);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
