//! The schema of a server's and a route's routing extras: error pages
//! (nginx `error_page`) and rewrites (nginx `rewrite … last`).

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

/// One error page (nginx `error_page 502 503 504 /50x.html`): the
/// statuses it stands for, and a URI routed again in the server or a
/// file; exactly one of `uri` and `file`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorPageSpec {
    /// The statuses: codes and ranges, `"404"`, `"502 503 504"`,
    /// `"500-599"`.
    pub on: String,
    /// A path routed again inside the server, as `GET` (nginx's URI).
    #[serde(default)]
    pub uri: Option<String>,
    /// A file sent as the page, read when the config is loaded (relative
    /// paths start at the config file's directory); with `watch`, an
    /// edit to it reloads the config.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Answer with this status instead of the original (nginx's
    /// `error_page 404 =200 /empty`). Default: the original.
    #[serde(default)]
    pub status: Option<u16>,
}

/// One rewrite of a server (nginx `rewrite ^/old/(.*)$ /new/$1 last;`):
/// before routing, the first rule whose `regex` matches the decoded path
/// replaces the URI with `to` (`$1`, `${1}` or `${name}` for captures).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteSpec {
    /// The regex (the regex crate's syntax) on the decoded path.
    pub regex: String,
    /// The new URI: a path, with `?query` to replace the query, or
    /// ending in `?` to drop it (else the request's query is kept).
    pub to: String,
}

/// `Expires` and `Cache-Control: max-age` (nginx `expires`): each value
/// is `"off"`, `"epoch"`, `"max"` or a duration (`"30d"`, `"1h"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiresSpec {
    /// For every answer no `by_type` entry matches. Default none.
    #[serde(default)]
    pub default: Option<String>,
    /// By the answer's type (`"text/html"`, a prefix such as `"image/"`)
    /// or the path's extension (`".css"`); the longest key that matches
    /// wins. Default none.
    #[serde(default)]
    pub by_type: BTreeMap<String, String>,
}

/// A server's access log (nginx `log_format` + `access_log … if=`): its
/// own line format and the requests it leaves out. Lines go where
/// `log.access` says.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerLogSpec {
    /// The line, with `$variables`: the request's (`$uri`, `$host`,
    /// `$http_user_agent`…) and a finished request's (`$remote_addr`,
    /// `$time_local`, `$request`, `$status`, `$body_bytes_sent`,
    /// `$request_time`, `$upstream_addr`, `$upstream_response_time`…).
    /// Default: the global `log.format`.
    #[serde(default)]
    pub format: Option<String>,
    /// Requests whose decoded path matches one of these regexes are not
    /// logged (`"^/health$"`). Default none.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Answers with these statuses are not logged (`"200-399"` logs only
    /// errors). Default none.
    #[serde(default)]
    pub skip_status: Option<String>,
}
