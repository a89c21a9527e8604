//! What keeps a web page from driving the admin API (P7.1), checked
//! before anything else is read:
//!
//! - **`Host`** must be the listener's own address (for a loopback
//!   listener, also `localhost`), or a name in `allowed_hosts`. A page
//!   that rebinds its own DNS name to 127.0.0.1 still sends its own name,
//!   and gets 403.
//! - **`Origin`**, when a browser sends one, must name an allowed host
//!   the same way: a page elsewhere cannot even read the answers.
//! - **Mutating calls** (POST) need `Content-Type: application/json`:
//!   a cross-site form or a "simple" `fetch` cannot set it, and the
//!   preflight a browser sends first is refused (405).
//! - **Wrong tokens** are counted per client address: after a few, each
//!   further one is answered only after a delay (one guess a second),
//!   and past a queue of five seconds of guesses, 429.
//!
//! Caddy's admin endpoint does the same Host and Origin checks.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use http::{HeaderMap, Version, header, request::Parts, uri::Authority};

use crate::{
    config::AdminSpec,
    limit::{Decision, Gcra},
};

/// Wrong tokens a client may send before it is slowed down.
const FREE_GUESSES: u32 = 5;
/// Then, one guess per this.
const GUESS_PERIOD: Duration = Duration::from_secs(1);
/// A guess that would wait longer is refused (429) rather than queued.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// Addresses remembered before the quiet ones are forgotten.
const MAX_KEYS: usize = 4096;

/// Why a request was refused before its token was even looked at.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2: 400).
    NoHost,
    /// A `Host` that is not ours.
    Host(String),
    /// An `Origin` that is not ours.
    Origin(String),
}

impl Refusal {
    /// The message for the answer's `error`.
    pub(super) fn message(&self) -> String {
        match self {
            Refusal::NoHost => "an HTTP/1.1 request needs a Host header".into(),
            Refusal::Host(h) => format!(
                "the admin API does not answer to Host `{h}` (expected its own address, or a name in `admin.allowed_hosts`)"
            ),
            Refusal::Origin(o) => format!(
                "requests from pages of origin `{o}` are refused (expected the admin API's own address, or a name in `admin.allowed_hosts`)"
            ),
        }
    }
}

/// The admin listener's checks, built from its config.
pub(super) struct Guard {
    /// `allowed_hosts`: a name, and its port if one is given.
    allowed: Vec<(String, Option<u16>)>,
    /// Wrong tokens, by client address.
    guesses: Gcra<IpAddr>,
}

impl Guard {
    pub(super) fn new(spec: &AdminSpec) -> Self {
        // Each was checked to be an authority at config load.
        let allowed = (spec.allowed_hosts.iter())
            .filter_map(|name| name.parse::<Authority>().ok())
            .map(|a| (a.host().to_owned(), a.port_u16()))
            .collect();
        Self {
            allowed,
            guesses: Gcra::new(GUESS_PERIOD),
        }
    }

    /// Checks `Host` and `Origin` of a request that came in on `local`
    /// (the connection's own address: the bound port, and the interface
    /// the client reached).
    pub(super) fn admit(&self, req: &Parts, local: SocketAddr) -> Result<(), Refusal> {
        // The absolute form's authority, else `Host`.
        let named = match (req.uri.authority(), req.headers.get(header::HOST)) {
            (Some(a), _) => Some(Ok(a.clone())),
            (None, Some(v)) => Some(
                Authority::try_from(v.as_bytes())
                    .map_err(|_| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            ),
            (None, None) => None,
        };
        match named {
            Some(Ok(h)) if self.names_us(&h, 80, local) => {}
            Some(Ok(h)) => return Err(Refusal::Host(h.to_string())),
            Some(Err(unparsable)) => return Err(Refusal::Host(unparsable)),
            // HTTP/1.0 may leave it out; a browser never does.
            None if req.version == Version::HTTP_10 => {}
            None => return Err(Refusal::NoHost),
        }
        let Some(origin) = req.headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let text = origin.to_str().unwrap_or_default();
        let refused = || Refusal::Origin(String::from_utf8_lossy(origin.as_bytes()).into_owned());
        // `null` (a sandboxed frame, a file:// page) names no one we know.
        let uri = text.parse::<http::Uri>().map_err(|_| refused())?;
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(refused()),
        };
        match uri.authority() {
            Some(a) if matches!(uri.path(), "" | "/") && self.names_us(a, default_port, local) => {
                Ok(())
            }
            _ => Err(refused()),
        }
    }

    /// Whether `a` (from `Host` or `Origin`; `default_port` when it
    /// names none) is this listener, reached on `local`.
    fn names_us(&self, a: &Authority, default_port: u16, local: SocketAddr) -> bool {
        let port = a.port_u16().unwrap_or(default_port);
        let host = a.host().trim_start_matches('[').trim_end_matches(']');
        let own_port = port == local.port();
        let us = local.ip();
        let ours = match host.parse::<IpAddr>() {
            // An address literal cannot be rebound: the one the client
            // reached, or any loopback one when that is loopback.
            Ok(ip) => ip == us || (us.is_loopback() && ip.is_loopback()),
            Err(_) => host.eq_ignore_ascii_case("localhost") && us.is_loopback(),
        };
        if ours && own_port {
            return true;
        }
        (self.allowed.iter())
            .any(|(name, p)| name.eq_ignore_ascii_case(a.host()) && p.is_none_or(|p| p == port))
    }

    /// A wrong token from `ip`: returns at once for the first few, then
    /// after this address's next free place in the queue of guesses;
    /// `Err` (with how long until one would be taken) when the queue is
    /// full, or when too many addresses are guessing at once.
    pub(super) async fn wrong_token(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        if self.guesses.len() >= MAX_KEYS {
            self.guesses.forget_idle(now);
            if self.guesses.len() >= MAX_KEYS {
                return Err(GUESS_PERIOD);
            }
        }
        match self.guesses.reserve(&ip, now, FREE_GUESSES, MAX_WAIT).0 {
            Decision::Now => Ok(()),
            Decision::After(wait) => {
                tracing::warn!(peer = %ip, wait_ms = wait.as_millis() as u64, "admin API: repeated wrong tokens, answering slowly");
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Decision::Refused(wait) => Err(wait),
        }
    }
}

/// Whether a mutating call says its body is JSON.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}
