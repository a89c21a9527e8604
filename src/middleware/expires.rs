//! `Expires` and `Cache-Control: max-age` on a route's answers (nginx's
//! `expires`), for the whole route or by the answer's type (a
//! `Content-Type` or a prefix of one, `image/`) or the path's extension
//! (`.css`). Only the statuses nginx's `expires` touches (200, 201, 204,
//! 206, 301, 302, 303, 304, 307, 308) get them.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::{HeaderValue, header};

use super::set_headers::nginx_success;
use crate::{
    handler::{HandlerFuture, Middleware, Next, Response},
    pipeline::request::Request,
};

/// One `expires` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Leave the headers as the handler set them (`expires off`).
    Off,
    /// Already expired, revalidate every time (`expires epoch`).
    Epoch,
    /// As far as nginx goes (`expires max`: 10 years).
    Max,
    /// This long from now (`expires 30d`).
    In(Duration),
}

impl Expiry {
    /// Parses `off`, `epoch`, `max` or a duration (`30d`, `1h 30m`).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" => Ok(Self::Off),
            "epoch" => Ok(Self::Epoch),
            "max" => Ok(Self::Max),
            other => humantime_serde::re::humantime::parse_duration(other)
                .map(Self::In)
                .map_err(|e| {
                    format!("invalid expiry `{text}`: {e} (expected `off`, `epoch`, `max` or a duration such as `30d`)")
                }),
        }
    }

    fn apply(self, resp: &mut Response, now: SystemTime) {
        let (expires, cache_control) = match self {
            Self::Off => return,
            Self::Epoch => (
                HeaderValue::from_static("Thu, 01 Jan 1970 00:00:01 GMT"),
                HeaderValue::from_static("no-cache"),
            ),
            Self::Max => (
                HeaderValue::from_static("Thu, 31 Dec 2037 23:55:55 GMT"),
                HeaderValue::from_static("max-age=315360000"),
            ),
            Self::In(d) => {
                let Ok(at) = HeaderValue::try_from(httpdate::fmt_http_date(now + d)) else {
                    return;
                };
                let max_age = HeaderValue::try_from(format!("max-age={}", d.as_secs()))
                    .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
                (at, max_age)
            }
        };
        let h = resp.headers_mut();
        h.insert(header::EXPIRES, expires);
        h.insert(header::CACHE_CONTROL, cache_control);
    }
}

/// What a rule matches.
#[derive(Debug)]
pub enum Match {
    /// The path ends in this extension (`.css`, compared without case).
    Extension(String),
    /// The answer's `Content-Type` starts with this (`image/`, `text/html`).
    Type(String),
}

/// A route's expiry rules: the first that matches, else the default.
#[derive(Debug)]
pub struct Expires {
    /// Rules in order.
    pub rules: Arc<[(Match, Expiry)]>,
    /// For answers no rule matches; `None` leaves them alone.
    pub default: Option<Expiry>,
}

impl Middleware for Expires {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let by_extension = self
            .rules
            .iter()
            .find(|(m, _)| match m {
                Match::Extension(ext) => {
                    let path = req.path();
                    path.len() >= ext.len()
                        && path[path.len() - ext.len()..].eq_ignore_ascii_case(ext)
                }
                Match::Type(_) => false,
            })
            .map(|(_, e)| *e);
        let rules = self.rules.clone();
        let default = self.default;
        next.run(req).map(move |result| {
            let mut resp = result?;
            if !nginx_success(resp.status()) {
                return Ok(resp);
            }
            let by_type = || {
                let ct = resp.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
                rules
                    .iter()
                    .find(|(m, _)| matches!(m, Match::Type(t) if ct.starts_with(t.as_str())))
                    .map(|(_, e)| *e)
            };
            if let Some(expiry) = by_extension.or_else(by_type).or(default) {
                expiry.apply(&mut resp, SystemTime::now());
            }
            Ok(resp)
        })
    }
}
