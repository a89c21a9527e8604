//! `BasicAuth`: HTTP Basic authentication (RFC 7617) against an htpasswd
//! file, nginx's `auth_basic` + `auth_basic_user_file`.
//!
//! | file          | owns |
//! |---------------|------|
//! | `htpasswd.rs` | the file: parsed and checked at config load, one hash per user |
//! | `apr1.rs`     | Apache's `$apr1$` MD5-crypt, which no well-kept crate has |
//!
//! A request without good credentials (none, another scheme, bad base64,
//! no `:`, an unknown user, a wrong password) gets 401 with
//! `WWW-Authenticate: Basic realm="…", charset="UTF-8"`. The password and
//! the `Authorization` header are never logged; a failure is logged at
//! debug with the user name only. bcrypt and SHA-crypt cost milliseconds
//! by design, so they are checked on the blocking pool, never on the
//! connection's thread. The file is read at every config load (a reload
//! reads it again; with `watch: true` a change to it reloads the config),
//! so the users in force are always a checked file's.

mod apr1;
mod htpasswd;

use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};

pub use htpasswd::Htpasswd;

use crate::{
    error::error_page,
    handler::{HandlerFuture, Middleware, Next, Response},
    pipeline::request::Request,
};

/// A route's Basic authentication.
#[derive(Debug, Clone)]
pub struct BasicAuth(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    users: Htpasswd,
    /// `Basic realm="…", charset="UTF-8"`.
    challenge: HeaderValue,
}

impl BasicAuth {
    /// Checks against `users`, naming `realm` in the challenge; `None`
    /// when the realm cannot be put in a header (a control character).
    pub fn new(users: Htpasswd, realm: &str) -> Option<Self> {
        let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
        let challenge =
            HeaderValue::from_str(&format!("Basic realm=\"{escaped}\", charset=\"UTF-8\"")).ok()?;
        Some(Self(Arc::new(Inner { users, challenge })))
    }

    fn refuse(&self) -> Response {
        let mut resp = error_page(StatusCode::UNAUTHORIZED);
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.0.challenge.clone());
        resp
    }
}

/// The user and password of a `Basic` `Authorization`, if there is
/// exactly one such header and it is well formed.
pub fn credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

impl Middleware for BasicAuth {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let Some((user, password)) = credentials(req.headers()) else {
            return HandlerFuture::ready(Ok(self.refuse()));
        };
        let Some(hash) = self.0.users.get(&user) else {
            tracing::debug!(user, "basic auth: unknown user");
            return HandlerFuture::ready(Ok(self.refuse()));
        };
        if !hash.is_slow() {
            return if hash.verify(&password) {
                next.run(req)
            } else {
                tracing::debug!(user, "basic auth: wrong password");
                HandlerFuture::ready(Ok(self.refuse()))
            };
        }
        let (me, hash) = (self.clone(), hash.clone());
        HandlerFuture::new(async move {
            let ok = tokio::task::spawn_blocking(move || hash.verify(&password))
                .await
                .unwrap_or(false);
            if ok {
                next.run(req).await
            } else {
                tracing::debug!(user, "basic auth: wrong password");
                Ok(me.refuse())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &[&str]) -> Option<(String, Vec<u8>)> {
        let mut h = HeaderMap::new();
        for v in value {
            h.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
        }
        credentials(&h)
    }

    #[test]
    fn only_one_well_formed_basic_header_counts() {
        // "alice:p@ss:word" — the password may hold colons.
        let good = auth(&["Basic YWxpY2U6cEBzczp3b3Jk"]).expect("good");
        assert_eq!(good, ("alice".into(), b"p@ss:word".to_vec()));
        assert!(auth(&["basic   YWxpY2U6cEBzczp3b3Jk"]).is_some());
        assert!(auth(&[]).is_none());
        assert!(auth(&["Bearer YWxpY2U6cEBzczp3b3Jk"]).is_none());
        assert!(auth(&["Basic !!notbase64!!"]).is_none());
        assert!(auth(&["Basic YWxpY2U="]).is_none(), "no colon");
        assert!(auth(&["Basic"]).is_none());
        assert!(auth(&["Basic YWxpY2U6eA==", "Basic YWxpY2U6eA=="]).is_none());
    }
}
