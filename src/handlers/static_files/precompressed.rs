//! Precompressed siblings (Caddy's `precompressed`, nginx `gzip_static`):
//! `page.html.zst`, `.br` or `.gz` beside `page.html`, served to a client
//! that accepts that coding instead of compressing on every request.
//!
//! A sibling is used only when it is not older than its file, so an edited
//! page is never answered with its old compressed copy; it is read through
//! the same cache as any file, and answered with its own `ETag` (its own
//! size and time: each variant has its own tag), the original's
//! `Content-Type`, `Content-Encoding` and `Vary: Accept-Encoding`. A
//! `Range` request gets the file itself: a range of compressed bytes is
//! rarely what a client means.

use std::{sync::Arc, time::Instant};

use dashmap::DashMap;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::{StaticFiles, cache::CachedFile, resolve, respond};
use crate::{
    error::HttpError,
    handler::{HandlerFuture, Response},
    middleware::compress::{Encoding, negotiate, sibling},
    pipeline::request::Request,
};

/// A route's sibling codings, and the siblings found missing lately.
#[derive(Debug, Default)]
pub(super) struct Precompressed {
    /// Most preferred first; empty: the route serves no siblings.
    pub codings: Vec<Encoding>,
    /// Siblings (relative paths) looked for and not found, and when: not
    /// looked for again within the file cache's revalidation time, so a
    /// site without them costs no `stat` per request.
    absent: DashMap<String, Instant>,
}

/// Past this many, the record of missing siblings starts afresh.
const MAX_ABSENT: usize = 100_000;

impl Precompressed {
    /// Serves siblings of these codings.
    pub fn new(codings: Vec<Encoding>) -> Self {
        Self {
            codings,
            absent: DashMap::new(),
        }
    }

    fn known_absent(&self, rel: &str) -> bool {
        self.absent
            .get(rel)
            .is_some_and(|at| at.elapsed() < super::cache::REVALIDATE)
    }

    fn mark_absent(&self, rel: String) {
        if self.absent.len() >= MAX_ABSENT {
            self.absent.clear();
        }
        self.absent.insert(rel, Instant::now());
    }
}

/// Serves `req` from the best sibling the client accepts, else the file.
pub(super) fn call(files: &StaticFiles, req: Request) -> HandlerFuture {
    let accept = req.headers().get(header::ACCEPT_ENCODING).cloned();
    let eligible = (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req.headers().contains_key(header::RANGE)
        && negotiate::choose(accept.as_ref(), &files.precompressed.codings).is_some();
    if !eligible {
        return files.plain(req).map(|r| r.map(vary));
    }
    let rel = StaticFiles::relative(&req)
        .trim_start_matches('/')
        .to_owned();
    let resolver = files.resolver.clone();
    let cache = files.cache.clone();
    let buffers = files.buffers.clone();
    let pre = files.precompressed.clone();
    let mut offered = pre.codings.clone();
    HandlerFuture::new(async move {
        let original = match cache.get(&rel) {
            Some(hit) => hit,
            None => {
                let lookup = rel.clone();
                let r = resolver.clone();
                let found = tokio::task::spawn_blocking(move || r.resolve(&lookup))
                    .await
                    .map_err(|e| HttpError::Internal(e.to_string()))??;
                match found {
                    resolve::Found::File(meta) => cache.insert(&rel, meta).await?,
                    resolve::Found::Directory => return respond::to_directory(&req),
                }
            }
        };
        while let Some(coding) = negotiate::choose(accept.as_ref(), &offered) {
            if let Some(found) = fresh_sibling(&pre, &resolver, &cache, &original, coding).await {
                let resp = respond::file(req, found, &buffers).await?;
                return Ok(dress(resp, coding, &original));
            }
            offered.retain(|&c| c != coding);
        }
        respond::file(req, original, &buffers).await.map(vary)
    })
}

/// The sibling of `original` for `coding`, if it exists under the root and
/// is not older than the original.
async fn fresh_sibling(
    pre: &Precompressed,
    resolver: &Arc<resolve::Resolver>,
    cache: &Arc<super::cache::FileCache>,
    original: &CachedFile,
    coding: Encoding,
) -> Option<Arc<CachedFile>> {
    let path = sibling(&original.meta.path, coding);
    let rel = path.strip_prefix(&resolver.root).ok()?.to_str()?.to_owned();
    let fresh = |f: &CachedFile| f.meta.modified >= original.meta.modified;
    if let Some(hit) = cache.get(&rel) {
        return fresh(&hit).then_some(hit);
    }
    if pre.known_absent(&rel) {
        return None;
    }
    let lookup = rel.clone();
    let r = resolver.clone();
    let found = tokio::task::spawn_blocking(move || r.resolve(&lookup))
        .await
        .ok()?;
    let Ok(resolve::Found::File(meta)) = found else {
        pre.mark_absent(rel);
        return None;
    };
    if meta.modified < original.meta.modified {
        tracing::debug!(sibling = %path.display(), "precompressed file older than its original: ignored");
        pre.mark_absent(rel);
        return None;
    }
    cache.insert(&rel, meta).await.ok()
}

/// A sibling's answer, as the original's in another coding.
fn dress(mut resp: Response, coding: Encoding, original: &CachedFile) -> Response {
    let status = resp.status();
    let h = resp.headers_mut();
    if status == StatusCode::OK {
        h.insert(header::CONTENT_ENCODING, coding.header());
        h.insert(header::CONTENT_TYPE, original.content_type.clone());
    }
    vary_headers(h);
    resp
}

fn vary(mut resp: Response) -> Response {
    vary_headers(resp.headers_mut());
    resp
}

/// Whether a sibling is sent depends on `Accept-Encoding`, so every
/// answer says so, the unencoded one too.
fn vary_headers(h: &mut HeaderMap) {
    if !h.contains_key(header::VARY) {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}
