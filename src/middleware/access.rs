//! `Access`: nginx's `allow` / `deny` by client address.
//!
//! The rules are tried in order and the first whose block holds the
//! client decides; a client no rule names is let in, as in nginx (end the
//! list with `Deny("all")` for an allow-list). The client is the one
//! [`ClientAddr`] finds: the peer, or behind `trusted_proxies` the
//! address they forwarded for, so a client cannot name itself.

use std::{net::IpAddr, sync::Arc};

use http::StatusCode;
use ipnet::IpNet;

use crate::{
    client::ClientAddr,
    error::error_page,
    handler::{HandlerFuture, Middleware, Next},
    pipeline::request::Request,
};

/// One rule: a block (`None`: every address) and whether it lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The block; `None` for `all`.
    pub net: Option<IpNet>,
    /// Allow (true) or deny.
    pub allow: bool,
}

impl Rule {
    /// Parses `"10.0.0.0/8"`, `"2001:db8::/32"`, one address or `"all"`;
    /// the error says what was expected.
    pub fn parse(allow: bool, text: &str) -> Result<Self, String> {
        let t = text.trim();
        let net = if t == "all" {
            None
        } else if let Ok(net) = t.parse::<IpNet>() {
            // nginx takes `10.1.2.3/8` as `10.0.0.0/8` too.
            Some(net.trunc())
        } else if let Ok(ip) = t.parse::<IpAddr>() {
            Some(IpNet::from(ip))
        } else {
            return Err(format!(
                "invalid address or CIDR block `{text}` (expected e.g. \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\" or \"all\")"
            ));
        };
        Ok(Self { net, allow })
    }

    fn holds(&self, ip: IpAddr) -> bool {
        self.net.is_none_or(|net| net.contains(&ip))
    }
}

/// The rules of a server or a route, with the way to find its client.
#[derive(Debug)]
pub struct Access {
    rules: Box<[Rule]>,
    client: Arc<ClientAddr>,
}

impl Access {
    /// Rules tried in order for the client `client` finds.
    pub fn new(rules: Vec<Rule>, client: Arc<ClientAddr>) -> Self {
        Self {
            rules: rules.into(),
            client,
        }
    }

    /// Whether `ip` is let in: the first rule that holds it decides.
    pub fn allows(&self, ip: IpAddr) -> bool {
        // A listener on `[::]` sees IPv4 clients as `::ffff:a.b.c.d`.
        let ip = ip.to_canonical();
        self.rules
            .iter()
            .find(|r| r.holds(ip))
            .is_none_or(|r| r.allow)
    }
}

impl Middleware for Access {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let client = self.client.of(req.peer().ip(), req.headers());
        if self.allows(client) {
            next.run(req)
        } else {
            tracing::debug!(%client, path = req.path(), "access denied by rule");
            HandlerFuture::ready(Ok(error_page(StatusCode::FORBIDDEN)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(rules: &[(bool, &str)]) -> Access {
        Access::new(
            rules
                .iter()
                .map(|&(allow, t)| Rule::parse(allow, t).expect("rule"))
                .collect(),
            Arc::default(),
        )
    }

    #[test]
    fn the_first_rule_that_holds_decides() {
        let a = access(&[
            (false, "10.0.0.7"),
            (true, "10.0.0.0/8"),
            (true, "2001:db8::/32"),
            (false, "all"),
        ]);
        let ok = |s: &str| a.allows(s.parse().expect("ip"));
        assert!(!ok("10.0.0.7"));
        assert!(ok("10.0.0.8"));
        assert!(ok("::ffff:10.1.1.1"));
        assert!(ok("2001:db8:1::5"));
        assert!(!ok("2001:db9::1"));
        assert!(!ok("192.0.2.1"));
        // No rule names it: let in, as nginx does.
        assert!(access(&[(false, "10.0.0.0/8")]).allows("192.0.2.1".parse().expect("ip")));
        // Host bits are dropped, as nginx does.
        assert!(
            access(&[(false, "10.1.2.3/8")]).rules[0]
                == Rule::parse(false, "10.0.0.0/8").expect("rule")
        );
        for bad in ["10.0.0.0/33", "10.0.0/8", "fe80::/129", "everyone", ""] {
            assert!(Rule::parse(true, bad).is_err(), "{bad}");
        }
    }
}
