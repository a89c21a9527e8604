//! `$variable` templates for `Return` bodies and `Redirect` targets, with
//! nginx's names where nginx has one.
//!
//! | variable | value |
//! |---|---|
//! | `$request_uri` | the raw path and query, as received |
//! | `$uri` | the decoded, normalized path |
//! | `$request_method` | the method |
//! | `$scheme` | `http` or `https` |
//! | `$host` | the host the request names (URI or `Host`), lowercase, without its port |
//! | `$arg_NAME` | query parameter `NAME`, decoded |
//! | `$http_NAME` | request header `NAME` (`_` stands for `-`) |
//! | `$param_NAME` | route parameter `NAME` (`{NAME}` or `{*NAME}`) |
//! | `$1` … `$9` | captures of a regex route |
//!
//! A `$` that starts none of these is kept as is. The template is parsed
//! once at config compile time; a request only concatenates.
//!
//! An access-log format ([`Template::parse_log`]) knows these too, and
//! the variables of a finished request ([`LogVar`]): `$remote_addr`,
//! `$time_local`, `$time_iso8601`, `$request`, `$server_protocol`,
//! `$status`, `$body_bytes_sent`, `$request_time`, `$upstream_addr`,
//! `$upstream_response_time` (`-` without a proxy), `$args`.

use std::borrow::Cow;

use crate::pipeline::request::Request;

/// A variable only a finished request has (access-log formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVar {
    /// The client (`$remote_addr`).
    RemoteAddr,
    /// nginx's `$time_local` (`02/Dec/2026:09:30:00 +0000`).
    TimeLocal,
    /// RFC 3339 (`$time_iso8601`).
    TimeIso8601,
    /// The request line (`$request`).
    Request,
    /// `HTTP/1.1` (`$server_protocol`).
    Protocol,
    /// The answer's status (`$status`).
    Status,
    /// Body bytes sent (`$body_bytes_sent`).
    BodyBytes,
    /// Seconds from the request to its answer, ms precision (`$request_time`).
    RequestTime,
    /// The backend that answered (`$upstream_addr`).
    UpstreamAddr,
    /// The backend's time, seconds (`$upstream_response_time`).
    UpstreamTime,
    /// The query string (`$args`).
    Args,
}

/// Where a template's variables come from: a request being handled
/// ([`Request`]), or one the access log writes.
pub trait Vars {
    /// The raw path and query.
    fn request_uri(&self) -> &str;
    /// The decoded, normalized path.
    fn uri(&self) -> Cow<'_, str>;
    /// The method.
    fn method(&self) -> &str;
    /// Whether it came over TLS.
    fn tls(&self) -> bool;
    /// The URI's host, if it has one.
    fn uri_host(&self) -> Option<&str>;
    /// The query, without `?`.
    fn query(&self) -> Option<&str>;
    /// A request header.
    fn header(&self, name: &str) -> Option<&str>;
    /// A route parameter.
    fn param(&self, name: &str) -> Option<&str>;
    /// A finished request's variable; nothing by default.
    fn log_var(&self, _var: LogVar, _out: &mut String) {}
}

impl Vars for Request {
    fn request_uri(&self) -> &str {
        self.uri().path_and_query().map_or("/", |p| p.as_str())
    }
    fn uri(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.path())
    }
    fn method(&self) -> &str {
        Request::method(self).as_str()
    }
    fn tls(&self) -> bool {
        self.is_tls()
    }
    fn uri_host(&self) -> Option<&str> {
        Request::uri(self).host()
    }
    fn query(&self) -> Option<&str> {
        Request::query(self)
    }
    fn header(&self, name: &str) -> Option<&str> {
        Request::header(self, name)
    }
    fn param(&self, name: &str) -> Option<&str> {
        Request::param(self, name)
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    RequestUri,
    Uri,
    Method,
    Scheme,
    Host,
    Arg(String),
    Header(String),
    Param(String),
    Capture(u8),
    Log(LogVar),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Self {
        Self::parse_with(text, false)
    }

    /// Parses an access-log format: the request's variables and a
    /// finished request's ([`LogVar`]).
    pub fn parse_log(text: &str) -> Self {
        Self::parse_with(text, true)
    }

    fn parse_with(text: &str, log: bool) -> Self {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let word_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let word = &after[..word_len];
            let (part, used) = match word {
                "request_uri" => (Some(Part::RequestUri), word_len),
                "uri" => (Some(Part::Uri), word_len),
                "request_method" => (Some(Part::Method), word_len),
                "scheme" => (Some(Part::Scheme), word_len),
                "host" => (Some(Part::Host), word_len),
                _ if log && log_var(word).is_some() => (log_var(word).map(Part::Log), word_len),
                _ if word.starts_with("arg_") && word.len() > 4 => {
                    (Some(Part::Arg(word[4..].to_owned())), word_len)
                }
                _ if word.starts_with("http_") && word.len() > 5 => {
                    (Some(Part::Header(word[5..].replace('_', "-"))), word_len)
                }
                _ if word.starts_with("param_") && word.len() > 6 => {
                    (Some(Part::Param(word[6..].to_owned())), word_len)
                }
                _ => match after.as_bytes().first() {
                    Some(d @ b'1'..=b'9') => (Some(Part::Capture(d - b'0')), 1),
                    _ => (None, 0),
                },
            };
            match part {
                Some(p) => {
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(p);
                }
                None => lit.push('$'),
            }
            rest = &after[used..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Self { parts }
    }

    /// The text when the template has no variables.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Fills the template for one request; missing values are empty.
    pub fn render(&self, req: &Request) -> String {
        let mut out = String::new();
        self.render_into(req, &mut out);
        out
    }

    /// Fills the template from `req` onto `out`; missing values are empty.
    pub fn render_into(&self, req: &impl Vars, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::RequestUri => out.push_str(req.request_uri()),
                Part::Uri => out.push_str(&req.uri()),
                Part::Method => out.push_str(req.method()),
                Part::Scheme => out.push_str(if req.tls() { "https" } else { "http" }),
                Part::Log(var) => req.log_var(*var, out),
                Part::Host => {
                    let host = req.uri_host().or_else(|| {
                        let h = req.header("host")?;
                        // `[v6]:port` keeps its brackets; `name:port` loses the port.
                        Some(match h.rfind(':') {
                            Some(i) if !h[i..].contains(']') => &h[..i],
                            _ => h,
                        })
                    });
                    out.extend(host.unwrap_or("").chars().map(|c| c.to_ascii_lowercase()));
                }
                Part::Arg(name) => out.push_str(
                    &crate::pipeline::request::query_param(
                        req.query().unwrap_or("").as_bytes(),
                        name,
                    )
                    .unwrap_or_default(),
                ),
                Part::Header(name) => out.push_str(req.header(name).unwrap_or("")),
                Part::Param(name) => out.push_str(req.param(name).unwrap_or("")),
                Part::Capture(n) => {
                    let key = [b'0' + n];
                    let key = std::str::from_utf8(&key).expect("a digit is UTF-8");
                    out.push_str(req.param(key).unwrap_or(""));
                }
            }
        }
    }
}

/// The log-only variable `word` names.
fn log_var(word: &str) -> Option<LogVar> {
    Some(match word {
        "remote_addr" => LogVar::RemoteAddr,
        "time_local" => LogVar::TimeLocal,
        "time_iso8601" => LogVar::TimeIso8601,
        "request" => LogVar::Request,
        "server_protocol" => LogVar::Protocol,
        "status" => LogVar::Status,
        "body_bytes_sent" => LogVar::BodyBytes,
        "request_time" => LogVar::RequestTime,
        "upstream_addr" => LogVar::UpstreamAddr,
        "upstream_response_time" => LogVar::UpstreamTime,
        "args" => LogVar::Args,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, uri: &str) -> String {
        let (head, ()) = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("x-user", "ann")
            .body(())
            .unwrap()
            .into_parts();
        let req = Request::new(
            head,
            None,
            vec![("id".into(), "7".into()), ("1".into(), "cap".into())],
            bytes::Bytes::new(),
            ([127, 0, 0, 1], 1).into(),
        );
        Template::parse(t).render(&req)
    }

    #[test]
    fn variables_render() {
        assert_eq!(
            render(
                "$request_method $uri ($request_uri) $arg_q/$http_x_user/$param_id/$1 $$ $nope",
                "/p?q=a+b"
            ),
            "POST /p (/p?q=a+b) a b/ann/7/cap $$ $nope"
        );
        assert_eq!(
            render("$scheme://$host$request_uri", "http://Example.COM:8080/x?y"),
            "http://example.com/x?y"
        );
    }

    #[test]
    fn static_text_is_detected() {
        assert_eq!(
            Template::parse("Hello, World!\n").as_static(),
            Some("Hello, World!\n")
        );
        assert_eq!(Template::parse("cost: $5").as_static(), None);
        assert_eq!(Template::parse("a $ b").as_static(), Some("a $ b"));
    }
}
