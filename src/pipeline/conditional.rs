//! Conditional GET (RFC 9110 §13): whether a request's `If-None-Match` or
//! `If-Modified-Since` lets a response we hold be answered with 304.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, header};

/// Whether `req` already has the representation whose validators are
/// `etag` and `last_modified`. `If-None-Match` wins over
/// `If-Modified-Since` (§13.2.2).
pub fn not_modified(
    req: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<SystemTime>,
) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        return match (inm.to_str(), etag) {
            (Ok(list), Some(etag)) => etag_list_matches(list, etag),
            (Ok(list), None) => list.trim() == "*",
            _ => false,
        };
    }
    let (Some(modified), Some(ims)) = (
        last_modified,
        req.get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok()),
    ) else {
        return false;
    };
    // HTTP dates have whole seconds: compare at that precision.
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(modified) <= secs(ims)
}

/// Weak comparison, as `If-None-Match` asks: `W/` prefixes are ignored on
/// both sides.
pub fn etag_list_matches(list: &str, etag: &HeaderValue) -> bool {
    let ours = strip_weak(etag.as_bytes());
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || strip_weak(tag.as_bytes()) == ours)
}

fn strip_weak(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn etags_compare_weakly() {
        let tag = HeaderValue::from_static("W/\"a\"");
        assert!(not_modified(
            &req(header::IF_NONE_MATCH, "\"b\", \"a\""),
            Some(&tag),
            None
        ));
        assert!(!not_modified(
            &req(header::IF_NONE_MATCH, "\"b\""),
            Some(&tag),
            None
        ));
        assert!(not_modified(&req(header::IF_NONE_MATCH, "*"), None, None));
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let mut h = req(header::IF_NONE_MATCH, "\"other\"");
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let tag = HeaderValue::from_static("\"a\"");
        assert!(!not_modified(&h, Some(&tag), Some(UNIX_EPOCH)));
        h.remove(header::IF_NONE_MATCH);
        assert!(not_modified(&h, Some(&tag), Some(UNIX_EPOCH)));
    }
}
