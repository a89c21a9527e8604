//! `Static`: files under a root directory (P4.3).
//!
//! A request resolves its path against the root once, then is served from
//! the `cache.rs`: small files from memory, large ones from disk
//! (`stream.rs`: `sendfile` on plain HTTP/1.1, else 256 KiB reads). `respond.rs` applies the HTTP rules (conditional requests,
//! ranges, HEAD). Traversal is stopped twice: the pipeline refuses any path
//! that climbs out of `/` before routing, and `resolve.rs` refuses any file
//! whose real path (symlinks followed) lies outside the root, unless the
//! config allows it.

mod cache;
mod precompressed;
mod resolve;
mod respond;
mod stream;
mod try_files;

use std::{path::PathBuf, sync::Arc};

use http::Method;

use crate::{
    error::HttpError,
    handler::{Handler, HandlerFuture},
    middleware::compress::Encoding,
    pipeline::request::Request,
};

pub use cache::CacheLimits;
use cache::FileCache;
use resolve::Resolver;
pub use try_files::{Fallback, TryFiles};

/// Serves a directory tree.
#[derive(Debug)]
pub struct StaticFiles {
    resolver: Arc<Resolver>,
    cache: Arc<FileCache>,
    buffers: Arc<stream::BufPool>,
    /// Sibling codings served (`precompressed.rs`), most preferred first.
    precompressed: Arc<precompressed::Precompressed>,
}

impl StaticFiles {
    /// Serves `root`, which must exist; it is canonicalized here.
    pub fn new(
        root: PathBuf,
        index: Vec<String>,
        follow_symlinks_outside_root: bool,
        limits: CacheLimits,
    ) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "static root is not a directory",
            ));
        }
        Ok(Self {
            resolver: Arc::new(Resolver {
                root,
                index,
                follow_symlinks_outside_root,
            }),
            cache: Arc::new(FileCache::new(limits)),
            buffers: Arc::default(),
            precompressed: Arc::default(),
        })
    }

    /// Also serves precompressed siblings (`page.html.br`…) of these
    /// codings, most preferred first.
    pub fn with_precompressed(mut self, codings: Vec<Encoding>) -> Self {
        self.precompressed = Arc::new(precompressed::Precompressed::new(codings));
        self
    }

    /// The file path relative to the root: the route's catch-all parameter
    /// when it has one (like nginx `alias`), else the whole path (`root`).
    fn relative(req: &Request) -> &str {
        match req.params().last() {
            Some((_, rest)) => rest,
            None => req.path(),
        }
    }
}

/// What the fuzz targets and property tests reach (`src/fuzzing.rs`).
#[cfg(feature = "fuzzing")]
impl StaticFiles {
    /// The file `rel` (a normalized path without its leading `/`) resolves
    /// to, as the handler would serve it; `None` for anything else.
    pub(crate) fn resolve_file(&self, rel: &str) -> Option<PathBuf> {
        match self.resolver.resolve(rel) {
            Ok(resolve::Found::File(meta)) => Some(meta.path),
            _ => None,
        }
    }

    /// The inclusive byte range a `Range` value selects in a file of
    /// `len` bytes: `Ok(None)` for the whole file, `Err` for 416.
    pub(crate) fn byte_range(raw: &str, len: u64) -> Result<Option<(u64, u64)>, HttpError> {
        use crate::pipeline::range::{Part, byte_range};
        Ok(match byte_range(raw, len)? {
            Part::Whole => None,
            Part::Range(start, end) => Some((start, end)),
        })
    }
}

const GET_HEAD: &[Method] = &[Method::GET, Method::HEAD];

impl Handler for StaticFiles {
    fn call(&self, req: Request) -> HandlerFuture {
        if !self.precompressed.codings.is_empty() {
            return precompressed::call(self, req);
        }
        self.plain(req)
    }

    fn default_methods(&self) -> Option<&'static [Method]> {
        Some(GET_HEAD)
    }
}

impl StaticFiles {
    /// Serves the file itself.
    fn plain(&self, req: Request) -> HandlerFuture {
        let rel = Self::relative(&req).trim_start_matches('/');
        // A cache hit answers at once, unless the body must be streamed.
        if let Some(hit) = self.cache.get(rel) {
            return respond::file(req, hit, &self.buffers);
        }
        let key = rel.to_owned();
        let resolver = self.resolver.clone();
        let cache = self.cache.clone();
        let buffers = self.buffers.clone();
        HandlerFuture::new(async move {
            let lookup = key.clone();
            let found = tokio::task::spawn_blocking(move || resolver.resolve(&lookup))
                .await
                .map_err(|e| HttpError::Internal(e.to_string()))??;
            match found {
                resolve::Found::File(meta) => {
                    let file = cache.insert(&key, meta).await?;
                    respond::file(req, file, &buffers).await
                }
                resolve::Found::Directory => respond::to_directory(&req),
            }
        })
    }
}
