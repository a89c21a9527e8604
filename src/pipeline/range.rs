//! Range requests (RFC 9110 §14): which part of a representation of known
//! length a request asks for, after `If-Range`. The static handler and the
//! response cache answer from it, so a file on disk and a cached upstream
//! response take ranges alike.

use http::{HeaderMap, HeaderValue, header};

use crate::error::HttpError;

/// What part of the representation to send.
#[derive(Debug, PartialEq, Eq)]
pub enum Part {
    /// All of it (no `Range`, one that does not parse, several ranges, or
    /// an `If-Range` that no longer matches).
    Whole,
    /// An inclusive byte range inside it.
    Range(u64, u64),
}

/// The part of a `len`-byte representation, whose validators are `etag`
/// and `last_modified`, that `headers` ask for. A malformed `Range` is
/// ignored (RFC 9110 §14.2); several ranges get the whole, which the RFC
/// allows and which costs the client nothing it cannot handle; a range
/// that starts past the end is a 416.
///
/// `If-Range` (§13.1.5) matches only a strong entity tag equal to ours or
/// a date equal to our `Last-Modified`; otherwise the whole is sent.
pub fn requested(
    headers: &HeaderMap,
    len: u64,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> Result<Part, HttpError> {
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(Part::Whole);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        let strong = |tag: &HeaderValue| !tag.as_bytes().starts_with(b"W/");
        let matches = etag.is_some_and(|e| strong(e) && if_range == e)
            || last_modified.is_some_and(|lm| if_range == lm);
        if !matches {
            return Ok(Part::Whole);
        }
    }
    byte_range(raw, len)
}

/// What a `Range` value asks of a representation of `len` bytes.
pub fn byte_range(raw: &str, len: u64) -> Result<Part, HttpError> {
    let Ok(parsed) = http_range_header::parse_range_header(raw) else {
        return Ok(Part::Whole);
    };
    match parsed.validate(len) {
        // The crate accepts `bytes=0-` on an empty file as 0..=0; no byte
        // of an empty file can be served, so check the bounds ourselves.
        Ok(ranges) if ranges.len() == 1 => match (*ranges[0].start(), *ranges[0].end()) {
            (start, end) if start <= end && end < len => Ok(Part::Range(start, end)),
            _ => Err(HttpError::RangeNotSatisfiable { len }),
        },
        Ok(_) => Ok(Part::Whole),
        Err(_) => Err(HttpError::RangeNotSatisfiable { len }),
    }
}

/// `Content-Range` for the inclusive range `start..=end` of `len` bytes.
pub fn content_range(start: u64, end: u64, len: u64) -> HeaderValue {
    HeaderValue::try_from(format!("bytes {start}-{end}/{len}")).expect("digits are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(range: &str, if_range: Option<&str>) -> Result<Part, HttpError> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(v) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_str(v).unwrap());
        }
        let strong = HeaderValue::from_static("\"v1\"");
        let date = HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT");
        requested(&h, 10, Some(&strong), Some(&date))
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        assert_eq!(ask("bytes=2-4", None).unwrap(), Part::Range(2, 4));
        assert_eq!(ask("bytes=2-4", Some("\"v1\"")).unwrap(), Part::Range(2, 4));
        assert_eq!(ask("bytes=2-4", Some("\"v0\"")).unwrap(), Part::Whole);
        assert_eq!(ask("bytes=2-4", Some("W/\"v1\"")).unwrap(), Part::Whole);
        assert_eq!(
            ask("bytes=-3", Some("Tue, 01 Dec 2026 10:00:00 GMT")).unwrap(),
            Part::Range(7, 9)
        );
        assert!(ask("bytes=10-", None).is_err());
        assert_eq!(ask("bytes=0-1,4-5", None).unwrap(), Part::Whole);
        assert_eq!(ask("lines=1-2", None).unwrap(), Part::Whole);
    }

    #[test]
    fn a_weak_etag_of_ours_never_matches() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-0"));
        h.insert(header::IF_RANGE, HeaderValue::from_static("W/\"v1\""));
        let weak = HeaderValue::from_static("W/\"v1\"");
        assert_eq!(requested(&h, 10, Some(&weak), None).unwrap(), Part::Whole);
    }
}
