//! Upgrades through the proxy (WebSocket): which requests may switch
//! protocols, what the backend is sent, and the answer once it agreed.
//!
//! ```text
//! HTTP/1.1 client  GET + Connection: upgrade + Upgrade: websocket
//!   → backend      the same head, Upgrade and Connection kept (only the
//!                  route's `upgrades` protocols; others are dropped as
//!                  hop-by-hop and the request goes on as a plain one)
//! HTTP/2 client    CONNECT + :protocol websocket (RFC 8441)
//!   → backend      GET + Upgrade: websocket + a fresh Sec-WebSocket-Key,
//!                  Sec-WebSocket-Version 13 (Sec-WebSocket-Protocol and
//!                  -Extensions pass as they came)
//! backend 101      → the client gets 101 (HTTP/1.1) or 200 (HTTP/2), and
//!                  the two upgraded connections are joined (tunnel.rs)
//! anything else    → relayed as an ordinary answer
//! ```
//!
//! Upgrades go to HTTP/1.1 backends only: HTTP/2 has no `Upgrade`.

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method, StatusCode, Version, header, request::Parts};
use hyper::upgrade::OnUpgrade;

use super::{backend::InFlight, headers::strip_hop_by_hop, tunnel};
use crate::{
    error::HttpError,
    handler::Response,
    observe::access_log::UpstreamTiming,
    pipeline::{body::Body, request::lists_token, tunnels::Tunnels},
};

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// A request that asked for an upgrade the route passes.
pub(super) struct Upgrade {
    /// The client's side, ready once our answer went out.
    client: OnUpgrade,
    /// Where the tunnel runs: part of the client's connection.
    tunnels: Tunnels,
    /// An HTTP/2 extended CONNECT (answered 200, not 101).
    connect: bool,
    /// The `Upgrade` the backend is sent.
    protocol: HeaderValue,
}

/// The upgrade `head` asks for, when the route passes it: taken out of the
/// request's extensions. `None` for a plain request (an `Upgrade` it
/// carries goes with the other hop-by-hop headers). A CONNECT that is not
/// a WebSocket is refused: this is a reverse proxy, not a forward one.
pub(super) fn wanted(head: &mut Parts, allowed: &[String]) -> Result<Option<Upgrade>, HttpError> {
    let connect = head.method == Method::CONNECT;
    let protocol = if connect {
        let websocket = head
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if !websocket || !allowed.iter().any(|a| a == "websocket") {
            return Err(HttpError::BadRequest("CONNECT is not proxied"));
        }
        HeaderValue::from_static("websocket")
    } else {
        // The extension first: hyper marks only the requests it can
        // upgrade, so a plain request costs no header scan here.
        if head.extensions.get::<OnUpgrade>().is_none()
            || allowed.is_empty()
            || head.version != Version::HTTP_11
            || !lists_token(&head.headers, header::CONNECTION, "upgrade")
        {
            return Ok(None);
        }
        match passed(&head.headers, allowed) {
            Some(p) => p,
            None => return Ok(None),
        }
    };
    // Both are there for any request hyper can upgrade that came through
    // a connection (`conn/`); without them it cannot be upgraded.
    let Some(tunnels) = head.extensions.remove::<Tunnels>() else {
        return Ok(None);
    };
    let Some(client) = head.extensions.remove::<OnUpgrade>() else {
        return Ok(None);
    };
    Ok(Some(Upgrade {
        client,
        tunnels,
        connect,
        protocol,
    }))
}

/// The protocols of `Upgrade` the route allows, in the client's order
/// (a name matches with or without its `/version`).
fn passed(headers: &http::HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| {
            let name = p.split('/').next().unwrap_or(p);
            allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(p) || a.eq_ignore_ascii_case(name))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

impl Upgrade {
    /// Makes the prepared head (hop-by-hop headers gone) an upgrade
    /// request for an HTTP/1.1 backend.
    pub(super) fn apply(&self, head: &mut Parts) {
        let h = &mut head.headers;
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, self.protocol.clone());
        if self.connect {
            head.method = Method::GET;
            h.remove(header::CONTENT_LENGTH);
            h.insert(SEC_WEBSOCKET_KEY.clone(), websocket_key());
            h.insert(
                SEC_WEBSOCKET_VERSION.clone(),
                HeaderValue::from_static("13"),
            );
        }
    }

    /// The backend switched protocols: starts the tunnel and returns the
    /// client's answer (101, or 200 to an HTTP/2 CONNECT), with the
    /// backend's headers but the hop-by-hop ones.
    pub(super) fn switched(
        self,
        mut resp: http::Response<hyper::body::Incoming>,
        inflight: InFlight,
        idle: Duration,
        started: Instant,
    ) -> Response {
        let addr = inflight.backend().addr;
        inflight.answered();
        let backend = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        if self.connect {
            parts.status = StatusCode::OK;
            // The HTTP/2 client sent no key: the backend answered ours.
            parts.headers.remove(&SEC_WEBSOCKET_ACCEPT);
        } else {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts
                .headers
                .insert(header::UPGRADE, protocol.unwrap_or(self.protocol));
        }
        self.tunnels
            .spawn(tunnel::run(self.client, backend, idle, inflight));
        let mut resp = Response::from_parts(parts, Body::Empty);
        resp.extensions_mut().insert(UpstreamTiming {
            addr,
            time: started.elapsed(),
        });
        resp
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1).
fn websocket_key() -> HeaderValue {
    use base64::Engine as _;
    let mut nonce = [0u8; 16];
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    if random.fill(&mut nonce).is_err() {
        // Not a secret (it only proves the backend speaks WebSocket):
        // the clock will do when the system's generator fails.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        nonce = t.to_le_bytes();
    }
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    HeaderValue::try_from(key).unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}
