//! [`ClientAddr`]: the client's address as a limit or a log should see it.
//!
//! From an untrusted peer, the peer's own address: whatever it writes in
//! its headers is ignored, so it cannot pass for someone else. From a
//! trusted proxy, the configured header is read from the right (the hop
//! nearest to us) leftwards, skipping trusted proxies, and the first
//! address that is not trusted is the client, as nginx does with
//! `real_ip_recursive on`. Addresses to the left of it were written by
//! the client itself and are never believed.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, header};
use serde::{Deserialize, Serialize};

use super::Trusted;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The header trusted proxies name the client in (nginx `real_ip_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:80"`.
    Forwarded,
}

/// How a request's client address is found.
#[derive(Debug, Clone, Default)]
pub struct ClientAddr {
    trusted: Trusted,
    header: ClientIpHeader,
}

impl ClientAddr {
    /// Believes `header` from the peers in `trusted`.
    pub fn new(trusted: Trusted, header: ClientIpHeader) -> Self {
        Self { trusted, header }
    }

    /// The client of a request that came from `peer` with `headers`.
    #[inline]
    pub fn of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted.contains(peer) {
            return peer;
        }
        let name = match self.header {
            ClientIpHeader::XForwardedFor => &X_FORWARDED_FOR,
            ClientIpHeader::Forwarded => &header::FORWARDED,
        };
        // Every line of the header, in order, is one list; read it from
        // its right end.
        let mut client = peer;
        for line in headers.get_all(name).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for element in line.rsplit(',') {
                let hop = match self.header {
                    ClientIpHeader::XForwardedFor => parse_xff(element),
                    ClientIpHeader::Forwarded => parse_forwarded(element),
                };
                // Garbage stops the walk: the nearest hop we could read
                // is the best we know.
                let Some(hop) = hop else {
                    return client;
                };
                client = hop;
                if !self.trusted.contains(hop) {
                    return hop;
                }
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port.
fn parse_xff(entry: &str) -> Option<IpAddr> {
    parse_node(entry.trim())
}

/// The `for=` of one `Forwarded` element.
fn parse_forwarded(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    parse_node(value)
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:80`; an obfuscated or `unknown` node is `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, _port) = rest.split_once(']')?;
        return ip.parse().ok();
    }
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    let (ip, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let c = ClientAddr::new(
            Trusted::parse(&["10.0.0.0/8"]).expect("cidr"),
            ClientIpHeader::XForwardedFor,
        );
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(c.of(ip("203.0.113.9"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let c = ClientAddr::new(
            Trusted::parse(&["10.0.0.0/8"]).expect("cidr"),
            ClientIpHeader::XForwardedFor,
        );
        // The client forged its first entry; the proxies appended theirs.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2:4711"),
        ]);
        assert_eq!(c.of(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        // All trusted: the left-most one.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.2")]);
        assert_eq!(c.of(ip("10.0.0.1"), &h), ip("10.1.1.1"));
        // No header: the peer.
        assert_eq!(c.of(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the nearest hop read.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, nonsense, 10.0.0.9")]);
        assert_eq!(c.of(ip("10.0.0.1"), &h), ip("10.0.0.9"));
    }

    #[test]
    fn forwarded_nodes_in_every_form() {
        let c = ClientAddr::new(
            Trusted::parse(&["127.0.0.1"]).expect("cidr"),
            ClientIpHeader::Forwarded,
        );
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http, For="[2001:db8:cafe::17]:4711""#,
        )]);
        assert_eq!(c.of(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", r#"for="198.51.100.1:80";by=x"#)]);
        assert_eq!(c.of(ip("127.0.0.1"), &h), ip("198.51.100.1"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(c.of(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }
}
