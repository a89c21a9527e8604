//! The config schema: exactly what `config.ron` may say, and nothing more.
//!
//! Every struct denies unknown fields, so a typo is an error with a line and
//! column rather than a silently ignored key. Defaults follow nginx where
//! nginx has one. The shipped `config.ron` is the commented tour of it.

use std::{
    collections::BTreeMap, fmt, net::SocketAddr, num::NonZeroUsize, path::PathBuf, str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use troupe_actors::ListenAddr;

pub use super::access_schema::{AccessRule, BasicAuthSpec, CorsSpec, ForwardAuthSpec};
pub use super::cache_schema::{CacheZoneSpec, RouteCacheSpec, StaleSpec};
pub use super::compress_schema::{Algorithm, CompressionSpec};
pub use super::limit_schema::{RateKeySpec, RateLimitSpec, RateZoneSpec};
pub use super::proxy_schema::{
    BackendSpec, CheckSpec, ForwardedSpec, HashKeySpec, HealthSpec, HostSpec, PolicySpec, PoolSpec,
    ProbeSpec, ProtocolSpec, ProxySpec, RetrySpec, UpstreamSpec, UpstreamTlsSpec,
};
pub use super::routing_schema::{ErrorPageSpec, ExpiresSpec, RewriteSpec, ServerLogSpec};
pub use super::ws_schema::WebSocketSpec;
pub use crate::client::ClientIpHeader;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Addresses to accept connections on: `"127.0.0.1:8080"` speaks
    /// HTTP/1.x and h2c, `"127.0.0.1:8443 tls"` speaks HTTPS (HTTP/1.1 and
    /// HTTP/2 by ALPN) with the certificates of the servers' `tls` blocks,
    /// and `"unix:/run/troupe.sock mode=660"` is a Unix domain socket
    /// (plain HTTP) for a proxy in front on the same host.
    pub listen: Vec<Listen>,
    /// Runtime worker threads; `None` means one per core.
    #[serde(default)]
    pub workers: Option<NonZeroUsize>,
    /// Connection and request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Error and access logging.
    #[serde(default)]
    pub log: Log,
    /// Where the running server writes its process id, which `troupe -s`
    /// reads (relative paths start at the config file's directory).
    /// Default none.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// The admin API's listener (health, metrics, the supervision tree).
    /// Leave it out for none.
    #[serde(default)]
    pub admin: Option<Admin>,
    /// Modules (C, Rust and other native libraries), each run by its own
    /// plugin-host actor; routes name them with `Module("name")`.
    #[serde(default)]
    pub modules: Vec<ModuleSpec>,
    /// A directory whose `.so`, `.wasm` and `.lua` files are loaded as
    /// modules named after the file (`auth.lua` is `Module("auth")`), with
    /// default settings, at start-up and on every reload; adding, changing
    /// or removing a file there reloads the config. A module of the same
    /// name in `modules` wins. Default none.
    #[serde(default)]
    pub modules_dir: Option<PathBuf>,
    /// Reload the config when this file changes on disk (debounced; also
    /// on SIGHUP and `POST /config/reload`). Default true.
    #[serde(default = "yes")]
    pub watch: bool,
    /// Upstream groups, by name, that `Proxy` routes send requests to
    /// (nginx `upstream NAME {}`). Default none.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// Peers (CIDRs: `"10.0.0.0/8"`, `"::1/128"`, or one address) whose
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and
    /// `Forwarded` headers a `Proxy` route keeps and extends; from anyone
    /// else they are replaced (Caddy's `trusted_proxies`). Default none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy names the client in: `XForwardedFor`
    /// (default) or `Forwarded`. The client is its right-most address that
    /// is not a trusted proxy (nginx `real_ip_header` with
    /// `real_ip_recursive on`); rate limits key by it.
    #[serde(default)]
    pub client_ip_header: ClientIpHeader,
    /// Rate-limit zones, by name, that servers and routes apply in their
    /// `rate_limits` (nginx `limit_req_zone`). Default none.
    #[serde(default)]
    pub rate_zones: BTreeMap<String, RateZoneSpec>,
    /// Response cache zones, by name, that routes keep answers in with
    /// their `cache` (nginx `proxy_cache_path`). Default none.
    #[serde(default)]
    pub cache_zones: BTreeMap<String, CacheZoneSpec>,
    /// Virtual hosts, chosen by the `Host` header.
    pub servers: Vec<Server>,
    /// Files whose servers, upstreams, zones and modules are added to
    /// this file's (nginx `include`): paths or globs (`"conf.d/*.ron"`),
    /// relative to this file's directory, each holding a
    /// `config::include::Fragment`. Default none.
    #[serde(default)]
    pub include: Vec<String>,
}

/// One listen address, written as nginx writes `listen`: the address,
/// then its options (`"0.0.0.0:443 tls"`, like `listen 443 ssl`). One
/// string keeps a plain list of addresses valid, and later options (say,
/// `proxy_protocol`) extend it the way nginx's do.
///
/// `"unix:PATH"` listens on a Unix domain socket (nginx's `listen
/// unix:PATH`; a relative path starts at the config file's directory),
/// with `mode=OCTAL` for its file's permission bits (Caddy's `bind
/// unix/PATH|MODE`; default: as the umask leaves them). Its clients have
/// no network address: they count as `127.0.0.1` (see `conn::UNIX_PEER`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listen {
    /// The socket address or path.
    pub addr: ListenAddr,
    /// Whether connections start with a TLS handshake (TCP only).
    pub tls: bool,
    /// A Unix socket's permission bits, set once it is bound.
    pub mode: Option<u32>,
}

impl Listen {
    /// A plain-HTTP TCP address.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr: ListenAddr::Tcp(addr),
            tls: false,
            mode: None,
        }
    }

    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        self.addr.tcp()
    }

    /// Makes a relative Unix socket path start at `base`.
    pub(crate) fn anchor(&mut self, base: &std::path::Path) {
        if let ListenAddr::Unix(path) = &mut self.addr
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let first = words.next().unwrap_or("");
        let mut listen = match first.strip_prefix("unix:") {
            Some("") => return Err(format!("`{s}` names no socket path (expected e.g. \"unix:/run/troupe.sock\")")),
            Some(path) => Self {
                addr: ListenAddr::Unix(PathBuf::from(path)),
                tls: false,
                mode: None,
            },
            None => Self::plain(first.parse().map_err(|_| {
                format!("invalid socket address `{first}` (expected e.g. \"127.0.0.1:8080\", \"[::]:8443 tls\" for HTTPS, or \"unix:/run/troupe.sock\")")
            })?),
        };
        let unix = matches!(listen.addr, ListenAddr::Unix(_));
        for option in words {
            match option.split_once('=') {
                None if option == "tls" && unix => {
                    return Err(format!(
                        "`{s}`: `tls` is for TCP addresses (a Unix socket serves plain HTTP to a proxy on this host)"
                    ));
                }
                None if option == "tls" && !listen.tls => listen.tls = true,
                None if option == "tls" => return Err(format!("`{s}` says `tls` twice")),
                Some(("mode", _)) if !unix => {
                    return Err(format!(
                        "`{s}`: `mode` is for Unix sockets (`unix:PATH mode=660`)"
                    ));
                }
                Some(("mode", _)) if listen.mode.is_some() => {
                    return Err(format!("`{s}` says `mode` twice"));
                }
                Some(("mode", bits)) => {
                    let mode = u32::from_str_radix(bits, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| format!("invalid mode `{bits}` in `{s}` (expected octal permission bits such as 660)"))?;
                    listen.mode = Some(mode);
                }
                _ => {
                    return Err(format!(
                        "unknown listen option `{option}` in `{s}` (expected `tls`, or `mode=660` on a Unix socket)"
                    ));
                }
            }
        }
        Ok(listen)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if self.tls {
            f.write_str(" tls")?;
        }
        if let Some(mode) = self.mode {
            write!(f, " mode={mode:o}")?;
        }
        Ok(())
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The admin API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Where it listens. Default `127.0.0.1:9901`. An address other than
    /// loopback needs a token.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// A file holding the bearer token every request must present
    /// (`Authorization: Bearer <token>`); relative paths start at the
    /// config file's directory.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the token, instead of a file.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Host names the admin API answers to besides its own address
    /// (`"admin.internal"` for any port, `"admin.internal:8443"` for one),
    /// when it is reached through a tunnel or a proxy. A request naming
    /// another `Host`, or sent from a page of another `Origin`, gets 403:
    /// a web page cannot drive the API, even through DNS rebinding.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

/// One module.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// The name routes use: `handler: Module("hello")`.
    pub name: String,
    /// Where the code is.
    pub source: ModuleSource,
    /// The module's own configuration, handed to its `init`: a string is
    /// passed as is, anything else (a map, a list, a number) as JSON.
    #[serde(default)]
    pub config: Option<ron::Value>,
    /// Where it runs. Default `InProcess`.
    #[serde(default)]
    pub isolation: Isolation,
    /// Longest a request may take in the module, wall-clock; beyond it the
    /// request gets 504. `Process` isolation: the module's process is
    /// replaced. Lua and WebAssembly: counted once a call has outrun its
    /// first slice and moved to the module pool, where its own budget
    /// (`sandbox.instructions`, `sandbox.time`) counts only what it ran.
    /// Native code in the server's process cannot be interrupted. Default 30 s.
    #[serde(default = "default_module_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Run `InProcess` hooks on the blocking pool instead of the connection's
    /// thread: for modules that do slow I/O. Default false.
    #[serde(default)]
    pub blocking: bool,
    /// How often the module may be restarted before it is marked failed.
    #[serde(default)]
    pub restarts: Restarts,
    /// Limits for sandboxed (Lua and WebAssembly) modules.
    #[serde(default)]
    pub sandbox: Sandbox,
    /// The module's share of the key-value store every module shares:
    /// writes past it are refused (the module sees the error), never
    /// made room for by dropping other keys. Any kind of module.
    #[serde(default)]
    pub kv: KvQuota,
    /// Reload the module when its file changes on disk. Default false
    /// (SIGUSR2, `troupe module reload` and the admin API reload it).
    #[serde(default)]
    pub watch: bool,
    /// `Process` isolation only: the child process's spare and limits.
    #[serde(default)]
    pub process: ProcessOptions,
}

impl ModuleSpec {
    /// A module with every setting at its default, as `modules_dir`
    /// declares the files it finds.
    pub fn new(name: String, source: ModuleSource) -> Self {
        Self {
            name,
            source,
            config: None,
            isolation: Isolation::default(),
            timeout: default_module_timeout(),
            blocking: false,
            restarts: Restarts::default(),
            sandbox: Sandbox::default(),
            kv: KvQuota::default(),
            watch: false,
            process: ProcessOptions::default(),
        }
    }
}

/// What a sandboxed module may use.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sandbox {
    /// Bytes of memory one Lua VM or one WebAssembly instance may use; past
    /// it the request gets 500 (and a Lua VM is replaced). Default 16 MiB.
    pub memory: usize,
    /// WebAssembly: CPU time one request's instance may use (checked every
    /// millisecond; time spent waiting, for the CPU or for I/O, does not
    /// count); past it the request gets 504. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub time: Duration,
    /// Lua and WebAssembly: calls of this module in progress at once (each
    /// holds a VM or an instance); a request beyond it gets 503 at once.
    /// Default 64.
    pub instances: u32,
    /// Lua VM instructions one request may run; past it the request gets
    /// 504 and the VM is replaced. Default 10 000 000.
    pub instructions: u64,
    /// Lua libraries to open beyond `string`, `table`, `math`, `utf8` and
    /// `coroutine`: any of `"os"`, `"io"`, `"load"` (`load`, `loadfile`,
    /// `dofile`, `require`). Default none.
    pub grant: Vec<String>,
    /// WebAssembly: hosts a component may send HTTP requests to: `host`
    /// (ports 80 and 443), `host:port`, `host:*` or `*.domain`. Default
    /// none: every outbound request is refused. Each wait of an allowed
    /// request (connect, first byte, between bytes) is capped at `time`.
    pub allow_hosts: Vec<String>,
    /// WebAssembly: requests one instance serves before it is replaced.
    /// Default 1, a fresh instance per request (wasi:http's semantics).
    /// More is faster, but then a request can see what earlier ones left
    /// in the instance's memory; only for components written for it. An
    /// instance that trapped or ran out of time is never reused.
    pub requests_per_instance: u32,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            memory: 16 * 1024 * 1024,
            time: Duration::from_secs(1),
            instances: 64,
            instructions: 10_000_000,
            grant: Vec::new(),
            allow_hosts: Vec::new(),
            requests_per_instance: 1,
        }
    }
}

/// How much of the shared key-value store one module may hold. Each key
/// is charged to the module that wrote it last: its key and value bytes
/// plus a fixed [`KV_ENTRY_OVERHEAD`] for the map's own bookkeeping.
/// Both 0 is a module that may read the store but never write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvQuota {
    /// Keys the module may hold. Default 10 000.
    pub keys: u64,
    /// Bytes the module may hold (keys, values and the per-key overhead).
    /// Default 16 MiB.
    pub bytes: u64,
}

/// Bytes charged per key beyond its key and value: what the server keeps
/// for an entry (the key's and the value's handles, the owner, the map's
/// slot), so a module storing empty values under many keys is charged too.
pub const KV_ENTRY_OVERHEAD: u64 = 64;

impl Default for KvQuota {
    fn default() -> Self {
        Self {
            keys: 10_000,
            bytes: 16 * 1024 * 1024,
        }
    }
}

impl KvQuota {
    /// Why the quota makes no sense, if it does not: one limit 0 and the
    /// other not (no write could ever fit, so it is surely a mistake), or
    /// fewer bytes than one key costs.
    pub fn check(&self) -> Result<(), String> {
        match (self.keys, self.bytes) {
            (0, 0) => Ok(()),
            (0, _) | (_, 0) => Err(format!(
                "`kv` allows {} keys and {} bytes: no write could fit (expected both above 0, or both 0 for a module that may not write the store)",
                self.keys, self.bytes
            )),
            (_, bytes) if bytes <= KV_ENTRY_OVERHEAD => Err(format!(
                "`kv.bytes` is {bytes}, which no key fits in (expected more than {KV_ENTRY_OVERHEAD}, what each key costs beyond its key and value, or 0 with `keys: 0`)"
            )),
            _ => Ok(()),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_module_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Where a module's code comes from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum ModuleSource {
    /// A shared library exporting the C ABI of `plugins/include/troupe_module.h`
    /// (C, or Rust built with the `troupe-module` SDK). Relative paths start
    /// at the config file's directory.
    Native(PathBuf),
    /// A Lua 5.4 script defining `handle(req)`, and/or `access(req)`,
    /// `header_filter(resp)` and `log(entry)`; run sandboxed in process.
    Lua(PathBuf),
    /// A WebAssembly component of the `wasi:http/proxy` world (as made for
    /// `wasmtime serve` or Spin), which may import `troupe:host/api`; run
    /// sandboxed in process, a fresh instance per request.
    Wasm(PathBuf),
}

/// Where a module runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Isolation {
    /// In the server's process: fastest; a panic is caught, a segfault is not.
    #[default]
    InProcess,
    /// In a child process of its own, over a unix socket: a crash, even a
    /// segfault, fails only that module's requests.
    Process,
}

/// A module's restart budget: more than `max` restarts within `within`
/// marks it failed (503) until the window has passed or it is reloaded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Restarts {
    /// Restarts allowed inside the window. Default 5.
    pub max: u32,
    /// The window. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub within: Duration,
}

impl Default for Restarts {
    fn default() -> Self {
        Self {
            max: 5,
            within: Duration::from_secs(30),
        }
    }
}

/// How a `Process` module's children run (`process: (..)` in its entry).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessOptions {
    /// Keep a second child started and initialised, idle, so that after a
    /// crash the next request is served by it at once instead of waiting
    /// for a new child. Costs one idle process per module (and runs the
    /// module's `init` and `shutdown` once more). Default true.
    pub spare: bool,
    /// Bytes of data memory (heap and other private writable mappings:
    /// `RLIMIT_DATA`) each child may use; past it an allocation fails and
    /// the child dies like a crashed one, and is replaced. 0: no limit.
    /// Default 1 GiB.
    pub memory: u64,
    /// The children's CPU priority as a nice value, 0 (the server's) to
    /// 19 (the lowest): a child that spins until its `timeout` then yields
    /// the CPU to the server's own threads (a spinning child at 0 cost
    /// other routes a quarter to a third of their throughput on two
    /// cores; at 10, nothing measurable). Priority only matters when the
    /// CPU is contended. Default 10.
    pub nice: i32,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            spare: true,
            memory: 1 << 30,
            nice: 10,
        }
    }
}

/// Limits and timeouts; each default is stated next to it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Time allowed to receive a whole request header (nginx `client_header_timeout`). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time allowed to receive a whole request body (nginx `client_body_timeout`). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this (nginx `keepalive_timeout`). Default 75 s.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed (nginx `keepalive_requests`). Default 1000.
    pub keepalive_requests: u64,
    /// Largest request header block in bytes; larger gets 431. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more gets 431. Default 100.
    pub max_headers: usize,
    /// Largest request body in bytes; larger gets 413 (nginx `client_max_body_size`). Default 1 MiB.
    pub max_body_bytes: u64,
    /// Concurrent HTTP/2 streams per connection. Default 256.
    pub h2_max_streams: u32,
    /// How long a graceful shutdown waits for in-flight requests. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Time a client has to finish the TLS handshake on a `tls` address,
    /// from the moment it connects; then the connection is closed (a
    /// client that connects and stalls must not hold a slot). Default 10 s.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Open connections, all listeners together (nginx
    /// `worker_connections`). Default 16384.
    pub max_connections: usize,
    /// Open connections per client address, IPv6 counted by /64 (nginx
    /// `limit_conn`); more are closed at once. Default: no cap.
    pub max_connections_per_ip: Option<u32>,
    /// What the listeners do at `max_connections`. Default `Pause`.
    pub at_connection_cap: AtConnectionCap,
}

/// What the listeners do when `max_connections` are open. Connections
/// already open are served either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum AtConnectionCap {
    /// Stop accepting until one closes: new clients wait in the kernel's
    /// backlog (nginx's way).
    #[default]
    Pause,
    /// Accept and close at once: new clients learn it without waiting.
    Close,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            h2_max_streams: 256,
            drain_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 16384,
            max_connections_per_ip: None,
            at_connection_cap: AtConnectionCap::Pause,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// Error-log filter (`tracing` syntax, e.g. `"info,troupe=debug"`); `RUST_LOG` wins. Default `"info"`.
    pub level: String,
    /// Where access-log lines go. Default stdout.
    pub access: AccessTarget,
    /// The access-log line format. Default nginx `combined`.
    pub format: AccessFormat,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
            access: AccessTarget::Stdout,
            format: AccessFormat::Combined,
        }
    }
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum AccessTarget {
    /// No access log.
    Off,
    /// Standard output.
    Stdout,
    /// Appended to a file (relative paths are relative to the config file).
    File(PathBuf),
}

/// The access-log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum AccessFormat {
    /// nginx's `combined` format.
    Combined,
    /// One JSON object per line.
    Json,
}

/// A virtual host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Host names: exact (`example.com`) or leading wildcard (`*.example.com`).
    #[serde(default)]
    pub names: Vec<String>,
    /// Serves requests whose Host matches no server. At most one; if none is
    /// marked, the first server is the default, as in nginx.
    #[serde(default)]
    pub default: bool,
    /// Routes, see [`Route`] for precedence.
    pub routes: Vec<Route>,
    /// Modules whose log hook sees every request of this server (after
    /// the response), e.g. a custom request logger.
    #[serde(default)]
    pub loggers: Vec<String>,
    /// HTTPS for this server on the `tls` listen addresses: its
    /// certificate, optional client certificates, and how plain HTTP is
    /// sent over. Leave it out for a plain-HTTP-only server.
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// Rate limits on every route of this server, before the route's own
    /// (nginx `limit_req` in a `server`; unlike nginx, a route that has
    /// its own keeps these too).
    #[serde(default)]
    pub rate_limits: Vec<RateLimitSpec>,
    /// Compression on the fly for every route of this server that does
    /// not set its own. Default none.
    #[serde(default)]
    pub compression: Option<CompressionSpec>,
    /// Allow and deny rules by client address for every route without
    /// its own (nginx `allow` / `deny`). Default none.
    #[serde(default)]
    pub access: Option<Vec<AccessRule>>,
    /// CORS for every route without its own. Default none.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// Basic authentication for every route without its own. Default none.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSpec>,
    /// Forward authentication for every route without its own. Default none.
    #[serde(default)]
    pub forward_auth: Option<ForwardAuthSpec>,
    /// Rewrites before routing (nginx `rewrite … last` in a `server`),
    /// first match wins. Default none.
    #[serde(default)]
    pub rewrites: Vec<RewriteSpec>,
    /// Error pages for every route without its own, and for what no
    /// route answers (nginx `error_page` in a `server`). Default none.
    #[serde(default)]
    pub error_pages: Vec<ErrorPageSpec>,
    /// `Expires` and `Cache-Control` for every route without its own
    /// (nginx `expires` in a `server`). Default none.
    #[serde(default)]
    pub expires: Option<ExpiresSpec>,
    /// Its own access-log format and the requests it leaves out (nginx
    /// `log_format` + `access_log … if=`). Default: the global format,
    /// every request.
    #[serde(default)]
    pub access_log: Option<ServerLogSpec>,
}

/// A server's HTTPS (nginx `ssl_certificate`, `ssl_certificate_key`,
/// `ssl_client_certificate` + `ssl_verify_client on`).
///
/// The certificate comes from files (`cert` and `key`) or from an ACME
/// CA (`acme`), never both. It is picked by the name the client asks for
/// (SNI): an exact server name, then a `*.example.com` one, then the
/// default server's certificate (also for clients that send no name).
/// Relative paths start at the config file's directory.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The certificate chain, PEM, the server's certificate first.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Get the certificate for the server's `names` from an ACME CA
    /// (Let's Encrypt and the like) instead of files, and renew it.
    #[serde(default)]
    pub acme: Option<Acme>,
    /// Require a client certificate signed by one of these CAs (PEM);
    /// a client without one fails the handshake. Default none.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Answer plain-HTTP requests for this server with a 308 redirect to
    /// the same URL on HTTPS (the first `tls` listen address's port).
    /// Default false.
    #[serde(default)]
    pub redirect_http: bool,
    /// Send `Strict-Transport-Security` on this server's HTTPS answers
    /// (not on error pages, like nginx's `add_header`). Default none.
    #[serde(default)]
    pub hsts: Option<Hsts>,
}

/// A certificate ordered from an ACME CA (RFC 8555) for the server's
/// `names`, as Caddy does: until it arrives a self-signed stand-in is
/// served, so the listener works from the first second; it is kept in
/// `state_dir` (with the account key) and used again after a restart;
/// it is renewed when the CA says (ARI, RFC 9773), else at two thirds of
/// its lifetime. The account is registered on first use, which agrees
/// to the CA's terms of service (as certbot's `--agree-tos` and Caddy do).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// The CA's directory URL, e.g.
    /// `"https://acme-v02.api.letsencrypt.org/directory"`.
    pub directory: String,
    /// A contact address for the account (expiry notices). Default none.
    #[serde(default)]
    pub email: Option<String>,
    /// Trust this CA certificate (PEM) for the directory's HTTPS instead
    /// of the system's roots: a private or test CA. Default none.
    #[serde(default)]
    pub ca_root: Option<PathBuf>,
    /// How the CA checks that the server holds its names. Default
    /// `Http01`.
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// Where the account key and the certificates are kept (created,
    /// mode 0700; the private files 0600). Default `acme/` beside the
    /// config file.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Renew this long before the certificate expires, instead of when
    /// the CA suggests or at two thirds of its lifetime. Default none.
    #[serde(default, with = "humantime_serde")]
    pub renew_before: Option<Duration>,
}

/// The ACME challenge Troupe answers itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum AcmeChallenge {
    /// The CA fetches `http://<name>/.well-known/acme-challenge/<token>`
    /// from a plain-HTTP listen address (port 80 for a real CA).
    #[default]
    Http01,
    /// The CA connects to a `tls` listen address (port 443 for a real
    /// CA) with ALPN `acme-tls/1` and checks the certificate it gets.
    TlsAlpn01,
}

/// `Strict-Transport-Security` (RFC 6797): browsers then use HTTPS only,
/// for `max_age`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hsts {
    /// How long browsers remember it. Default 365 days.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Also for every subdomain (`includeSubDomains`). Default false.
    pub include_subdomains: bool,
    /// Ask to be on browsers' preload lists (`preload`). Default false.
    pub preload: bool,
}

impl Default for Hsts {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(365 * 24 * 60 * 60),
            include_subdomains: false,
            preload: false,
        }
    }
}

impl Hsts {
    /// The header value.
    pub fn header(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// One route: a path pattern or a regex, a handler, and its middleware.
///
/// Precedence inside a server: an exact path, then a `{param}` path, then a
/// `{*rest}` catch-all (all three by matchit), then regex routes in file order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A matchit pattern: `/exact`, `/users/{id}`, `/static/{*path}`.
    #[serde(default)]
    pub path: Option<String>,
    /// A regex on the decoded path, tried after every path route; captures
    /// are `$1`…`$9` in a redirect target.
    #[serde(default)]
    pub regex: Option<String>,
    /// Methods this route answers; other methods get 405. Default: the
    /// handler's own (GET and HEAD for `Static`, any for the others).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// What answers the request.
    pub handler: HandlerSpec,
    /// Middleware, outermost first: the first one sees the request first.
    #[serde(default)]
    pub middleware: Vec<MiddlewareSpec>,
    /// Rate limits on this route, after its server's (nginx `limit_req`
    /// in a `location`). They run before the body is read.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitSpec>,
    /// Keep this route's GET and HEAD answers in a cache zone (nginx
    /// `proxy_cache`). Default none.
    #[serde(default)]
    pub cache: Option<RouteCacheSpec>,
    /// Compression on the fly, replacing its server's (`enabled: false`
    /// turns it off here). Default: its server's.
    #[serde(default)]
    pub compression: Option<CompressionSpec>,
    /// Allow and deny rules, replacing its server's (`[]`: none here).
    /// Default: its server's.
    #[serde(default)]
    pub access: Option<Vec<AccessRule>>,
    /// CORS, replacing its server's. Default: its server's.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// Basic authentication, replacing its server's. Default: its server's.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSpec>,
    /// Forward authentication, replacing its server's. Default: its server's.
    #[serde(default)]
    pub forward_auth: Option<ForwardAuthSpec>,
    /// Error pages, replacing its server's (nginx `error_page` in a
    /// `location`). Default: its server's.
    #[serde(default)]
    pub error_pages: Vec<ErrorPageSpec>,
    /// `Expires` and `Cache-Control` on its answers, by type or for all
    /// (nginx `expires`), replacing its server's. Default: its server's.
    #[serde(default)]
    pub expires: Option<ExpiresSpec>,
}

/// The handlers a route can name.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum HandlerSpec {
    /// Files under a root directory.
    Static(StaticSpec),
    /// A fixed response, like nginx `return 200 "…"`.
    Return(ReturnSpec),
    /// A redirect, like nginx `return 301 URL`.
    Redirect(RedirectSpec),
    /// A module, by its name in `modules`.
    Module(String),
    /// A reverse proxy to an upstream group (nginx `proxy_pass`).
    Proxy(ProxySpec),
    /// WebSockets handled by a module (its `ws_` hooks).
    WebSocket(WebSocketSpec),
    /// Routes the request again with another URI (nginx `rewrite … last`
    /// in a `location`): `$1`…`$9` are a regex route's captures.
    Rewrite(String),
}

/// A static file tree.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    /// The directory served (relative paths are relative to the config file).
    pub root: PathBuf,
    /// Files tried, in order, for a directory. Default `["index.html"]`.
    #[serde(default = "default_index")]
    pub index: Vec<String>,
    /// Serve symlinks whose target is outside `root`. Default false.
    #[serde(default)]
    pub follow_symlinks_outside_root: bool,
    /// Files up to this size are kept in memory. Default 256 KiB. Larger
    /// ones are sent from disk (with `sendfile` on plain HTTP/1.1).
    #[serde(default = "default_cache_max_file")]
    pub cache_max_file_bytes: u64,
    /// Bound on the file cache: bodies kept plus about 512 bytes per file
    /// known. Past it the coldest entries are evicted. Default 64 MiB.
    #[serde(default = "default_cache_total")]
    pub cache_total_bytes: u64,
    /// Serve `file.zst`, `file.br` or `file.gz` beside a file, in this
    /// order of preference, to a client that accepts that coding, when
    /// the sibling is not older than the file (Caddy's `precompressed`,
    /// nginx `gzip_static`); `troupe precompress DIR` writes them.
    /// Default none.
    #[serde(default)]
    pub precompressed: Vec<Algorithm>,
    /// Paths tried in order under `root`, then a fallback (nginx
    /// `try_files`): `["$uri", "$uri/", "/index.html"]` serves a file or a
    /// directory's index, else routes `/index.html` again; a last entry
    /// `"=404"` answers with that status instead. Default none: the path
    /// itself.
    #[serde(default)]
    pub try_files: Vec<String>,
}

fn default_index() -> Vec<String> {
    vec!["index.html".into()]
}
fn default_cache_max_file() -> u64 {
    256 * 1024
}
fn default_cache_total() -> u64 {
    64 * 1024 * 1024
}

/// A fixed response.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnSpec {
    /// Status code. Default 200.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body.
    #[serde(default)]
    pub body: String,
}

fn default_status() -> u16 {
    200
}

/// A redirect.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSpec {
    /// Target URL. `$request_uri` is the original path and query, `$uri` the
    /// decoded path, and `$1`…`$9` the captures of a regex route.
    pub to: String,
    /// 301, 302, 303, 307 or 308. Default 302.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// The middleware a route can list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum MiddlewareSpec {
    /// Sets response headers (replacing any the handler set).
    SetHeaders(BTreeMap<String, String>),
    /// Adds response headers (nginx `add_header`): to successes and
    /// redirects only, unless `always` (then to errors too).
    AddHeaders {
        /// The headers.
        headers: BTreeMap<String, String>,
        /// Errors get them too (nginx's `always`). Default false.
        #[serde(default)]
        always: bool,
    },
    /// Answers with `status` unless the request carries `header`, optionally
    /// with exactly `value` (a minimal API-key gate).
    RequireHeader {
        /// Header that must be present.
        header: String,
        /// Value it must have; any value when absent.
        #[serde(default)]
        value: Option<String>,
        /// Status otherwise. Default 401.
        #[serde(default = "default_require_status")]
        status: u16,
    },
    /// A module's request and response filters, by its name in `modules`.
    Module(String),
}

fn default_require_status() -> u16 {
    401
}

#[cfg(test)]
mod tests {
    use super::Listen;

    #[test]
    fn a_listen_address_reads_and_writes_like_nginx_listen() {
        let plain: Listen = "127.0.0.1:8080".parse().expect("plain");
        assert!(!plain.tls);
        let tls: Listen = "[::]:443  tls".parse().expect("tls");
        assert!(tls.tls);
        assert_eq!(tls.to_string(), "[::]:443 tls");
        assert_eq!(tls.to_string().parse::<Listen>(), Ok(tls));
        for bad in [
            "",
            "localhost:80",
            "127.0.0.1:443 ssl",
            "127.0.0.1:443 tls tls",
        ] {
            assert!(bad.parse::<Listen>().is_err(), "{bad}");
        }
    }
}
