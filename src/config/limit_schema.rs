//! The rate-limit part of the schema: `rate_zones` (nginx
//! `limit_req_zone`) and the `rate_limits` of a server or a route (nginx
//! `limit_req`). Compiled by `limits.rs` into `crate::limit`.

use serde::{Deserialize, Serialize};

/// A zone: a rate per key.
///
/// ```ron
/// rate_zones: {
///     "per_client": (rate: "10r/s"),
///     "per_key": (rate: "100r/m", key: Header("x-api-key"), max_keys: 10000),
///     "per_tenant": (rate: "50r/s", key: Module),
/// },
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateZoneSpec {
    /// Requests per second or per minute for one key: `"10r/s"`,
    /// `"30r/m"`.
    pub rate: String,
    /// What requests are keyed by. Default `Client`.
    #[serde(default)]
    pub key: RateKeySpec,
    /// Bits of an IPv6 client address that name one client (a `Client`
    /// key). Default 64: one subnet, since a host often has a whole /64.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Keys kept at most; new keys past it share one bucket until idle
    /// keys are forgotten (every 5 s). About 100 bytes each. Default
    /// 100,000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_ipv6_prefix() -> u8 {
    64
}
fn default_max_keys() -> usize {
    100_000
}

/// What a zone keys requests by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum RateKeySpec {
    /// The client's address: the peer, or behind `trusted_proxies` the
    /// address they forwarded for (see `client_ip_header`).
    #[default]
    Client,
    /// The route: all its clients together.
    Route,
    /// The server: all its clients together.
    Server,
    /// A request header's value (a request without it is not limited by
    /// the zone).
    Header(String),
    /// The key a module's request filter chose (`set_rate_key`; the last
    /// filter to choose wins). Checked after the route's middleware ran,
    /// just before its handler, so after the body is read; a request no
    /// filter keyed is not limited by the zone.
    Module,
}

/// A zone applied to a server's or a route's requests.
///
/// ```ron
/// rate_limits: [(zone: "per_client", burst: 20, nodelay: true)],
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// The zone, by its name in `rate_zones`.
    pub zone: String,
    /// Requests a key may be ahead of the rate before it is refused.
    /// Default 0.
    #[serde(default)]
    pub burst: u32,
    /// Serve every request within the burst at once. Default false: each
    /// waits for its turn at the zone's rate.
    #[serde(default)]
    pub nodelay: bool,
    /// Serve this many requests of the burst at once, and delay the rest
    /// (nginx `delay=`). Default 0.
    #[serde(default)]
    pub delay: u32,
    /// Count and log what would be refused, but refuse and delay nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The status of a refusal (nginx answers 503). Default 429.
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_status() -> u16 {
    429
}
