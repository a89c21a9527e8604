//! Outbound HTTP from components (`wasi:http/outgoing-handler`): refused,
//! except to the hosts a module's `sandbox.allow_hosts` lists.
//!
//! An entry is `host` (ports 80 and 443), `host:port`, `host:*` (any
//! port), or `*.domain` (any subdomain, with the same port forms). Hosts
//! compare without case; IPv6 literals are written in brackets. The
//! check is on the name the component asked for: a name that resolves to
//! an internal address is still that name, so list names you trust.

use std::{sync::Arc, time::Duration};

use http::uri::{Authority, Scheme};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The parsed `sandbox.allow_hosts` of one module.
#[derive(Debug, Default)]
pub struct AllowList(Vec<Pattern>);

#[derive(Debug)]
struct Pattern {
    host: Host,
    port: Port,
}

#[derive(Debug)]
enum Host {
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Subdomain(String),
}

#[derive(Debug)]
enum Port {
    Default,
    Any,
    Is(u16),
}

impl AllowList {
    /// Parses the config's entries; an error names the entry at fault.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| Pattern::parse(e.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether a request to `uri` may go out.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return false;
        };
        let host = authority.host().to_ascii_lowercase();
        let default = if uri.scheme() == Some(&Scheme::HTTP) {
            80
        } else {
            443
        };
        let port = authority.port_u16().unwrap_or(default);
        self.0.iter().any(|p| p.matches(&host, port))
    }
}

impl Pattern {
    fn parse(entry: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{entry}` in `sandbox.allow_hosts` {why}");
        let lower = entry.trim().to_ascii_lowercase();
        let (rest, any_port) = match lower.strip_suffix(":*") {
            Some(rest) => (rest, true),
            None => (lower.as_str(), false),
        };
        let (rest, subdomain) = match rest.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let authority: Authority = rest.parse().map_err(|_| {
            bad("is not a host (expected `host`, `host:port`, `host:*` or `*.domain`)")
        })?;
        if authority.as_str().contains('@') {
            return Err(bad("has user information (expected only a host)"));
        }
        // `http` reads an out-of-range port as no port at all.
        let written_port = authority.as_str()[authority.host().len()..].strip_prefix(':');
        if written_port.is_some() && authority.port_u16().is_none() {
            return Err(bad("has a port that is not a number from 0 to 65535"));
        }
        let port = match (any_port, authority.port_u16()) {
            (true, Some(_)) => return Err(bad("has two ports")),
            (true, None) => Port::Any,
            (false, Some(port)) => Port::Is(port),
            (false, None) => Port::Default,
        };
        let host = authority.host().to_owned();
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let host = if subdomain {
            Host::Subdomain(format!(".{host}"))
        } else {
            Host::Exact(host)
        };
        Ok(Self { host, port })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = match &self.host {
            Host::Exact(h) => h == host,
            Host::Subdomain(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.port {
            Port::Default => port == 80 || port == 443,
            Port::Any => true,
            Port::Is(p) => p == port,
        };
        host_ok && port_ok
    }
}

/// The `WasiHttpHooks` of one request's store: checks the allow list and
/// bounds every wait of an allowed request by the module's time limit.
pub struct Egress {
    module: Arc<str>,
    allow: Arc<AllowList>,
    limit: Duration,
}

impl Egress {
    /// Egress for one request of `module`.
    pub fn new(module: Arc<str>, allow: Arc<AllowList>, limit: Duration) -> Self {
        Self {
            module,
            allow,
            limit,
        }
    }
}

/// What `send_request` returns (wasmtime-wasi-http's signature).
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        if !self.allow.allows(request.uri()) {
            tracing::warn!(module = %self.module, uri = %request.uri(), "outbound request refused: not in sandbox.allow_hosts");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let limit = self.limit;
        let cap = |asked: Option<Duration>| Some(asked.map_or(limit, |d| d.min(limit)));
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(options.connect_timeout),
            first_byte_timeout: cap(options.first_byte_timeout),
            between_bytes_timeout: cap(options.between_bytes_timeout),
        };
        Box::new(async move {
            let (resp, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                resp.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(list: &[&str], uri: &str) -> bool {
        AllowList::parse(list)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn host_alone_means_the_default_ports() {
        assert!(allows(&["api.example.com"], "https://API.example.com/x"));
        assert!(allows(&["api.example.com"], "http://api.example.com/x"));
        assert!(!allows(
            &["api.example.com"],
            "http://api.example.com:8080/x"
        ));
        assert!(!allows(&["api.example.com"], "https://example.com/x"));
    }

    #[test]
    fn ports_and_subdomains() {
        assert!(allows(&["127.0.0.1:8080"], "http://127.0.0.1:8080/"));
        assert!(!allows(&["127.0.0.1:8080"], "http://127.0.0.1:8081/"));
        assert!(allows(&["localhost:*"], "http://localhost:1234/"));
        assert!(allows(&["*.example.com"], "https://a.b.example.com/"));
        assert!(!allows(&["*.example.com"], "https://example.com/"));
        assert!(!allows(&["*.example.com"], "https://badexample.com/"));
        assert!(allows(&["[::1]:9000"], "http://[::1]:9000/"));
        assert!(!allows(&[], "http://127.0.0.1/"));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["", "a b", "host:1:*", "user@host", "host:99999"] {
            let err = AllowList::parse(&[bad]).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
