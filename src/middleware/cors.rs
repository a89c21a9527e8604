//! `Cors`: the CORS protocol of the Fetch standard, for a server or a
//! route (`cors:` in `config.ron`).
//!
//! A request without `Origin` is not a cross-origin one and passes as it
//! is. A preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered here and never reaches
//! the handler: 204 with the grants when the origin, the method and every
//! requested header are allowed, else 403 without them (the browser then
//! refuses the real request). Any other request from an allowed origin
//! goes on, and its answer gets `Access-Control-Allow-Origin` (and the
//! credentials and exposed headers); from another origin, the answer goes
//! back without any grant, even one the handler set. Answers that depend
//! on the origin say `Vary: Origin`, so a cache never serves one site's
//! grant to another. `*` is sent only when any origin is allowed without
//! credentials (Fetch refuses `*` with credentials; the config does too).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use crate::{
    error::{HttpError, error_page},
    handler::{HandlerFuture, Middleware, Next, Response},
    pipeline::{body::Body, request::Request},
};

/// Which origins are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// This one, exactly (`https://app.example.com`), compared without
    /// case.
    Exact(String),
    /// Any subdomain, at any depth, of `suffix` under `scheme`, on `port`
    /// if given (`https://*.example.com`: `suffix` is `.example.com`).
    Wildcard {
        /// `https://`.
        scheme: String,
        /// `.example.com` (what follows the `*`, port excluded).
        suffix: String,
        /// `:8443`, or empty.
        port: String,
    },
}

impl Origin {
    /// Parses one entry of `origins` (not `"*"`); the error says what was
    /// expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid origin `{text}` (expected scheme://host[:port] such as \"https://app.example.com\", a wildcard such as \"https://*.example.com\", \"null\" or \"*\")"
            )
        };
        if text == "null" {
            return Ok(Self::Exact(text.into()));
        }
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme_ok = !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        // An origin has no path, not even `/`: browsers never send one.
        let host_ok = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        };
        if !scheme_ok || !host_ok(rest.trim_start_matches("*.")) {
            return Err(bad());
        }
        let scheme = format!("{}://", scheme.to_ascii_lowercase());
        match rest.strip_prefix('*') {
            Some(tail) => {
                let (host, port) = match tail.rsplit_once(':') {
                    Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
                        (h, format!(":{p}"))
                    }
                    _ => (tail, String::new()),
                };
                if !host.starts_with('.') || host.len() < 2 || host.contains('*') {
                    return Err(bad());
                }
                Ok(Self::Wildcard {
                    scheme,
                    suffix: host.to_ascii_lowercase(),
                    port,
                })
            }
            None if rest.contains('*') => Err(bad()),
            None => Ok(Self::Exact(format!(
                "{scheme}{}",
                rest.to_ascii_lowercase()
            ))),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Exact(o) => o.eq_ignore_ascii_case(origin),
            Self::Wildcard {
                scheme,
                suffix,
                port,
            } => {
                let origin = origin.to_ascii_lowercase();
                let Some(rest) = origin.strip_prefix(scheme.as_str()) else {
                    return false;
                };
                let Some(host) = rest.strip_suffix(port.as_str()) else {
                    return false;
                };
                // One or more labels before the suffix; no port left over.
                host.strip_suffix(suffix.as_str()).is_some_and(|sub| {
                    !sub.is_empty()
                        && !sub.starts_with('.')
                        && !sub.ends_with('.')
                        && sub
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                })
            }
        }
    }
}

/// A compiled `cors:` setting.
#[derive(Debug)]
pub struct Cors {
    /// `None`: any origin (`"*"`).
    pub origins: Option<Vec<Origin>>,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    /// Lower-case; `None`: any header.
    pub headers: Option<Vec<HeaderName>>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age`.
    pub max_age: Option<Duration>,
    /// `Access-Control-Expose-Headers`, joined; `None` when empty.
    pub expose: Option<HeaderValue>,
}

static REQUEST_METHOD: HeaderName = header::ACCESS_CONTROL_REQUEST_METHOD;
static REQUEST_HEADERS: HeaderName = header::ACCESS_CONTROL_REQUEST_HEADERS;

impl Cors {
    /// Whether `origin` may read answers.
    fn allows(&self, origin: &str) -> bool {
        self.origins
            .as_ref()
            .is_none_or(|list| list.iter().any(|o| o.matches(origin)))
    }

    /// The `Access-Control-Allow-Origin` for an allowed `origin`.
    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        if self.origins.is_none() && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Whether the answer depends on the origin (anything but a plain `*`).
    /// Grants `origin` (and credentials, when they are allowed).
    fn grant_origin(&self, h: &mut HeaderMap, origin: &HeaderValue) {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    fn varies(&self) -> bool {
        self.origins.is_some() || self.credentials
    }

    /// The answer to a preflight.
    fn preflight(&self, headers: &HeaderMap, origin: &HeaderValue) -> Response {
        let granted = origin
            .to_str()
            .ok()
            .filter(|o| self.allows(o))
            .and_then(|_| self.grant(headers));
        let Some((method, asked)) = granted else {
            let mut resp = error_page(StatusCode::FORBIDDEN);
            vary(resp.headers_mut(), &["Origin"]);
            return resp;
        };
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        self.grant_origin(h, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method);
        if let Some(asked) = asked {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        }
        if let Some(age) = self.max_age {
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(age.as_secs()),
            );
        }
        vary(
            h,
            &[
                "Origin",
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers",
            ],
        );
        resp
    }

    /// The method and headers a preflight asks for, echoed, if all are
    /// allowed. Echoing (rather than `*` or the whole list) grants exactly
    /// what was asked, and works with credentials, where Fetch reads `*`
    /// as a header named `*`.
    fn grant(&self, headers: &HeaderMap) -> Option<(HeaderValue, Option<HeaderValue>)> {
        let method = headers.get(&REQUEST_METHOD)?;
        let m = Method::from_bytes(method.as_bytes()).ok()?;
        if !self.methods.as_ref().is_none_or(|list| list.contains(&m)) {
            return None;
        }
        let mut asked = Vec::new();
        for line in headers.get_all(&REQUEST_HEADERS) {
            for name in line.to_str().ok()?.split(',') {
                let name = name.trim();
                if name.is_empty() {
                    continue;
                }
                let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                if !self
                    .headers
                    .as_ref()
                    .is_none_or(|list| list.contains(&name))
                {
                    return None;
                }
                asked.push(name);
            }
        }
        let asked = (!asked.is_empty()).then(|| {
            let joined: Vec<&str> = asked.iter().map(HeaderName::as_str).collect();
            HeaderValue::from_str(&joined.join(", ")).ok()
        });
        Some((method.clone(), asked.flatten()))
    }

    /// The grants on an answer to an allowed origin; a refused origin's
    /// answer loses any the handler gave.
    fn apply(&self, resp: &mut Response, origin: Option<&HeaderValue>) {
        let h = resp.headers_mut();
        if self.varies() {
            vary(h, &["Origin"]);
        }
        let Some(origin) = origin else {
            return;
        };
        self.grant_origin(h, origin);
        if !self.credentials {
            h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        if let Some(expose) = &self.expose {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// Adds to `Vary` the `names` it does not list yet (none if it says `*`).
fn vary(h: &mut HeaderMap, names: &[&str]) {
    let listed: Vec<String> = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if listed.iter().any(|t| t == "*") {
        return;
    }
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !listed.iter().any(|t| t.eq_ignore_ascii_case(n)))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&missing.join(", "))
        && !missing.is_empty()
    {
        h.append(header::VARY, v);
    }
}

/// The CORS middleware of a route.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    /// The setting, shared by the routes of a server.
    pub cors: std::sync::Arc<Cors>,
    /// The route's own methods (its `Allow`), when `OPTIONS` was added to
    /// them only for preflights: any other `OPTIONS` gets 405.
    pub refuse_options: Option<HeaderValue>,
}

impl Middleware for CorsLayer {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let h = req.headers();
        let preflight = req.method() == Method::OPTIONS
            && h.contains_key(header::ORIGIN)
            && h.contains_key(&REQUEST_METHOD);
        if req.method() == Method::OPTIONS
            && !preflight
            && let Some(allow) = &self.refuse_options
        {
            return HandlerFuture::ready(Err(HttpError::MethodNotAllowed {
                allow: allow.clone(),
            }));
        }
        let cors = self.cors.clone();
        let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
            // Not cross-origin; the answer still varies by origin.
            return next.run(req).map(move |result| {
                let mut resp = result.unwrap_or_else(|e| e.into_response());
                if cors.varies() {
                    vary(resp.headers_mut(), &["Origin"]);
                }
                Ok(resp)
            });
        };
        if preflight {
            return HandlerFuture::ready(Ok(cors.preflight(req.headers(), &origin)));
        }
        let allowed = origin.to_str().ok().is_some_and(|o| cors.allows(o));
        next.run(req).map(move |result| {
            let mut resp = result.unwrap_or_else(|e| e.into_response());
            if allowed {
                cors.apply(&mut resp, Some(&origin));
            } else {
                let h = resp.headers_mut();
                h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
                h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
                h.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
                cors.apply(&mut resp, None);
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let exact = Origin::parse("https://App.example.com").expect("exact");
        assert!(exact.matches("https://app.example.com"));
        assert!(!exact.matches("https://app.example.com:8443"));
        assert!(!exact.matches("http://app.example.com"));
        let wild = Origin::parse("https://*.example.com").expect("wild");
        assert!(wild.matches("https://a.example.com"));
        assert!(wild.matches("https://a.b.example.com"));
        assert!(!wild.matches("https://example.com"));
        assert!(!wild.matches("https://evilexample.com"));
        assert!(!wild.matches("https://a.example.com.evil.org"));
        assert!(!wild.matches("https://a.example.com:8443"));
        assert!(!wild.matches("http://a.example.com"));
        assert!(!wild.matches("https://evil.test/x.example.com"));
        assert!(!wild.matches("https://a..example.com"));
        let port = Origin::parse("https://*.example.com:8443").expect("port");
        assert!(port.matches("https://a.example.com:8443"));
        assert!(!port.matches("https://a.example.com"));
        assert!(Origin::parse("null").expect("null").matches("null"));
        for bad in [
            "example.com",
            "https://",
            "https://a.example.com/",
            "https://*example.com",
            "https://a.*.example.com",
            "https://*.",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }
}
