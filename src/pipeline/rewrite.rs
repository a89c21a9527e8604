//! A server's `rewrites` (nginx `rewrite REGEX REPLACEMENT last;` in a
//! `server`): before the route table is looked up, the first rule whose
//! regex matches the decoded path replaces the URI, and the request is
//! routed with the new one. The replacement takes the captures as `$1`,
//! `${1}` or `${name}` (the regex crate's expansion); a replacement with
//! a `?` sets the query, one ending in `?` drops it, any other keeps the
//! request's.

use http::Uri;
use regex::Regex;

use crate::error::HttpError;

/// One rule.
#[derive(Debug)]
pub struct Rewrite {
    /// Matched against the decoded, normalized path.
    pub regex: Regex,
    /// The new URI, with `$N` captures.
    pub to: String,
}

/// A server's rules, in file order.
#[derive(Debug, Default)]
pub struct Rewrites(pub Box<[Rewrite]>);

impl Rewrites {
    /// Whether there are none (the common case: nothing to do).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first matching rule's new URI and its normalized path; `None`
    /// when no rule matches `path`.
    pub fn apply(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Option<Result<(Uri, String), HttpError>> {
        self.0.iter().find_map(|rule| {
            let caps = rule.regex.captures(path)?;
            let mut target = String::new();
            caps.expand(&rule.to, &mut target);
            Some(target_of(&target, query))
        })
    }
}

/// The URI and normalized path a rendered target names.
pub(crate) fn target_of(target: &str, query: Option<&str>) -> Result<(Uri, String), HttpError> {
    let uri = super::internal::with_query(target, query)?;
    let path = super::path::normalize(uri.path())
        .map_err(|_| HttpError::BadRequest("invalid path"))?
        .into_owned();
    Ok((uri, path))
}
