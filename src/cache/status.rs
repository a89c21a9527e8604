//! The `Cache-Status` response field (RFC 9211): what the cache did for
//! this response, as `troupe; hit; ttl=42` or `troupe; fwd=miss; stored`.

use std::fmt::Write;

use http::{HeaderName, HeaderValue, StatusCode};

/// `Cache-Status`.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Why the cache went forward (RFC 9211 §2.2 `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fwd {
    /// Not cacheable by method.
    Bypass,
    /// Nothing stored under the key.
    UriMiss,
    /// Stored, but not for this request's `Vary` headers.
    VaryMiss,
    /// Stored, but stale.
    Stale,
    /// The request asked to go forward (`no-cache`).
    Request,
}

impl Fwd {
    fn token(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
        }
    }
}

/// One response's `Cache-Status` entry.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CacheStatus {
    /// Served from the cache.
    pub hit: bool,
    /// Went forward, and why.
    pub fwd: Option<Fwd>,
    /// The forward's status, when it differs from the response's.
    pub fwd_status: Option<StatusCode>,
    /// Freshness left in seconds (negative: stale), when served stored.
    pub ttl: Option<i64>,
    /// The response was (is being) stored.
    pub stored: bool,
    /// Waited for another request's forward.
    pub collapsed: bool,
    /// Extra detail (`stale-while-revalidate`, `stale-if-error`).
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// A fresh hit with `ttl` seconds left.
    pub fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    /// Went forward for `why`.
    pub fn fwd(why: Fwd) -> Self {
        Self {
            fwd: Some(why),
            ..Self::default()
        }
    }

    /// The field value.
    pub fn value(&self) -> HeaderValue {
        let mut s = String::from("troupe");
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            let _ = write!(s, "; fwd={}", f.token());
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={}", st.as_u16());
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            let _ = write!(s, "; detail={d}");
        }
        HeaderValue::try_from(s).expect("tokens and digits are a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_rfc_9211_lists() {
        assert_eq!(CacheStatus::hit(42).value(), "troupe; hit; ttl=42");
        let miss = CacheStatus {
            stored: true,
            ..CacheStatus::fwd(Fwd::UriMiss)
        };
        assert_eq!(miss.value(), "troupe; fwd=uri-miss; stored");
        let on_error = CacheStatus {
            hit: true,
            fwd: Some(Fwd::Stale),
            fwd_status: Some(StatusCode::BAD_GATEWAY),
            ttl: Some(-3),
            detail: Some("stale-if-error"),
            ..CacheStatus::default()
        };
        assert_eq!(
            on_error.value(),
            "troupe; hit; fwd=stale; fwd-status=502; ttl=-3; detail=stale-if-error"
        );
    }
}
