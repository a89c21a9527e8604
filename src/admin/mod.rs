//! The admin API (P7.5): its own listener (`admin.<addr>` in the tree),
//! JSON answers, and a bearer token when one is configured.
//!
//! | endpoint        | answer                                             |
//! |-----------------|----------------------------------------------------|
//! | `GET /health`   | `{"status":"ok"}`                                  |
//! | `GET /metrics`  | every series, Prometheus text format               |
//! | `GET /tree`     | the live supervision tree: name, status, children  |
//!
//! A missing or wrong token gets 401 (logged with the peer), an unknown
//! path 404, another method 405 with `Allow`. The admin connections never
//! touch the request path's state.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use ractor::ActorCell;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use troupe_actors::{AdminApp, ConnShutdown};

/// The admin section of the config, checked, with its token read.
#[derive(Debug, Clone)]
pub struct AdminSpec {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The bearer token requests must present, if any.
    pub token: Option<String>,
}

/// What the admin endpoints read.
pub struct Admin {
    token: Option<String>,
    registry: prometheus::Registry,
    /// The tree's root, set once the tree is up.
    root: OnceLock<ActorCell>,
}

impl Admin {
    /// The admin API over `registry`; [`Admin::set_root`] gives it the tree.
    pub fn new(spec: &AdminSpec, registry: prometheus::Registry) -> Arc<Self> {
        Arc::new(Self {
            token: spec.token.clone(),
            registry,
            root: OnceLock::new(),
        })
    }

    /// Hands over the supervision tree's root, for `GET /tree`.
    pub fn set_root(&self, root: ActorCell) {
        let _ = self.root.set(root);
    }

    /// The listener-side seam: serves each connection with HTTP/1.1.
    pub fn app(self: &Arc<Self>) -> AdminApp {
        let admin = self.clone();
        AdminApp::new(move |stream, peer, shutdown| {
            Box::pin(admin.clone().serve(stream, peer, shutdown))
        })
    }

    async fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, shutdown: ConnShutdown) {
        let service = service_fn(move |req| {
            let admin = self.clone();
            async move { Ok::<_, std::convert::Infallible>(admin.answer(&req, peer)) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = shutdown.drain.cancelled() => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn => {}
                    _ = shutdown.cut.cancelled() => {}
                }
            }
        }
    }

    fn answer(&self, req: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if !self.authorized(req) {
            tracing::warn!(%peer, path = req.uri().path(), "admin API: missing or wrong token");
            let mut resp = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "a bearer token is required (Authorization: Bearer <token>)"}),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        let get = |body: fn(&Self) -> Response<Full<Bytes>>| {
            if req.method() == Method::GET || req.method() == Method::HEAD {
                body(self)
            } else {
                let mut resp = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": format!("{} takes GET", req.uri().path())}),
                );
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                resp
            }
        };
        match req.uri().path() {
            "/health" => get(|_| json_response(StatusCode::OK, &json!({"status": "ok"}))),
            "/metrics" => get(Self::metrics),
            "/tree" => get(Self::tree),
            other => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no endpoint {other} (expected /health, /metrics or /tree)")}),
            ),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        given.as_bytes().ct_eq(token.as_bytes()).into()
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        use prometheus::Encoder as _;
        let encoder = prometheus::TextEncoder::new();
        let mut buf = Vec::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": e.to_string()}),
            );
        }
        let mut resp = Response::new(Full::new(Bytes::from(buf)));
        if let Ok(v) = HeaderValue::from_str(encoder.format_type()) {
            resp.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        resp
    }

    fn tree(&self) -> Response<Full<Bytes>> {
        match self.root.get() {
            Some(root) => json_response(StatusCode::OK, &node(root)),
            None => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "the supervision tree is starting"}),
            ),
        }
    }
}

/// One actor and its children, sorted by name (ractor keeps no order).
fn node(cell: &ActorCell) -> Value {
    let mut children = cell.get_children();
    children.sort_by_key(|c| c.get_name());
    json!({
        "name": cell.get_name(),
        "status": format!("{:?}", cell.get_status()),
        "children": children.iter().map(node).collect::<Vec<_>>(),
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
