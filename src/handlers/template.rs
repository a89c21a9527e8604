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

use crate::pipeline::request::Request;

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
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Self {
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
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::RequestUri => {
                    out.push_str(req.uri().path_and_query().map_or("/", |p| p.as_str()))
                }
                Part::Uri => out.push_str(req.path()),
                Part::Method => out.push_str(req.method().as_str()),
                Part::Scheme => out.push_str(if req.is_tls() { "https" } else { "http" }),
                Part::Host => {
                    let host = req.uri().host().or_else(|| {
                        let h = req.header("host")?;
                        // `[v6]:port` keeps its brackets; `name:port` loses the port.
                        Some(match h.rfind(':') {
                            Some(i) if !h[i..].contains(']') => &h[..i],
                            _ => h,
                        })
                    });
                    out.extend(host.unwrap_or("").chars().map(|c| c.to_ascii_lowercase()));
                }
                Part::Arg(name) => out.push_str(&req.query_param(name).unwrap_or_default()),
                Part::Header(name) => out.push_str(req.header(name).unwrap_or("")),
                Part::Param(name) => out.push_str(req.param(name).unwrap_or("")),
                Part::Capture(n) => {
                    let key = [b'0' + n];
                    let key = std::str::from_utf8(&key).expect("a digit is UTF-8");
                    out.push_str(req.param(key).unwrap_or(""));
                }
            }
        }
        out
    }
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
