//! Compiles a server's and a route's routing extras: error pages,
//! rewrites (`routing_schema.rs`), and `try_files` on a static route.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use http::{HeaderValue, StatusCode};
use regex::Regex;

use super::{
    locate::{Anchor, CompileError, err},
    schema::{ErrorPageSpec, ExpiresSpec, RewriteSpec, ServerLogSpec},
};
use crate::{
    middleware::error_pages::{Codes, ErrorPages, Page, PageSource},
    pipeline::rewrite::{Rewrite, Rewrites},
};

/// The error pages of `specs`, `None` for none.
pub(super) fn error_pages(
    specs: &[ErrorPageSpec],
    base: &Path,
) -> Result<Option<ErrorPages>, CompileError> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut pages = Vec::with_capacity(specs.len());
    for spec in specs {
        let at = Anchor::str(&spec.on);
        let codes = Codes::parse(&spec.on).map_err(|message| CompileError {
            message,
            anchor: at.clone(),
        })?;
        let source = match (&spec.uri, &spec.file) {
            (Some(uri), None) => {
                if !uri.starts_with('/') {
                    return err(
                        Anchor::str(uri),
                        format!("error page `{uri}` must start with `/` (a path in this server)"),
                    );
                }
                PageSource::Uri(uri.clone())
            }
            (None, Some(file)) => {
                let path = base.join(file);
                let anchor = Anchor::str(&file.to_string_lossy());
                let body = std::fs::read(&path).map_err(|e| CompileError {
                    message: format!("error page file `{}`: {e}", file.display()),
                    anchor,
                })?;
                PageSource::File {
                    body: body.into(),
                    content_type: content_type(&path),
                }
            }
            _ => {
                return err(
                    at,
                    "an error page has neither or both of `uri` and `file` (expected exactly one)",
                );
            }
        };
        let status = match spec.status {
            Some(code) => Some(
                StatusCode::from_u16(code)
                    .ok()
                    .filter(|s| s.as_u16() >= 200)
                    .ok_or_else(|| CompileError {
                        message: format!(
                            "invalid status {code} (expected a number from 200 to 999)"
                        ),
                        anchor: at.clone(),
                    })?,
            ),
            None => None,
        };
        pages.push(Page {
            codes,
            source,
            status,
        });
    }
    Ok(Some(ErrorPages::new(pages)))
}

/// The type of an error page file, by its extension.
fn content_type(path: &Path) -> HeaderValue {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    HeaderValue::from_static(match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    })
}

/// The files error pages are read from (`file:`), for the config
/// watcher: they are read when the config loads, so an edit to one
/// reloads the config (with `watch: true`), as an edit to an htpasswd
/// file does.
pub fn error_page_files(config: &super::Config, base: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config
        .servers
        .iter()
        .flat_map(|s| {
            s.error_pages
                .iter()
                .chain(s.routes.iter().flat_map(|r| r.error_pages.iter()))
        })
        .filter_map(|p| p.file.as_ref())
        .map(|f| base.join(f))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// A server's rewrites; a regex that does not compile names itself.
pub(super) fn rewrites(specs: &[RewriteSpec]) -> Result<Rewrites, CompileError> {
    let rules = specs
        .iter()
        .map(|spec| {
            let regex = Regex::new(&spec.regex).map_err(|e| CompileError {
                message: format!(
                    "invalid regex `{}`: {}",
                    spec.regex,
                    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
                ),
                anchor: Anchor::str(&spec.regex),
            })?;
            if !spec.to.starts_with('/') {
                return err(
                    Anchor::str(&spec.to),
                    format!(
                        "rewrite target `{}` must start with `/` (a path in this server; use a `Redirect` route to send the client elsewhere)",
                        spec.to
                    ),
                );
            }
            Ok(Rewrite {
                regex,
                to: spec.to.clone(),
            })
        })
        .collect::<Result<Vec<_>, CompileError>>()?;
    Ok(Rewrites(rules.into()))
}

/// `try_files` on a static route: the tried templates and the fallback.
#[cfg(feature = "handler-static")]
pub(super) fn try_files(
    files: crate::handlers::static_files::StaticFiles,
    list: &[String],
) -> Result<Arc<dyn crate::handler::Handler>, CompileError> {
    use crate::handlers::{
        static_files::{Fallback, TryFiles},
        template::Template,
    };
    let Some((last, tries)) = list.split_last() else {
        return Ok(Arc::new(files));
    };
    if tries.is_empty() {
        return err(
            Anchor::str(last),
            format!(
                "`try_files` has only `{last}` (expected paths to try, then a fallback URI or `=404`)"
            ),
        );
    }
    let fallback = Fallback::parse(last).map_err(|message| CompileError {
        message,
        anchor: Anchor::str(last),
    })?;
    let tries = tries.iter().map(|t| Template::parse(t)).collect();
    Ok(Arc::new(TryFiles::new(files, tries, fallback)))
}

/// A route's `expires` as middleware; `None` for none.
pub(super) fn expires(
    spec: Option<&ExpiresSpec>,
) -> Result<Option<Arc<dyn crate::handler::Middleware>>, CompileError> {
    use crate::middleware::expires::{Expires, Expiry, Match};
    let Some(spec) = spec else {
        return Ok(None);
    };
    let parse = |text: &str| {
        Expiry::parse(text).map_err(|message| CompileError {
            message,
            anchor: Anchor::str(text),
        })
    };
    let default = spec.default.as_deref().map(parse).transpose()?;
    let mut rules = spec
        .by_type
        .iter()
        .map(|(key, value)| {
            let m = match key.strip_prefix('.') {
                Some(_) => Match::Extension(key.clone()),
                None if key.contains('/') => Match::Type(key.to_ascii_lowercase()),
                None => {
                    return err(
                        Anchor::str(key),
                        format!("`{key}` is neither a type (`text/html`, `image/`) nor an extension (`.css`)"),
                    );
                }
            };
            Ok((key.len(), m, parse(value)?))
        })
        .collect::<Result<Vec<_>, CompileError>>()?;
    // The most specific key first: `image/svg+xml` before `image/`.
    rules.sort_by_key(|(len, ..)| std::cmp::Reverse(*len));
    Ok(Some(Arc::new(Expires {
        rules: rules.into_iter().map(|(_, m, e)| (m, e)).collect(),
        default,
    })))
}

/// A server's access-log settings; `None` for none.
pub(super) fn server_log(
    spec: Option<&ServerLogSpec>,
) -> Result<Option<Arc<crate::observe::log_format::ServerLog>>, CompileError> {
    use crate::{handlers::template::Template, pipeline::codes::Codes};
    let Some(spec) = spec else {
        return Ok(None);
    };
    let skip = spec
        .skip
        .iter()
        .map(|re| {
            Regex::new(re).map_err(|e| CompileError {
                message: format!(
                    "invalid regex `{re}`: {}",
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                anchor: Anchor::str(re),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let skip_status = match &spec.skip_status {
        Some(text) => {
            Some(
                Codes::parse_within(text, 100, 599).map_err(|message| CompileError {
                    message,
                    anchor: Anchor::str(text),
                })?,
            )
        }
        None => None,
    };
    Ok(Some(Arc::new(crate::observe::log_format::ServerLog {
        format: spec.format.as_deref().map(Template::parse_log),
        skip: skip.into(),
        skip_status,
    })))
}
