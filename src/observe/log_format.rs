//! A server's own access log (nginx `log_format` + `access_log … if=`):
//! its line format, a [`Template`] with the request's variables and a
//! finished request's (`$status`, `$request_time`, `$body_bytes_sent`,
//! `$upstream_response_time`…), and the requests it does not log (paths
//! by regex, statuses). The lines go where `log.access` says.

use std::{borrow::Cow, time::Duration};

use http::{StatusCode, header};
use regex::Regex;
use time::OffsetDateTime;

use super::access_log::{Entry, UpstreamTiming};
use crate::{
    handlers::template::{LogVar, Template, Vars},
    pipeline::codes::Codes,
};

/// A server's access-log settings.
#[derive(Debug, Default)]
pub struct ServerLog {
    /// Its line format; `None`: the global `log.format`.
    pub format: Option<Template>,
    /// Requests whose decoded path matches one of these are not logged.
    pub skip: Box<[Regex]>,
    /// Answers with one of these statuses are not logged.
    pub skip_status: Option<Codes>,
}

impl ServerLog {
    /// Whether the request `e`, answered with `status`, is left out.
    pub fn skips(&self, e: &Entry, status: StatusCode) -> bool {
        if self
            .skip_status
            .as_ref()
            .is_some_and(|c| c.contains(status))
        {
            return true;
        }
        !self.skip.is_empty() && {
            let path = e.path();
            self.skip.iter().any(|re| re.is_match(&path))
        }
    }
}

/// A finished request, as a format's variables see it.
pub(super) struct Facts<'a> {
    pub entry: &'a Entry,
    pub status: u16,
    pub bytes: u64,
    pub took: Duration,
    pub upstream: Option<UpstreamTiming>,
    pub now: OffsetDateTime,
}

impl Facts<'_> {
    /// The line for `format`, with its newline.
    pub fn line(&self, format: &Template) -> String {
        let mut out = String::with_capacity(128);
        format.render_into(self, &mut out);
        // One request, one line: a header value cannot break it.
        out.retain(|c| c != '\n' && c != '\r');
        out.push('\n');
        out
    }
}

impl Vars for Facts<'_> {
    fn request_uri(&self) -> &str {
        self.entry.uri.path_and_query().map_or("/", |p| p.as_str())
    }
    fn uri(&self) -> Cow<'_, str> {
        self.entry.path()
    }
    fn method(&self) -> &str {
        self.entry.method.as_str()
    }
    fn tls(&self) -> bool {
        self.entry.tls
    }
    fn uri_host(&self) -> Option<&str> {
        self.entry.uri.host()
    }
    fn query(&self) -> Option<&str> {
        self.entry.uri.query()
    }
    fn header(&self, name: &str) -> Option<&str> {
        match &self.entry.headers {
            Some(h) => h.get(name).and_then(|v| v.to_str().ok()),
            None if name.eq_ignore_ascii_case(header::REFERER.as_str()) => {
                self.entry.referer.as_ref().and_then(|v| v.to_str().ok())
            }
            None if name.eq_ignore_ascii_case(header::USER_AGENT.as_str()) => {
                self.entry.user_agent.as_ref().and_then(|v| v.to_str().ok())
            }
            None => None,
        }
    }
    fn param(&self, _name: &str) -> Option<&str> {
        None
    }
    fn log_var(&self, var: LogVar, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match var {
            LogVar::RemoteAddr => write!(out, "{}", self.entry.client),
            LogVar::TimeLocal => {
                out.push_str(&super::access_log::time_local(self.now));
                Ok(())
            }
            LogVar::TimeIso8601 => {
                let t = self
                    .now
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                out.push_str(&t);
                Ok(())
            }
            LogVar::Request => write!(
                out,
                "{} {} {}",
                self.entry.method,
                self.request_uri(),
                super::access_log::protocol(self.entry.version)
            ),
            LogVar::Protocol => {
                out.push_str(super::access_log::protocol(self.entry.version));
                Ok(())
            }
            LogVar::Status => write!(out, "{}", self.status),
            LogVar::BodyBytes => write!(out, "{}", self.bytes),
            LogVar::RequestTime => write!(out, "{:.3}", self.took.as_secs_f64()),
            LogVar::UpstreamAddr => match self.upstream {
                Some(u) => write!(out, "{}", u.addr),
                None => {
                    out.push('-');
                    Ok(())
                }
            },
            LogVar::UpstreamTime => match self.upstream {
                Some(u) => write!(out, "{:.3}", u.time.as_secs_f64()),
                None => {
                    out.push('-');
                    Ok(())
                }
            },
            LogVar::Args => {
                out.push_str(self.entry.uri.query().unwrap_or(""));
                Ok(())
            }
        };
    }
}
