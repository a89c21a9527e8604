//! Server (virtual host) selection by the `Host` header or `:authority`.
//!
//! As in nginx: an exact name first, then the longest matching leading
//! wildcard (`*.example.com` matches any subdomain, not the bare domain),
//! then the default server.

use std::collections::HashMap;

use super::routes::RouteTable;

/// One virtual host.
#[derive(Debug)]
pub struct Server {
    /// Names as configured, for logs.
    pub names: Vec<String>,
    /// Its routes.
    pub routes: RouteTable,
    /// Module log hooks that see each of its requests.
    pub loggers: super::log_hook::LogHooks,
    /// How its plain-HTTP and HTTPS requests differ (`https.rs`).
    pub https: super::https::Https,
    /// Rewrites, error pages, re-routing (`server_routing.rs`).
    pub routing: super::server_routing::ServerRouting,
}

impl Server {
    /// Its `server` label in metrics: the first name, or `_` for a server
    /// without one.
    pub fn label(&self) -> &str {
        self.names.first().map_or("_", String::as_str)
    }
}

/// Every server of a snapshot and how to pick one.
#[derive(Debug)]
pub struct Servers {
    servers: Vec<Server>,
    exact: HashMap<String, usize>,
    /// `(".example.com", index)`, longest suffix first.
    wildcards: Vec<(String, usize)>,
    default: usize,
}

impl Servers {
    /// Every server, in file order, and whether it is the default.
    pub fn iter(&self) -> impl Iterator<Item = (&Server, bool)> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s, i == self.default))
    }

    /// Indexes the servers. Names must already be checked for duplicates;
    /// `default` is the index of the default server.
    pub fn new(servers: Vec<Server>, default: usize) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            for name in &s.names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix('*') {
                    Some(suffix) => wildcards.push((suffix.to_owned(), i)),
                    None => {
                        exact.insert(name, i);
                    }
                }
            }
        }
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Self {
            servers,
            exact,
            wildcards,
            default,
        }
    }

    /// The server at `index` (from [`Servers::index_of`]).
    pub fn get(&self, index: usize) -> &Server {
        &self.servers[index]
    }

    /// Where `server`, one of these, sits.
    pub fn index_of(&self, server: &Server) -> usize {
        self.servers
            .iter()
            .position(|s| std::ptr::eq(s, server))
            .unwrap_or(self.default)
    }

    /// Points every `redirect_http` at `port` (the TLS address's port as
    /// bound, which the config may have left to the system as 0).
    pub fn set_redirect_port(&mut self, port: u16) {
        for s in &mut self.servers {
            if let Some(p) = &mut s.https.redirect {
                *p = port;
            }
        }
    }

    /// The server for a host (port and case ignored). The host is only
    /// looked up when there is more than one server to choose from.
    pub fn select<'h>(&self, host: impl FnOnce() -> Option<&'h str>) -> &Server {
        if self.servers.len() == 1 {
            return &self.servers[0];
        }
        let idx = host()
            .map(strip_port)
            .and_then(|h| {
                if h.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.find(&h.to_ascii_lowercase())
                } else {
                    self.find(h)
                }
            })
            .unwrap_or(self.default);
        &self.servers[idx]
    }

    fn find(&self, host: &str) -> Option<usize> {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.exact.get(host).copied().or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|(_, i)| *i)
        })
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub(super) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Servers {
        let s = |names: &[&str]| Server {
            names: names.iter().map(|n| n.to_string()).collect(),
            routes: RouteTable::default(),
            loggers: Default::default(),
            https: Default::default(),
            routing: Default::default(),
        };
        Servers::new(
            vec![
                s(&["default.test"]),
                s(&["example.com", "www.example.com"]),
                s(&["*.example.com"]),
                s(&["*.api.example.com"]),
            ],
            0,
        )
    }

    fn pick(s: &Servers, host: Option<&str>) -> String {
        s.select(|| host).names[0].clone()
    }

    #[test]
    fn exact_then_longest_wildcard_then_default() {
        let s = servers();
        assert_eq!(pick(&s, Some("example.com")), "example.com");
        assert_eq!(pick(&s, Some("WWW.Example.COM:8080")), "example.com");
        assert_eq!(pick(&s, Some("a.example.com")), "*.example.com");
        assert_eq!(pick(&s, Some("v1.api.example.com")), "*.api.example.com");
        assert_eq!(pick(&s, Some("other.org")), "default.test");
        assert_eq!(pick(&s, None), "default.test");
        assert_eq!(pick(&s, Some("[::1]:80")), "default.test");
    }
}
