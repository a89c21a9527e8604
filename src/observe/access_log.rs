//! The access log (P6.1): nginx `combined` by default, or JSON lines.
//!
//! Lines are formatted on the request's task and handed to a writer thread
//! (`tracing-appender`'s non-blocking writer, in lossless mode), so a slow
//! disk slows logging, never the reactor. A line is written when the
//! response head is ready; its byte count is the declared body length.

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use http::{HeaderMap, HeaderValue, Method, Uri, Version, header};
use http_body::Body as _;
use serde::Serialize;
use time::{OffsetDateTime, macros::format_description};
use tracing_appender::non_blocking::NonBlocking;

use super::log_format::ServerLog;
use crate::{config::schema::AccessFormat, handler::Response};

/// The access-log writer.
pub struct AccessLog {
    format: AccessFormat,
    writer: NonBlocking,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish()
    }
}

/// What a proxied response tells the access log (nginx `$upstream_addr`,
/// `$upstream_response_time`): set by the proxy in the response's
/// extensions.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTiming {
    /// The backend that answered (or failed last).
    pub addr: SocketAddr,
    /// From the first try to the response head (or the failure).
    pub time: Duration,
}

/// What is kept of a request for its log line.
#[derive(Debug)]
pub struct Entry {
    /// The client: the peer, or whom a trusted proxy forwarded for.
    pub(super) client: IpAddr,
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) version: Version,
    pub(super) referer: Option<HeaderValue>,
    pub(super) user_agent: Option<HeaderValue>,
    /// Every header, kept only when some server has its own format
    /// (which may name any `$http_…`).
    pub(super) headers: Option<HeaderMap>,
    /// It came over TLS (`$scheme`).
    pub(super) tls: bool,
}

impl Entry {
    /// Captures the request fields before the request moves on.
    pub fn capture(req: &http::request::Parts, client: IpAddr) -> Self {
        let h = &req.headers;
        Self {
            client,
            method: req.method.clone(),
            uri: req.uri.clone(),
            version: req.version,
            referer: h.get(header::REFERER).cloned(),
            user_agent: h.get(header::USER_AGENT).cloned(),
            headers: None,
            tls: false,
        }
    }

    /// Also keeps every header (for servers with their own format) and
    /// whether it came over TLS.
    pub fn with_headers(mut self, req: &http::request::Parts, tls: bool) -> Self {
        self.headers = Some(req.headers.clone());
        self.tls = tls;
        self
    }

    /// The decoded, normalized path (the raw one if it does not decode).
    pub(super) fn path(&self) -> std::borrow::Cow<'_, str> {
        crate::pipeline::path::normalize(self.uri.path())
            .unwrap_or(std::borrow::Cow::Borrowed(self.uri.path()))
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    remote_addr: String,
    method: &'a str,
    uri: String,
    protocol: &'a str,
    status: u16,
    body_bytes_sent: u64,
    referer: &'a str,
    user_agent: &'a str,
    request_time_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_response_time_ms: Option<f64>,
}

impl AccessLog {
    /// A log writing `format` lines to `writer`.
    pub fn new(format: AccessFormat, writer: NonBlocking) -> Self {
        Self { format, writer }
    }

    /// Writes one line for a finished request, in its server's format
    /// and unless its server leaves it out.
    pub fn write(&self, e: &Entry, resp: &Response, took: Duration, server: Option<&ServerLog>) {
        if server.is_some_and(|s| s.skips(e, resp.status())) {
            return;
        }
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| resp.body().size_hint().exact())
            .unwrap_or(0);
        let upstream = resp.extensions().get::<UpstreamTiming>().copied();
        if let Some(format) = server.and_then(|s| s.format.as_ref()) {
            let facts = super::log_format::Facts {
                entry: e,
                status: resp.status().as_u16(),
                bytes,
                took,
                upstream,
                now: OffsetDateTime::now_utc(),
            };
            let _ = self.writer.clone().write_all(facts.line(format).as_bytes());
            return;
        }
        let line = self.format_line(
            e,
            resp.status().as_u16(),
            bytes,
            took,
            upstream,
            OffsetDateTime::now_utc(),
        );
        let _ = self.writer.clone().write_all(line.as_bytes());
    }

    fn format_line(
        &self,
        e: &Entry,
        status: u16,
        bytes: u64,
        took: Duration,
        upstream: Option<UpstreamTiming>,
        now: OffsetDateTime,
    ) -> String {
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .replace('"', "\\x22")
        };
        let target = e.uri.path_and_query().map_or("/", |p| p.as_str());
        let proto = protocol(e.version);
        match self.format {
            AccessFormat::Combined => {
                let time = time_local(now);
                let mut line = format!(
                    "{} - - [{time}] \"{} {} {proto}\" {status} {bytes} \"{}\" \"{}\"",
                    e.client,
                    e.method,
                    target.replace('"', "\\x22"),
                    text(&e.referer),
                    text(&e.user_agent),
                );
                // A proxied request adds nginx's `$upstream_addr
                // $upstream_response_time` (seconds, ms precision); the
                // rest stay plain `combined`.
                if let Some(u) = upstream {
                    use std::fmt::Write as _;
                    let _ = write!(line, " {} {:.3}", u.addr, u.time.as_secs_f64());
                }
                line.push('\n');
                line
            }
            AccessFormat::Json => {
                let time = now
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let referer = e
                    .referer
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let user_agent = e
                    .user_agent
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let line = JsonLine {
                    time: &time,
                    remote_addr: e.client.to_string(),
                    method: e.method.as_str(),
                    uri: target.to_owned(),
                    protocol: proto,
                    status,
                    body_bytes_sent: bytes,
                    referer,
                    user_agent,
                    request_time_ms: took.as_secs_f64() * 1e3,
                    upstream_addr: upstream.map(|u| u.addr.to_string()),
                    upstream_response_time_ms: upstream.map(|u| u.time.as_secs_f64() * 1e3),
                };
                let mut s = serde_json::to_string(&line).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }
}

/// nginx's `$time_local`, in UTC: `02/Dec/2026:09:30:00 +0000`.
pub(super) fn time_local(now: OffsetDateTime) -> String {
    now.format(format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    ))
    .unwrap_or_default()
}

pub(super) fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}
