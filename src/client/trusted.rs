//! `trusted_proxies`: the peers whose forwarding headers are believed.

use std::net::IpAddr;

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: u128,
    mask: u128,
    v4: bool,
}

/// The trusted peers (empty: nobody).
#[derive(Debug, Clone, Default)]
pub struct Trusted(Box<[Cidr]>);

impl Trusted {
    /// Parses `"10.0.0.0/8"`, `"::1/128"` or a bare address; the error
    /// names the bad entry.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, String> {
        list.iter()
            .map(|s| parse_one(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Self(v.into()))
    }

    /// Whether `ip` is inside one of the blocks (an IPv4-mapped IPv6
    /// address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let (bits, v4) = bits_of(ip);
        self.0.iter().any(|c| c.v4 == v4 && bits & c.mask == c.net)
    }
}

fn bits_of(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), true),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), true),
            None => (u128::from(v6), false),
        },
    }
}

fn parse_one(s: &str) -> Result<Cidr, String> {
    let bad = || {
        format!(
            "invalid trusted proxy `{s}` (expected an address or a CIDR block such as \"10.0.0.0/8\" or \"fd00::/8\")"
        )
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let (bits, v4) = bits_of(ip);
    let width = if v4 { 32 } else { 128 };
    let len = len.unwrap_or(width);
    if len > width {
        return Err(bad());
    }
    let mask = if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len)) >> (128 - width)
    };
    Ok(Cidr {
        net: bits & mask,
        mask,
        v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses_only() {
        let t = Trusted::parse(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).expect("parse");
        let has = |s: &str| t.contains(s.parse().expect("ip"));
        assert!(has("10.1.2.3"));
        assert!(has("::ffff:10.9.9.9"));
        assert!(!has("11.0.0.1"));
        assert!(has("192.168.1.7"));
        assert!(!has("192.168.1.8"));
        assert!(has("fd12::1"));
        assert!(!has("fe80::1"));
        assert!(
            Trusted::parse(&["0.0.0.0/0"])
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Trusted::parse(&[bad]).is_err(), "{bad}");
        }
        assert!(!Trusted::default().contains("127.0.0.1".parse().expect("ip")));
    }
}
