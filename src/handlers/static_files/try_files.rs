//! `try_files` (nginx's): a `Static` route with `try_files` tries each
//! path (a [`Template`]: `$uri`, `$uri/`, `/$arg_page.html`…) under its
//! root, in order, and serves the first that is a file (a path ending in
//! `/` stands for a directory with an index file); if none is, the last
//! entry decides: `=404` (any status) answers with it, a URI is routed
//! again inside the server (`pipeline/internal.rs`), so the single-page
//! app fallback is `["$uri", "$uri/", "/index.html"]`.
//!
//! A tried path is the template's text, decoded: its `..` segments are
//! resolved and one that climbs above the root is skipped, and the file
//! is looked up by the static handler's own resolver (`resolve.rs`), so a
//! symlink out of the root is not served either.

use std::sync::Arc;

use http::StatusCode;

use super::{StaticFiles, resolve::Found};
use crate::{
    error::{HttpError, error_page},
    handler::{Handler, HandlerFuture},
    handlers::template::Template,
    pipeline::{internal::Internal, request::Request},
};

/// What answers when no path is a file.
#[derive(Debug)]
pub enum Fallback {
    /// `=404`: this status.
    Status(StatusCode),
    /// A URI, routed again.
    Uri(Template),
}

impl Fallback {
    /// Parses the last `try_files` entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix('=') {
            Some(code) => code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|s| s.as_u16() >= 200)
                .map(Fallback::Status)
                .ok_or_else(|| {
                    format!(
                        "invalid status `{text}` (expected `=404` or another code from 200 to 999)"
                    )
                }),
            None if text.starts_with('/') || text.starts_with('$') => {
                Ok(Fallback::Uri(Template::parse(text)))
            }
            None => Err(format!(
                "invalid fallback `{text}` (expected a URI such as `/index.html`, or a status such as `=404`)"
            )),
        }
    }
}

/// A static root tried path by path.
#[derive(Debug)]
pub struct TryFiles {
    files: Arc<StaticFiles>,
    tries: Arc<[Template]>,
    fallback: Arc<Fallback>,
}

impl TryFiles {
    /// Tries `tries` under `files`' root, then `fallback`.
    pub fn new(files: StaticFiles, tries: Vec<Template>, fallback: Fallback) -> Self {
        Self {
            files: Arc::new(files),
            tries: tries.into(),
            fallback: Arc::new(fallback),
        }
    }
}

impl Handler for TryFiles {
    fn call(&self, req: Request) -> HandlerFuture {
        let candidates: Vec<Option<String>> =
            self.tries.iter().map(|t| inside(&t.render(&req))).collect();
        // The first path already in the file cache answers at once.
        if let Some(Some(first)) = candidates.first()
            && !first.ends_with('/')
            && self.files.cache.get(first).is_some()
        {
            return serve(&self.files, req, first.clone());
        }
        let files = self.files.clone();
        let fallback = self.fallback.clone();
        HandlerFuture::new(async move {
            let resolver = files.resolver.clone();
            let found = tokio::task::spawn_blocking(move || {
                candidates
                    .into_iter()
                    .flatten()
                    .find(|rel| matches!(resolver.resolve(rel), Ok(Found::File(_))))
            })
            .await
            .map_err(|e| HttpError::Internal(e.to_string()))?;
            match (found, &*fallback) {
                (Some(rel), _) => serve(&files, req, rel).await,
                (None, Fallback::Status(StatusCode::NOT_FOUND)) => Err(HttpError::NotFound),
                (None, Fallback::Status(status)) => Ok(error_page(*status)),
                (None, Fallback::Uri(target)) => {
                    let target = target.render(&req);
                    let Some(internal) = req.extensions().get::<Internal>().cloned() else {
                        return Err(HttpError::Internal("try_files: no routing context".into()));
                    };
                    internal.route(req, &target).await
                }
            }
        })
    }

    fn default_methods(&self) -> Option<&'static [http::Method]> {
        self.files.default_methods()
    }
}

/// Serves `rel` (relative to the root) as the static handler would.
fn serve(files: &StaticFiles, mut req: Request, rel: String) -> HandlerFuture {
    req.set_params(vec![("try_files".into(), rel)]);
    files.call(req)
}

/// A tried path relative to the root, `.` and `..` resolved; `None` for
/// one that climbs above the root or holds a NUL or a backslash.
fn inside(path: &str) -> Option<String> {
    if path.contains(['\0', '\\']) {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    let mut rel = out.join("/");
    if path.ends_with('/') && !rel.is_empty() {
        rel.push('/');
    }
    Some(rel)
}

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn tried_paths_stay_inside() {
        assert_eq!(inside("/a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(inside("/dir/").as_deref(), Some("dir/"));
        assert_eq!(inside("/").as_deref(), Some(""));
        assert_eq!(inside("/../etc/passwd"), None);
        assert_eq!(inside("/a/../../x"), None);
        assert_eq!(inside("/a\\..\\b"), None);
    }
}
