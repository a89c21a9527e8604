//! The reverse proxy's part of the config schema: upstream groups (nginx
//! `upstream {}`) and the `Proxy` handler (nginx `proxy_pass`).
//!
//! Defaults follow nginx where it has one and say why where they differ.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// One upstream group: the backends a `Proxy` route spreads requests over.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// The backends, each an `ip:port` or `host:port` and a weight; at
    /// most 64 once names are resolved.
    pub backends: Vec<BackendSpec>,
    /// How a backend is chosen for a request. Default `RoundRobin`.
    #[serde(default)]
    pub policy: PolicySpec,
    /// Time allowed to open a TCP connection to a backend; past it the
    /// request gets 504 (or tries another backend). Default 5 s (nginx:
    /// 60 s, far longer than a healthy local network ever needs).
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed between two reads from a backend: for the response
    /// head, then between body chunks (nginx `proxy_read_timeout`); past
    /// it the request gets 504. Default 60 s.
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    /// An upgraded connection (a WebSocket) that moves no byte either
    /// way for this long is closed; `read_timeout` does not apply to it
    /// (nginx applies `proxy_read_timeout` to both, and so closes quiet
    /// WebSockets unless raised for the whole location). Default 60 s.
    #[serde(default = "default_tunnel_idle_timeout", with = "humantime_serde")]
    pub tunnel_idle_timeout: Duration,
    /// Each backend's pool of keep-alive connections.
    #[serde(default)]
    pub pool: PoolSpec,
    /// When a failed request is tried again on another backend.
    #[serde(default)]
    pub retry: RetrySpec,
    /// Health: failures that take a backend out for a while (passive),
    /// and checks that probe each backend (active, when `check` is set).
    #[serde(default)]
    pub health: HealthSpec,
    /// TLS to the backends (nginx `proxy_pass https://…`). Default none:
    /// plain TCP.
    #[serde(default)]
    pub tls: Option<UpstreamTlsSpec>,
    /// The HTTP version spoken to the backends. Default `Http1`.
    #[serde(default)]
    pub protocol: ProtocolSpec,
}

/// TLS to a group's backends. The backend's certificate is always
/// verified, against `ca` or the system's roots.
#[derive(Debug, Clone, Default, PartialEq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTlsSpec {
    /// A PEM file of the CA certificates to verify backends with, in
    /// place of the system's roots (nginx `proxy_ssl_trusted_certificate`).
    /// Relative paths start at the config file's directory. Default none:
    /// the system's roots.
    pub ca: Option<PathBuf>,
    /// The name sent as SNI and that the certificate must carry (nginx
    /// `proxy_ssl_name` with `proxy_ssl_server_name on`). Without it, a
    /// backend given as `host:port` is sent its host name, and one given
    /// as `ip:port` no SNI, its certificate then having to carry the IP
    /// address (an IP SAN). Default none.
    pub server_name: Option<String>,
    /// A PEM certificate chain to present to backends that ask for one
    /// (mutual TLS; nginx `proxy_ssl_certificate`). Needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// The HTTP version spoken to a group's backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ProtocolSpec {
    /// HTTP/1.1, a keep-alive connection per request in flight (the default).
    #[default]
    Http1,
    /// HTTP/2: prior knowledge on plain TCP; over TLS, ALPN offers `h2`
    /// only. Requests share a connection up to `pool.max_streams`.
    Http2,
    /// Over TLS only: ALPN offers `h2` and `http/1.1`, and the backend's
    /// choice is spoken.
    Auto,
}

/// One backend of a group.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// Where it is: `ip:port` (`[v6]:port`), or `host:port`, a DNS name
    /// resolved when the config is loaded and at each reload, never in
    /// between (nginx's `server app.internal:8080` without `resolve`).
    /// Each address a name resolves to is a backend of its own with this
    /// weight, as in nginx; a name that does not resolve refuses the
    /// config.
    pub addr: String,
    /// Its share of the requests relative to the others (1 to 1000).
    /// Default 1.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// How a group picks a backend for a request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub enum PolicySpec {
    /// Weighted round-robin, nginx's smooth variant (the default).
    #[default]
    RoundRobin,
    /// The backend with the fewest requests in flight for its weight
    /// (nginx `least_conn`).
    LeastConn,
    /// Consistent hashing on a key (nginx `hash KEY consistent`, the same
    /// ketama ring): a key keeps its backend while the group is unchanged,
    /// and few keys move when a backend comes or goes.
    Hash(HashKeySpec),
    /// Two random backends, the one with the lower cost: peak-EWMA
    /// latency × (requests in flight + 1), as linkerd and Finagle do. A
    /// slow or overloaded backend gets less traffic at once.
    PeakEwma,
}

/// What a `Hash` policy hashes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub enum HashKeySpec {
    /// The client's IP address as text (nginx `$remote_addr`).
    RemoteAddr,
    /// The path and query as received (nginx `$request_uri`).
    Uri,
    /// A request header's value (empty when absent).
    Header(String),
}

/// A backend's connection pool.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSpec {
    /// Idle keep-alive connections kept per backend (nginx `keepalive`).
    /// Default 64.
    pub max_idle: usize,
    /// Connections per backend, busy or idle (nginx `max_conns`); a full
    /// backend is skipped, and when all are full the request gets 503.
    /// Default none (no cap).
    pub max_total: Option<u32>,
    /// An idle connection older than this is closed instead of reused.
    /// Keep it below the backends' own keep-alive timeout, so that we
    /// never reuse a connection the backend is closing: Node, uvicorn and
    /// Apache close after 5 s. Default 4 s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// HTTP/2 only: requests in flight on one connection before another
    /// is opened (1 to 1000). Keep it at or below the backends' own
    /// `max_concurrent_streams`: past that, hyper queues the excess on the
    /// connection instead. Default 100 (the least RFC 9113 recommends
    /// servers allow).
    pub max_streams: u32,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            max_idle: 64,
            max_total: None,
            idle_timeout: Duration::from_secs(4),
            max_streams: 100,
        }
    }
}

/// When a failed request is tried on another backend (nginx
/// `proxy_next_upstream error timeout`). A request is tried again only
/// if nothing of the response has reached the client and it is safe:
/// the connection could not be opened, or the request never left, or
/// its method is idempotent and its body was kept for it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    /// Tries in all, the first included (nginx `proxy_next_upstream_tries`);
    /// 1 turns retries off. Default 3.
    pub tries: u32,
    /// Time from the first try after which no other is started (nginx
    /// `proxy_next_upstream_timeout`). Default 10 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries allowed as a share of the group's requests over the last
    /// 10 s (a retry budget, as Envoy and tower have), so that retries
    /// cannot multiply the load of a failing group. Default 0.2.
    pub budget: f64,
    /// Retries allowed per 10 s whatever the share, for quiet groups.
    /// Default 10.
    pub min_retries: u32,
    /// Request bodies up to this many bytes (by their Content-Length) are
    /// read whole before they are sent, so they can be sent again; larger
    /// ones stream and are never retried once sent. Default 64 KiB.
    pub buffer_bytes: u64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            tries: 3,
            timeout: Duration::from_secs(10),
            budget: 0.2,
            min_retries: 10,
            buffer_bytes: 64 * 1024,
        }
    }
}

/// Passive health (nginx `max_fails`, `fail_timeout`): this many failures
/// in a row (no connection, an error or a timeout) take a backend out for
/// `fail_timeout`; then it gets requests again, and one more failure takes
/// it out again. When every backend of a group is out, they are all tried
/// anyway (Envoy's panic routing), so a group never refuses for that alone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSpec {
    /// Failures in a row that take a backend out; 0 never does. Default 1.
    pub max_fails: u32,
    /// How long it stays out. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub fail_timeout: Duration,
    /// Active checks (nginx-plus `health_check`, Envoy `health_checks`):
    /// each backend is probed every `interval`, off the request path, and
    /// one that fails `fall` probes in a row gets no requests until it
    /// passes `rise` in a row. Default none.
    pub check: Option<CheckSpec>,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            check: None,
        }
    }
}

/// One group's active health check. The counts are HAProxy's defaults
/// (`rise 2`, `fall 3`): one lost probe does not take a backend out, and
/// one lucky probe does not bring a broken one back.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSpec {
    /// What a probe does. Default `Http(path: "/")`.
    pub probe: ProbeSpec,
    /// Time between two probes of a backend (jittered by up to a tenth,
    /// so that groups do not probe in step). Default 5 s (nginx-plus).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time a probe may take, connect included; past it, it failed.
    /// Default 2 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Probes passed in a row that bring a backend that is down back.
    /// Default 2.
    pub rise: u32,
    /// Probes failed in a row that take a backend that is up out.
    /// Default 3.
    pub fall: u32,
}

impl Default for CheckSpec {
    fn default() -> Self {
        Self {
            probe: ProbeSpec::default(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

/// What one probe of a backend does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum ProbeSpec {
    /// `GET path` on a new connection (`Connection: close`); it passes
    /// when the status is within `status`.
    Http {
        /// The path (and query) asked for. Default `/`.
        #[serde(default = "root_path")]
        path: String,
        /// The statuses that pass, first and last included. Default
        /// `(200, 399)`: 2xx and 3xx, as nginx-plus has it.
        #[serde(default = "pass_statuses")]
        status: (u16, u16),
        /// The `Host` sent. Default the backend as configured
        /// (`host:port`, or `ip:port`).
        #[serde(default)]
        host: Option<String>,
    },
    /// A TCP connect that completes in time passes.
    Tcp,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self::Http {
            path: root_path(),
            status: pass_statuses(),
            host: None,
        }
    }
}

fn root_path() -> String {
    "/".to_owned()
}

fn pass_statuses() -> (u16, u16) {
    (200, 399)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_tunnel_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_upgrades() -> Vec<String> {
    vec!["websocket".into()]
}

/// A `Proxy` route: requests go to a backend of `upstream`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// The upstream group, by its name in `upstreams`.
    pub upstream: String,
    /// The `Host` the backend sees. Default `Pass`.
    #[serde(default)]
    pub host: HostSpec,
    /// The protocols a client may upgrade to through this route (the
    /// `Upgrade` header's tokens, matched without case; HTTP/2 clients
    /// ask for `websocket` with an extended CONNECT). A request asking
    /// for another is sent on as a plain request, its `Upgrade` dropped
    /// like any hop-by-hop header, so a client cannot, say, switch a
    /// backend connection to `h2c` behind the proxy's back. `[]` turns
    /// upgrades off. Default `["websocket"]`.
    #[serde(default = "default_upgrades")]
    pub upgrades: Vec<String>,
    /// The forwarding headers this hop adds for the backend. Whatever is
    /// chosen, those a client that is not in `trusted_proxies` sent are
    /// removed first, so a backend never reads a forged address. Default
    /// `All`.
    #[serde(default)]
    pub forwarded: ForwardedSpec,
}

/// Which forwarding headers a `Proxy` route adds (nginx adds none unless
/// told to with `proxy_set_header`; Caddy adds the three `X-Forwarded-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ForwardedSpec {
    /// `X-Forwarded-For`, `-Proto`, `-Host` and RFC 7239 `Forwarded`.
    #[default]
    All,
    /// The three `X-Forwarded-*` (what most apps and frameworks read).
    XForwarded,
    /// RFC 7239 `Forwarded` alone.
    Rfc7239,
    /// None: the backend sees only what a trusted proxy in front sent.
    Off,
}

/// The `Host` header sent to a backend.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub enum HostSpec {
    /// The client's own (Caddy's default; nginx `proxy_set_header Host $host`).
    #[default]
    Pass,
    /// The backend as configured: `host:port` for a name (what nginx
    /// sends for `proxy_pass http://app.internal:8080`), `ip:port` for an
    /// address.
    Backend,
    /// A fixed value.
    Set(String),
}
