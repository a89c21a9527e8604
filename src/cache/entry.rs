//! One stored response: its RFC 9111 policy, its head and body, the
//! request headers its `Vary` names, and the stale allowances its
//! `Cache-Control` grants.
//!
//! `http-cache-semantics` decides storability and freshness. What it does
//! not cover is here: `stale-while-revalidate` and `stale-if-error` (RFC
//! 5861), which it does not parse, and the head a hit answers with, which
//! is kept as the upstream sent it (the crate's copy of the headers keeps
//! one value per name, which would drop a second `Link` or `Vary`).
//!
//! A hit needs only an entry's age and freshness lifetime, which are kept
//! apart from the policy ([`Stored::age`]); the policy itself is needed
//! only to judge a request's own directives and to revalidate. An entry
//! read back from disk therefore keeps its policy encoded ([`Policy`])
//! until then: decoding it builds two header maps, a third of what a disk
//! hit cost.

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use http_cache_semantics::{CachePolicy, RequestLike};

/// The request a policy is judged against: what the cache sent upstream
/// (or a later request presented to an entry).
#[derive(Debug)]
pub(super) struct Asked<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

impl RequestLike for Asked<'_> {
    fn uri(&self) -> Uri {
        self.uri.clone()
    }

    fn is_same_uri(&self, other: &Uri) -> bool {
        // The cache key already names the resource; the URI of a request
        // that reached this entry through its key is the same one.
        self.uri == other
    }

    fn method(&self) -> &Method {
        self.method
    }

    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

/// The request headers a response's `Vary` names, as its request had them
/// (`None`: absent).
pub(super) type Selection = Box<[(HeaderName, Option<HeaderValue>)]>;

/// An entry's RFC 9111 policy: decoded, or as its disk file holds it
/// (decoded when first needed).
#[derive(Debug)]
pub(super) struct Policy {
    decoded: OnceLock<Option<CachePolicy>>,
    /// Its postcard encoding; empty once decoded from the start.
    encoded: Bytes,
}

impl Policy {
    /// A policy at hand.
    pub(super) fn decoded(policy: CachePolicy) -> Self {
        Self {
            decoded: OnceLock::from(Some(policy)),
            encoded: Bytes::new(),
        }
    }

    /// A policy as [`Policy::encode`] wrote it.
    pub(super) fn encoded(encoded: Bytes) -> Self {
        Self {
            decoded: OnceLock::new(),
            encoded,
        }
    }

    /// The policy; `None` if its encoding does not decode (a file from
    /// another version whose checksum still matched).
    pub(super) fn get(&self) -> Option<&CachePolicy> {
        self.decoded
            .get_or_init(|| postcard::from_bytes(&self.encoded).ok())
            .as_ref()
    }

    /// Its encoding, for a disk file (the one it was read from, if so).
    pub(super) fn encode(&self) -> Result<Bytes, postcard::Error> {
        if !self.encoded.is_empty() {
            return Ok(self.encoded.clone());
        }
        match self.get() {
            Some(p) => postcard::to_allocvec(p).map(Bytes::from),
            None => Err(postcard::Error::SerializeBufferFull),
        }
    }
}

/// A stored response.
#[derive(Debug)]
pub struct Stored {
    pub(super) policy: Policy,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// The request headers the response's `Vary` names, as this response's
    /// request had them.
    pub(super) vary: Selection,
    /// Purge tags (`Cache-Tag`, `Surrogate-Key`).
    pub(super) tags: Box<[Box<str>]>,
    /// How long past its freshness it may be served while a refresh runs.
    pub(super) stale_while_revalidate: Duration,
    /// How long past its freshness it may be served when the upstream fails.
    pub(super) stale_if_error: Duration,
    /// Its freshness lifetime (the crate keeps it private).
    pub(super) lifetime: Duration,
    /// When its age was zero: its age is the time since (RFC 9111 §4.2.3,
    /// as the policy counts it: the `Age` it came with plus the time it
    /// has been held).
    pub(super) born: SystemTime,
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotStored {
    /// RFC 9111 says no (`no-store`, `private`, `Authorization`, an
    /// unknown status, no freshness information...).
    Policy,
    /// `Set-Cookie` without an explicit permission to share it.
    Cookie,
    /// `Vary: *`: no later request can match it.
    VaryAll,
    /// A partial response.
    Partial,
}

impl Stored {
    /// Whether `asked`'s response with `status` and `headers` may be
    /// stored, and its policy if so.
    pub(super) fn policy(
        asked: &Asked<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<CachePolicy, NotStored> {
        if status == StatusCode::PARTIAL_CONTENT || headers.contains_key(header::CONTENT_RANGE) {
            return Err(NotStored::Partial);
        }
        if vary_names(headers).any(|n| n == "*") {
            return Err(NotStored::VaryAll);
        }
        let cc = Directives(headers);
        if headers.contains_key(header::SET_COOKIE) && !(cc.has("public") || cc.has("s-maxage")) {
            return Err(NotStored::Cookie);
        }
        let res = Head { status, headers };
        let policy = CachePolicy::new_options(asked, &res, now, Default::default());
        if policy.is_storable() {
            Ok(policy)
        } else {
            Err(NotStored::Policy)
        }
    }

    /// An entry for a response `policy` allows.
    pub(super) fn new(
        policy: CachePolicy,
        asked: &Asked<'_>,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Self {
        let vary = vary_names(&headers)
            .filter_map(|n| HeaderName::try_from(n).ok())
            .map(|n| {
                let v = asked.headers.get(&n).cloned();
                (n, v)
            })
            .collect();
        let (born, lifetime) = clock(&policy, now);
        Self::restored(
            Policy::decoded(policy),
            status,
            headers,
            body,
            vary,
            born,
            lifetime,
        )
    }

    /// An entry from its parts (as a disk tier's file holds them).
    pub(super) fn restored(
        policy: Policy,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        vary: Selection,
        born: SystemTime,
        lifetime: Duration,
    ) -> Self {
        let cc = Directives(&headers);
        Self {
            stale_while_revalidate: cc.seconds("stale-while-revalidate"),
            stale_if_error: cc.seconds("stale-if-error"),
            lifetime,
            born,
            tags: tags_of(&headers),
            policy,
            status,
            headers,
            body,
            vary,
        }
    }

    /// The same response refreshed by a 304: its new policy and headers,
    /// its old body.
    pub(super) fn refreshed(
        &self,
        policy: CachePolicy,
        headers: HeaderMap,
        now: SystemTime,
    ) -> Self {
        let cc = Directives(&headers);
        let (born, lifetime) = clock(&policy, now);
        Self {
            lifetime,
            born,
            policy: Policy::decoded(policy),
            status: self.status,
            stale_while_revalidate: cc.seconds("stale-while-revalidate"),
            stale_if_error: cc.seconds("stale-if-error"),
            headers,
            body: self.body.clone(),
            vary: self.vary.clone(),
            tags: self.tags.clone(),
        }
    }

    /// Bytes it weighs in memory (body and head, roughly).
    pub(super) fn weight(&self) -> u64 {
        let head: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + head + 256) as u64
    }

    /// Whether `headers` (a later request's) select this variant.
    pub(super) fn vary_matches(&self, headers: &HeaderMap) -> bool {
        selects(&self.vary, headers)
    }

    /// Whether `other` is the variant for the same `Vary` selection.
    pub(super) fn same_selection(&self, other: &Stored) -> bool {
        self.vary == other.vary
    }

    /// Its age at `now`.
    pub(super) fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.born).unwrap_or_default()
    }

    /// Whether it is stale at `now`, by its own freshness (the policy's
    /// `is_stale`, without the policy).
    pub(super) fn is_stale(&self, now: SystemTime) -> bool {
        self.lifetime <= self.age(now)
    }

    /// Seconds of freshness left; negative once stale.
    pub(super) fn ttl(&self, now: SystemTime) -> i64 {
        self.lifetime.as_secs() as i64 - self.age(now).as_secs() as i64
    }

    /// How long it has been stale (zero while fresh).
    pub(super) fn staleness(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// The response to send: the stored head with its current `Age`.
    pub(super) fn head(&self, now: SystemTime) -> (StatusCode, HeaderMap) {
        let mut headers = self.headers.clone();
        headers.insert(header::AGE, HeaderValue::from(self.age(now).as_secs()));
        (self.status, headers)
    }
}

/// An entry for `GET /a` answered 200 with `head` and `body`, stored now
/// (for the cache's unit tests).
#[cfg(test)]
pub(super) fn for_test(head: HeaderMap, body: &'static [u8]) -> Stored {
    let (uri, req) = (Uri::from_static("/a"), HeaderMap::new());
    let asked = Asked {
        method: &Method::GET,
        uri: &uri,
        headers: &req,
    };
    let now = SystemTime::now();
    let policy = Stored::policy(&asked, StatusCode::OK, &head, now).expect("storable");
    Stored::new(
        policy,
        &asked,
        StatusCode::OK,
        head,
        Bytes::from_static(body),
        now,
    )
}

/// When a policy made at `now` was aged zero, and its freshness
/// lifetime: its age plus what is left of it (zero for one stale from the
/// start, such as `max-age=0`).
fn clock(policy: &CachePolicy, now: SystemTime) -> (SystemTime, Duration) {
    let age = policy.age(now);
    let born = now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
    let lifetime = match policy.time_to_live(now) {
        Duration::ZERO => Duration::ZERO,
        left => age + left,
    };
    (born, lifetime)
}

/// Whether a request with `headers` selects the variant stored for
/// `selection`.
pub(super) fn selects(selection: &Selection, headers: &HeaderMap) -> bool {
    selection.iter().all(|(n, v)| headers.get(n) == v.as_ref())
}

/// A response's purge tags (`Cache-Tag`, `Surrogate-Key`).
pub(super) fn tags_of(headers: &HeaderMap) -> Box<[Box<str>]> {
    [HeaderName::from_static("cache-tag"), SURROGATE_KEY]
        .iter()
        .flat_map(|n| headers.get_all(n))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ' ']))
        .filter(|t| !t.is_empty())
        .map(Box::from)
        .collect()
}

/// `Surrogate-Key` (Fastly's name for a purge tag).
const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

fn vary_names(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// A response head for the policy.
struct Head<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
}

impl http_cache_semantics::ResponseLike for Head<'_> {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

/// A `Cache-Control` field, read for the directives the crate leaves out.
pub(super) struct Directives<'a>(pub &'a HeaderMap);

impl Directives<'_> {
    fn items(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| match d.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (d.trim(), None),
            })
    }

    /// Whether directive `name` is present.
    pub(super) fn has(&self, name: &str) -> bool {
        self.items().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// Directive `name`'s delta-seconds (zero when absent or malformed).
    pub(super) fn seconds(&self, name: &str) -> Duration {
        self.items()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v?.parse().ok())
            .map_or(Duration::ZERO, Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::try_from(*n).unwrap(),
                    HeaderValue::try_from(*v).unwrap(),
                )
            })
            .collect()
    }

    fn asked(h: &HeaderMap) -> Asked<'_> {
        static URI: std::sync::LazyLock<Uri> = std::sync::LazyLock::new(|| Uri::from_static("/a"));
        Asked {
            method: &Method::GET,
            uri: &URI,
            headers: h,
        }
    }

    #[test]
    fn stale_directives_are_read() {
        let h = headers(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30,stale-if-error=\"600\"",
        )]);
        let d = Directives(&h);
        assert_eq!(d.seconds("stale-while-revalidate"), Duration::from_secs(30));
        assert_eq!(d.seconds("stale-if-error"), Duration::from_secs(600));
        assert_eq!(d.seconds("max-stale"), Duration::ZERO);
        assert!(d.has("MAX-AGE"));
    }

    #[test]
    fn cookies_partials_and_vary_star_are_not_stored() {
        let req = HeaderMap::new();
        let now = SystemTime::now();
        let ok = |pairs: &[(&str, &str)], status: u16| {
            Stored::policy(
                &asked(&req),
                StatusCode::from_u16(status).unwrap(),
                &headers(pairs),
                now,
            )
            .map(|_| ())
        };
        assert_eq!(ok(&[("cache-control", "max-age=60")], 200), Ok(()));
        assert_eq!(
            ok(
                &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
                200
            ),
            Err(NotStored::Cookie)
        );
        assert_eq!(
            ok(
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", "a=1")
                ],
                200
            ),
            Ok(())
        );
        assert_eq!(
            ok(&[("cache-control", "max-age=60"), ("vary", "*")], 200),
            Err(NotStored::VaryAll)
        );
        assert_eq!(
            ok(&[("cache-control", "max-age=60")], 206),
            Err(NotStored::Partial)
        );
        assert_eq!(
            ok(&[("cache-control", "private, max-age=60")], 200),
            Err(NotStored::Policy)
        );
    }

    #[test]
    fn variants_match_on_the_headers_vary_names() {
        let req = headers(&[("accept-encoding", "gzip")]);
        let res = headers(&[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")]);
        let now = SystemTime::now();
        let policy = Stored::policy(&asked(&req), StatusCode::OK, &res, now).unwrap();
        let stored = Stored::new(policy, &asked(&req), StatusCode::OK, res, Bytes::new(), now);
        assert!(stored.vary_matches(&req));
        assert!(!stored.vary_matches(&HeaderMap::new()));
        assert!(!stored.vary_matches(&headers(&[("accept-encoding", "br")])));
        assert!(stored.ttl(now) > 50);
    }

    #[test]
    fn the_clock_agrees_with_the_policy_it_stands_in_for() {
        let req = HeaderMap::new();
        let now = SystemTime::now();
        let date = |secs: u64| httpdate::fmt_http_date(now + Duration::from_secs(secs));
        let expires = date(120);
        let cases: [&[(&str, &str)]; 6] = [
            &[("cache-control", "max-age=60")],
            &[("cache-control", "max-age=60"), ("age", "50")],
            &[("cache-control", "max-age=60"), ("age", "100")],
            &[("cache-control", "s-maxage=30, max-age=600")],
            &[("cache-control", "public"), ("expires", &expires)],
            &[("cache-control", "max-age=0")],
        ];
        for pairs in cases {
            let res = headers(pairs);
            let policy = Stored::policy(&asked(&req), StatusCode::OK, &res, now).unwrap();
            let stored = Stored::new(
                Stored::policy(&asked(&req), StatusCode::OK, &res, now).unwrap(),
                &asked(&req),
                StatusCode::OK,
                res,
                Bytes::new(),
                now,
            );
            for later in [0, 20, 45, 59, 61, 119, 121, 1000] {
                let at = now + Duration::from_secs(later);
                assert_eq!(stored.age(at), policy.age(at), "{pairs:?} at +{later}s");
                assert_eq!(
                    stored.is_stale(at),
                    policy.is_stale(at),
                    "{pairs:?} at +{later}s"
                );
            }
        }
    }
}
