//! Headers across the proxy: hop-by-hop ones removed both ways (RFC 9110
//! §7.6.1), then the forwarding headers added to the request
//! (`X-Forwarded-For`, `-Proto`, `-Host` and RFC 7239 `Forwarded`).
//!
//! The stripping comes first, so a client cannot name one of our own
//! headers in `Connection` to have it removed. Incoming forwarding
//! headers are kept and extended only from a trusted peer; from anyone
//! else they are replaced, so a client cannot forge its address.

use std::{fmt::Write as _, net::IpAddr};

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::pipeline::request::lists_token;

/// The hop-by-hop headers every message drops, besides those named in
/// its `Connection` (`TE` is handled apart: `TE: trailers` is kept).
static HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// What an untrusted peer may not send us.
static FORWARDING: [HeaderName; 4] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    header::FORWARDED,
];

/// Removes the hop-by-hop headers: every header named in `Connection`,
/// then the fixed list. `TE` survives only as `trailers` (what gRPC and
/// trailer-aware clients send).
///
/// This runs twice per proxied request, so it looks up only what the
/// message has: one walk over the names (an integer compare for a
/// standard name) finds them, where a hashed lookup per listed name cost
/// 7% of a proxied request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Bit i: HOP_BY_HOP[i] is present; bit 7: TE.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        } else if name == header::TE {
            present |= 1 << 7;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // The usual tokens name no header but the fixed ones.
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            // `Connection: host` would leave the request without one.
            .filter(|n| n != header::HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if headers.contains_key(header::TE) {
        let trailers = lists_token(headers, header::TE, "trailers");
        headers.remove(header::TE);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// What the forwarding headers say about this hop.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The client's (the peer's) address.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The host it asked for, if any.
    pub host: Option<&'a HeaderValue>,
}

/// Which forwarding headers a proxy adds (a route's `forwarded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// `X-Forwarded-For`, `-Proto` and `-Host`.
    pub x_forwarded: bool,
    /// RFC 7239 `Forwarded`.
    pub rfc7239: bool,
}

impl Forwarding {
    /// All four (the default).
    pub const ALL: Self = Self {
        x_forwarded: true,
        rfc7239: true,
    };
}

/// Adds this hop to the forwarding headers `which` names (call after
/// [`strip_hop_by_hop`]). From a peer that is not trusted, all four are
/// removed first, whichever are added after.
pub fn add_forwarding(headers: &mut HeaderMap, hop: Hop<'_>, which: Forwarding) {
    // Usually no forwarding header came in: then there is nothing to
    // look up, drop or extend.
    let mut carried = headers.keys().any(|k| FORWARDING.contains(k));
    if carried && !hop.trusted {
        for name in &FORWARDING {
            headers.remove(name);
        }
        carried = false;
    }
    if !which.x_forwarded && !which.rfc7239 {
        return;
    }
    // Four more names: grow the map once, not on the way.
    headers.reserve(4);
    let mut ip = String::with_capacity(48);
    push_ip(&mut ip, hop.peer);
    let element = which.rfc7239.then(|| {
        let mut element = String::with_capacity(64);
        forwarded_element(&mut element, &ip, hop);
        element
    });
    if which.x_forwarded {
        add_x_forwarded(headers, hop, ip, carried);
    }
    if let Some(element) = element {
        let value = match prior(headers, &header::FORWARDED, carried) {
            Some(prior) => [prior, ", ", &element].concat(),
            None => element,
        };
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.insert(header::FORWARDED, v);
        }
    }
}

/// The three `X-Forwarded-*` for this hop, `ip` being the peer's.
fn add_x_forwarded(headers: &mut HeaderMap, hop: Hop<'_>, ip: String, carried: bool) {
    let proto = if hop.tls { "https" } else { "http" };
    // X-Forwarded-For: a trusted proxy's list gets the peer appended.
    let xff = match prior(headers, &X_FORWARDED_FOR, carried) {
        Some(prior) => [prior, ", ", &ip].concat(),
        None => ip,
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    // -Proto and -Host describe the first hop: a trusted proxy's stay.
    if !carried {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        if let Some(host) = hop.host {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        return;
    }
    if let header::Entry::Vacant(e) = headers.entry(&X_FORWARDED_PROTO) {
        e.insert(HeaderValue::from_static(proto));
    }
    if let Some(host) = hop.host
        && let header::Entry::Vacant(e) = headers.entry(&X_FORWARDED_HOST)
    {
        e.insert(host.clone());
    }
}

/// A trusted proxy's value of `name`, to extend; none when nothing was
/// `carried` in (no lookup then).
fn prior<'h>(headers: &'h HeaderMap, name: &HeaderName, carried: bool) -> Option<&'h str> {
    if !carried {
        return None;
    }
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// This hop's `Forwarded` element (RFC 7239): IPv6 quoted and bracketed,
/// a host that is not a token quoted.
fn forwarded_element(out: &mut String, ip: &str, hop: Hop<'_>) {
    let proto = if hop.tls { "https" } else { "http" };
    match hop.peer {
        IpAddr::V4(_) => out.extend(["for=", ip]),
        IpAddr::V6(_) => out.extend(["for=\"[", ip, "]\""]),
    }
    out.extend([";proto=", proto]);
    if let Some(host) = hop.host.and_then(|h| h.to_str().ok()) {
        if host.bytes().all(is_token) {
            out.extend([";host=", host]);
        } else {
            out.extend([";host=\"", &host.replace(['"', '\\'], ""), "\""]);
        }
    }
}

/// Appends `ip` as text. An IPv4 address by hand: `Display` goes through
/// the formatting machinery four times, which was 2% of a proxied
/// request.
fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// An RFC 9110 `tchar`: what a `Forwarded` value may be unquoted.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_goes_with_everything_connection_names() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, host"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("host", "a"),
            ("te", "gzip, trailers"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "te", "x-kept"]);
        assert_eq!(h["te"], "trailers");
        let mut h = map(&[("te", "gzip")]);
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        let host = HeaderValue::from_static("example.com");
        let hop = Hop {
            peer: "2001:db8::1".parse().expect("ip"),
            trusted: false,
            tls: false,
            host: Some(&host),
        };
        add_forwarding(&mut h, hop, Forwarding::ALL);
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::1]\";proto=http;host=example.com"
        );
    }

    #[test]
    fn a_request_without_forwarding_headers_gets_all_four() {
        let mut h = map(&[
            ("accept", "*/*"),
            ("connection", "close, x-gone"),
            ("x-gone", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        let host = HeaderValue::from_static("[::1]:8080");
        let hop = Hop {
            peer: "192.0.2.10".parse().expect("ip"),
            trusted: false,
            tls: true,
            host: Some(&host),
        };
        add_forwarding(&mut h, hop, Forwarding::ALL);
        assert_eq!(h.len(), 5, "{h:?}");
        assert_eq!(h["x-forwarded-for"], "192.0.2.10");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "[::1]:8080");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.10;proto=https;host=\"[::1]:8080\""
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.0.0.2",
            "127.0.0.1",
            "192.168.100.255",
            "255.9.99.100",
            "::1",
            "2001:db8::1",
        ] {
            let mut out = String::new();
            push_ip(&mut out, ip.parse().expect("ip"));
            assert_eq!(out, ip);
        }
    }

    #[test]
    fn a_route_adds_only_the_forwarding_headers_it_names() {
        let forged = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.test"),
            ("forwarded", "for=6.6.6.6"),
            ("accept", "*/*"),
        ];
        let host = HeaderValue::from_static("example.com");
        let hop = |trusted| Hop {
            peer: "10.0.0.2".parse().expect("ip"),
            trusted,
            tls: false,
            host: Some(&host),
        };
        let off = Forwarding {
            x_forwarded: false,
            rfc7239: false,
        };
        let x_only = Forwarding {
            x_forwarded: true,
            rfc7239: false,
        };
        let rfc_only = Forwarding {
            x_forwarded: false,
            rfc7239: true,
        };
        // Off: an untrusted client's are removed, nothing is added.
        let mut h = map(&forged);
        add_forwarding(&mut h, hop(false), off);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
        // Off: a trusted proxy's pass as they came.
        let mut h = map(&forged);
        add_forwarding(&mut h, hop(true), off);
        assert_eq!(h, map(&forged));
        // The X- trio alone; the forged `Forwarded` is gone all the same.
        let mut h = map(&forged);
        add_forwarding(&mut h, hop(false), x_only);
        assert_eq!(h["x-forwarded-for"], "10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert!(!h.contains_key("forwarded"), "{h:?}");
        // `Forwarded` alone, extended from a trusted proxy; its X- pass.
        let mut h = map(&forged);
        add_forwarding(&mut h, hop(true), rfc_only);
        assert_eq!(
            h["forwarded"],
            "for=6.6.6.6, for=10.0.0.2;proto=http;host=example.com"
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.6");
        assert!(!h.contains_key("x-forwarded-proto"), "{h:?}");
        // `Forwarded` alone from an untrusted client: only ours.
        let mut h = map(&forged);
        add_forwarding(&mut h, hop(false), rfc_only);
        assert_eq!(h["forwarded"], "for=10.0.0.2;proto=http;host=example.com");
        assert_eq!(h.len(), 2, "{h:?}");
    }

    #[test]
    fn trusted_forwarding_headers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4;proto=https"),
        ]);
        let hop = Hop {
            peer: "10.0.0.2".parse().expect("ip"),
            trusted: true,
            tls: false,
            host: None,
        };
        add_forwarding(&mut h, hop, Forwarding::ALL);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=1.2.3.4;proto=https, for=10.0.0.2;proto=http"
        );
    }
}
