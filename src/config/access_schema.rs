//! Access control on a server or a route: `access` (nginx `allow` /
//! `deny`), `cors`, `basic_auth` (nginx `auth_basic`) and `forward_auth`
//! (nginx `auth_request`, Caddy `forward_auth`). A route's own setting
//! replaces its server's whole, as `compression` does.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::proxy_schema::HostSpec;

/// One `access` rule; the first whose block holds the client decides, and
/// a client no rule names is let in (nginx's `allow` / `deny`).
///
/// ```ron
/// access: [Allow("10.0.0.0/8"), Allow("2001:db8::/32"), Deny("all")],
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub enum AccessRule {
    /// Let in a CIDR block (`"10.0.0.0/8"`), one address, or `"all"`.
    Allow(String),
    /// Answer 403 to a CIDR block, one address, or `"all"`.
    Deny(String),
}

/// Cross-origin resource sharing (the Fetch standard's CORS protocol):
/// which other sites' pages may read this route's answers.
///
/// ```ron
/// cors: (origins: ["https://app.example.com", "https://*.example.com"], credentials: true),
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSpec {
    /// `false` turns it off (a route inside a server that has it). Default true.
    pub enabled: bool,
    /// The origins allowed: exact (`"https://app.example.com"`, with its
    /// port if not the scheme's), a wildcard over subdomains
    /// (`"https://*.example.com"`: any depth, not the bare domain), or
    /// `"*"` for any (then answered with `*`; refused with `credentials`).
    pub origins: Vec<String>,
    /// Methods a preflight may ask for; `["*"]` for any. Default GET,
    /// HEAD, POST.
    pub methods: Vec<String>,
    /// Request headers a preflight may ask for (case does not matter);
    /// `["*"]` for any. Default none.
    pub headers: Vec<String>,
    /// Let the page send cookies and `Authorization`
    /// (`Access-Control-Allow-Credentials: true`). Default false.
    pub credentials: bool,
    /// How long a browser may keep a preflight's answer
    /// (`Access-Control-Max-Age`). Default none (the browser's own, 5 s).
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Response headers the page may read beyond the safelisted ones
    /// (`Access-Control-Expose-Headers`). Default none.
    pub expose: Vec<String>,
}

impl Default for CorsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            origins: Vec::new(),
            methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
            headers: Vec::new(),
            credentials: false,
            max_age: None,
            expose: Vec::new(),
        }
    }
}

/// HTTP Basic authentication against an htpasswd file (nginx
/// `auth_basic` + `auth_basic_user_file`).
///
/// ```ron
/// basic_auth: (realm: "Admin area", htpasswd: "admin.htpasswd"),
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    /// `false` turns it off (nginx `auth_basic off`). Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The realm the browser shows. Default `"Restricted"`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// The user file, as `htpasswd` writes it: bcrypt (`-B`), apr1 MD5
    /// (the default) or SHA-1 (`-s`). Relative paths start at the config
    /// file's directory. Read at every config load; with `watch: true`,
    /// a change to it reloads the config.
    #[serde(default)]
    pub htpasswd: PathBuf,
}

/// Ask an auth service whether a request may go on (nginx
/// `auth_request`, Caddy `forward_auth`).
///
/// ```ron
/// forward_auth: (upstream: "auth", uri: "/verify", copy_headers: ["X-User"]),
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthSpec {
    /// `false` turns it off. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The auth service: an upstream group, by its name in `upstreams`
    /// (its timeouts, pool and TLS apply).
    #[serde(default)]
    pub upstream: String,
    /// The path (and query) asked. Default `"/"`.
    #[serde(default = "default_uri")]
    pub uri: String,
    /// The `Host` the auth service sees. Default `Pass`.
    #[serde(default)]
    pub host: HostSpec,
    /// Headers of a 2xx answer put on the request before it goes on
    /// (the client's own of these names are always removed first).
    #[serde(default)]
    pub copy_headers: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_realm() -> String {
    "Restricted".into()
}

fn default_uri() -> String {
    "/".into()
}
