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

/// Removes the hop-by-hop headers: every header named in `Connection`,
/// then the fixed list. `TE` survives only as `trailers` (what gRPC and
/// trailer-aware clients send).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            // `Connection: host` would leave the request without one.
            .filter(|n| n != header::HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
    if let Some(te) = headers.get(header::TE) {
        let trailers = te.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
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

/// Adds this hop to the forwarding headers (call after
/// [`strip_hop_by_hop`]).
pub fn add_forwarding(headers: &mut HeaderMap, hop: Hop<'_>) {
    let proto = if hop.tls { "https" } else { "http" };
    if !hop.trusted {
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &header::FORWARDED,
        ] {
            if headers.contains_key(name) {
                headers.remove(name);
            }
        }
    }
    let mut ip = String::with_capacity(48);
    let _ = write!(ip, "{}", hop.peer);
    // X-Forwarded-For: a trusted proxy's list gets the peer appended.
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.is_empty() => format!("{prior}, {ip}"),
        _ => ip.clone(),
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    // -Proto and -Host describe the first hop: a trusted proxy's stay.
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if let Some(host) = hop.host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    // Forwarded (RFC 7239): one element per hop, IPv6 quoted and bracketed.
    let mut element = String::with_capacity(64);
    match hop.peer {
        IpAddr::V4(_) => {
            let _ = write!(element, "for={ip}");
        }
        IpAddr::V6(_) => {
            let _ = write!(element, "for=\"[{ip}]\"");
        }
    }
    let _ = write!(element, ";proto={proto}");
    if let Some(host) = hop.host.and_then(|h| h.to_str().ok()) {
        if host.bytes().all(is_token) {
            let _ = write!(element, ";host={host}");
        } else {
            let _ = write!(element, ";host=\"{}\"", host.replace(['"', '\\'], ""));
        }
    }
    let value = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.is_empty() => format!("{prior}, {element}"),
        _ => element,
    };
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(header::FORWARDED, v);
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
        add_forwarding(&mut h, hop);
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::1]\";proto=http;host=example.com"
        );
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
        add_forwarding(&mut h, hop);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=1.2.3.4;proto=https, for=10.0.0.2;proto=http"
        );
    }
}
