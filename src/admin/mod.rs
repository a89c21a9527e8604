//! The admin API (P7.5): its own listener (`admin.<addr>` in the tree),
//! JSON answers, and a bearer token when one is configured.
//!
//! | endpoint        | answer                                             |
//! |-----------------|----------------------------------------------------|
//! | `GET /`         | the web page (`ui.rs`; no token needed to load it)  |
//! | `GET /health`   | `{"status":"ok"}`                                  |
//! | `GET /metrics`  | every series, Prometheus text format               |
//! | `GET /tree`     | the live supervision tree: name, kind, status, children; a plugin host's module generation and restarts |
//! | `GET /modules`  | each module: name, kind, status, instances loaded, restarts |
//! | `GET /routes`   | each server's names and routes, in match order     |
//! | `GET /config`   | the config in force, module configs and required header values redacted |
//! | `GET /config/status` | the config generation, reload counts, and the last reload: trigger, time, changes or error |
//! | `POST /config/reload` | reload the config file: 200 with what changed, or 422 with the error (file:line:col) and nothing changed |
//! | `GET /upstreams` | each upstream group: its active check, and each backend: up or not, down by check (and the last probe's error), ejected, in flight, requests, connections |
//! | `GET /tls`      | each TLS server's certificate: names, files, not-after, days left, the last reload's error for it |
//! | `POST /tls/reload` | read the certificate files again: 200 with what changed, or 422 naming each refused file and why (its server keeps its old certificate) |
//! | `POST /modules/{name}/reload` | a new instance swapped in (old keeps serving if it fails: 409) |
//! | `POST /modules/{name}/disable`, `…/enable` | its routes answer 503 until enabled |
//!
//! Before anything else, `guard.rs` refuses what a web page could send:
//! a `Host` or `Origin` that is not the admin API's own (403), and a POST
//! without `Content-Type: application/json` (415). A missing or wrong
//! token gets 401 (logged with the peer; repeated wrong ones are answered
//! slowly, then 429), an unknown path 404, another method 405 with
//! `Allow`. At most 16 admin connections are open at once (more are
//! closed). The admin connections never touch the request path's state.

mod guard;
mod purge;
mod ui;

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use troupe_actors::{AdminApp, ConnShutdown, Node, TreeHandle};

use crate::{
    config::{AdminSpec, schema::AtConnectionCap},
    conn::caps::{CapLimits, Caps},
    generation::Generation,
    modules::ModuleEntry,
    tls::LiveCerts,
};

/// How long an admin client may take to send a request head.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an admin client may take to send a request body, from the
/// end of its head: a POST that never finishes must not hold one of the
/// few admin connections (nginx's `client_body_timeout` is per read; a
/// whole body here is at most [`MAX_BODY`]).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Open admin connections (16); more are closed at once, so that a flood
/// of them cannot take the descriptors the operator needs to get in.
const CAPS: CapLimits = CapLimits {
    max: 16,
    per_ip: None,
    at_cap: AtConnectionCap::Close,
};

/// The admin endpoints, matched by path (`matchit`, as routes are).
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Health,
    Metrics,
    Tree,
    Modules,
    Routes,
    Config,
    ConfigStatus,
    ConfigReload,
    Tls,
    TlsReload,
    Upstreams,
    /// `/modules/{name}/{action}`.
    Module,
    CachePurge,
}

impl Endpoint {
    const ALL: [(&'static str, Endpoint); 13] = [
        ("/health", Endpoint::Health),
        ("/metrics", Endpoint::Metrics),
        ("/tree", Endpoint::Tree),
        ("/modules", Endpoint::Modules),
        ("/routes", Endpoint::Routes),
        ("/config", Endpoint::Config),
        ("/config/status", Endpoint::ConfigStatus),
        ("/config/reload", Endpoint::ConfigReload),
        ("/tls", Endpoint::Tls),
        ("/tls/reload", Endpoint::TlsReload),
        ("/upstreams", Endpoint::Upstreams),
        ("/modules/{name}/{action}", Endpoint::Module),
        ("/cache/purge", Endpoint::CachePurge),
    ];

    fn table() -> matchit::Router<Endpoint> {
        let mut table = matchit::Router::new();
        for (path, endpoint) in Self::ALL {
            // The paths above are fixed and distinct.
            let _ = table.insert(path, endpoint);
        }
        table
    }

    /// The method it answers (GET also answers HEAD).
    fn method(self) -> Method {
        match self {
            Endpoint::ConfigReload
            | Endpoint::TlsReload
            | Endpoint::Module
            | Endpoint::CachePurge => Method::POST,
            _ => Method::GET,
        }
    }

    /// Its `Allow` header.
    fn allow(self) -> &'static str {
        match self.method() {
            Method::POST => "POST",
            _ => "GET, HEAD",
        }
    }
}

/// What the admin endpoints read.
pub struct Admin {
    token: Option<String>,
    guard: guard::Guard,
    registry: prometheus::Registry,
    /// The generation in force: routes, config and modules, read
    /// together (a reload replaces it whole).
    generation: Arc<arc_swap::ArcSwap<Generation>>,
    endpoints: matchit::Router<Endpoint>,
    /// The supervision tree's control handle, made before the tree.
    tree: TreeHandle,
    /// The certificates in force, for `GET /tls`.
    certs: Arc<LiveCerts>,
    /// Open connections, capped by `CAPS` (as the request path's are).
    conns: Arc<Caps>,
}

impl Admin {
    /// The admin API over `registry`, the published routes, the config
    /// in force and the handle of the tree it runs in.
    pub fn new(
        spec: &AdminSpec,
        registry: prometheus::Registry,
        generation: Arc<arc_swap::ArcSwap<Generation>>,
        tree: TreeHandle,
        certs: Arc<LiveCerts>,
    ) -> Arc<Self> {
        Arc::new(Self {
            token: spec.token.clone(),
            guard: guard::Guard::new(spec),
            registry,
            generation,
            endpoints: Endpoint::table(),
            tree,
            certs,
            conns: Arc::default(),
        })
    }

    /// The listener-side seam: serves each connection with HTTP/1.1.
    pub fn app(self: &Arc<Self>) -> AdminApp {
        let admin = self.clone();
        AdminApp::new(move |stream, peer, shutdown| {
            let Ok(place) = admin.conns.admit(Some(peer.ip()), &CAPS) else {
                tracing::warn!(%peer, max = CAPS.max, "admin API: too many connections; closing this one");
                return Box::pin(std::future::ready(()));
            };
            place.hold(admin.clone().serve(stream, peer, shutdown))
        })
    }

    async fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, shutdown: ConnShutdown) {
        // The address the client reached: what `Host` must name.
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let service = service_fn(move |req| {
            let admin = self.clone();
            async move { Ok::<_, std::convert::Infallible>(admin.answer(req, peer, local).await) }
        });
        // A client that never finishes its head (or idles between
        // requests) is dropped: the admin port must not be slowloris bait.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
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

    async fn answer(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let (req, body) = req.into_parts();
        if let Err(refused) = self.guard.admit(&req, local) {
            tracing::warn!(%peer, path = req.uri.path(), reason = refused.message(), "admin API: request refused");
            let status = match refused {
                guard::Refusal::NoHost => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            return json_response(status, &json!({"error": refused.message()}));
        }
        let is_get = req.method == Method::GET || req.method == Method::HEAD;
        if is_get && let Some(page) = ui::asset(req.uri.path()) {
            return page;
        }
        if !self.authorized(&req) {
            tracing::warn!(%peer, path = req.uri.path(), "admin API: missing or wrong token");
            // A token that was sent and is wrong is a guess: slowed down.
            if req.headers.contains_key(header::AUTHORIZATION)
                && let Err(wait) = self.guard.wrong_token(peer.ip()).await
            {
                let mut resp = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"error": "too many wrong tokens from this address; try again later"}),
                );
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs().max(1)),
                );
                return resp;
            }
            let mut resp = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "a bearer token is required (Authorization: Bearer <token>)"}),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        let path = req.uri.path();
        let Ok(found) = self.endpoints.at(path) else {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!(
                    "no endpoint {path} (expected /health, /metrics, /tree, /modules, /routes, /config, /config/status, /config/reload, /tls, /tls/reload, /upstreams, /cache/purge or /modules/{{name}}/reload|enable|disable)"
                )}),
            );
        };
        let endpoint = *found.value;
        let allowed = match endpoint.method() {
            Method::GET => is_get,
            method => req.method == method,
        };
        if !allowed {
            return wrong_method(path, endpoint.allow());
        }
        if req.method == Method::POST && !guard::is_json(&req.headers) {
            return json_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &json!({"error": format!("{path} takes Content-Type: application/json (an empty body is fine)")}),
            );
        }
        match endpoint {
            Endpoint::Health => json_response(StatusCode::OK, &json!({"status": "ok"})),
            Endpoint::Metrics => self.metrics(),
            Endpoint::Tree => self.tree(),
            Endpoint::Modules => self.modules(),
            Endpoint::Routes => self.routes(),
            Endpoint::Config => self.config(),
            Endpoint::ConfigStatus => self.config_status().await,
            Endpoint::ConfigReload => match empty_or_object(body).await {
                Ok(()) => self.reload_config().await,
                Err(refused) => refused,
            },
            Endpoint::Tls => self.tls(),
            Endpoint::Upstreams => {
                let live = self.generation.load();
                let groups: serde_json::Map<String, Value> = live
                    .upstreams
                    .groups
                    .iter()
                    .map(|(name, up)| (name.clone(), crate::proxy::health::status(up)))
                    .collect();
                json_response(StatusCode::OK, &Value::Object(groups))
            }
            Endpoint::TlsReload => match empty_or_object(body).await {
                Ok(()) => self.reload_tls().await,
                Err(refused) => refused,
            },
            Endpoint::CachePurge => match json_object(body).await {
                Ok(order) => {
                    let (status, answer) = purge::purge(&self.generation.load().caches, &order);
                    json_response(status, &answer)
                }
                Err(refused) => refused,
            },
            Endpoint::Module => {
                // The route names both parameters.
                let name = found.params.get("name").unwrap_or_default();
                let action = found.params.get("action").unwrap_or_default();
                match empty_or_object(body).await {
                    Ok(()) => self.module_action(name, action).await,
                    Err(refused) => refused,
                }
            }
        }
    }

    fn modules(&self) -> Response<Full<Bytes>> {
        let live = self.generation.load();
        let list: Vec<Value> = live
            .modules
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "kind": m.runtime.language(),
                    "status": m.slot.status(),
                    "loads": m.slot.loads(),
                    "restarts": m.slot.metrics().map(|s| s.restarts.get()),
                })
            })
            .collect();
        json_response(StatusCode::OK, &Value::Array(list))
    }

    async fn reload_config(&self) -> Response<Full<Bytes>> {
        match self.tree.reload_config(troupe_actors::Trigger::Admin).await {
            Ok(applied) => json_response(
                StatusCode::OK,
                &json!({"reloaded": true, "generation": applied.generation, "changes": applied.changes}),
            ),
            // Not the client's request that is wrong, but the file it asked
            // to load: 422, with where.
            Err(error) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"reloaded": false, "error": error}),
            ),
        }
    }

    fn tls(&self) -> Response<Full<Bytes>> {
        let last = self.certs.last_reload().map(|(at, trigger)| {
            let at = at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            json!({"at": at, "trigger": trigger})
        });
        json_response(
            StatusCode::OK,
            &json!({"servers": self.certs.status(), "last_reload": last}),
        )
    }

    async fn reload_tls(&self) -> Response<Full<Bytes>> {
        match self.tree.reload_certs(troupe_actors::Trigger::Admin).await {
            Ok(changes) => json_response(
                StatusCode::OK,
                &json!({"reloaded": true, "changes": changes}),
            ),
            // The files asked for are unusable, not the request: 422, as
            // for a config reload.
            Err(error) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"reloaded": false, "error": error}),
            ),
        }
    }

    async fn config_status(&self) -> Response<Full<Bytes>> {
        let Some(status) = self.tree.config_status().await else {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "the config actor did not answer"}),
            );
        };
        let last = status.last.map(|o| {
            let at =
                o.at.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default();
            let mut v = json!({
                "trigger": o.trigger.as_str(),
                "at_unix": at,
                "took_ms": o.took.as_secs_f64() * 1e3,
            });
            match o.result {
                Ok(applied) => {
                    v["ok"] = json!(true);
                    v["changes"] = json!(applied.changes);
                }
                Err(error) => {
                    v["ok"] = json!(false);
                    v["error"] = json!(error);
                }
            }
            v
        });
        json_response(
            StatusCode::OK,
            &json!({
                "generation": status.generation,
                "reloads": status.applied,
                "failures": status.refused,
                "last": last,
            }),
        )
    }

    fn routes(&self) -> Response<Full<Bytes>> {
        let generation = self.generation.load();
        let servers: Vec<Value> = generation
            .snapshot
            .servers
            .iter()
            .map(|(server, default)| {
                let routes: Vec<Value> = server
                    .routes
                    .routes()
                    .iter()
                    .map(|r| {
                        json!({
                            "pattern": &*r.pattern,
                            "methods": r.methods.as_ref().map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
                            "handler": &*r.describe,
                            "middleware": r.middleware.len(),
                        })
                    })
                    .collect();
                json!({"names": server.names, "default": default, "routes": routes})
            })
            .collect();
        json_response(StatusCode::OK, &Value::Array(servers))
    }

    fn config(&self) -> Response<Full<Bytes>> {
        match serde_json::to_value(&self.generation.load().config) {
            Ok(mut value) => {
                redact(&mut value);
                json_response(StatusCode::OK, &value)
            }
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": e.to_string()}),
            ),
        }
    }

    /// One actor and its children, sorted by name: its kind, from its
    /// name, and for a plugin host its module's generation and restarts.
    fn node(&self, actor: &Node) -> Value {
        let name = actor.name.as_str();
        let kind = match name.split('.').next().unwrap_or_default() {
            "troupe" => "root",
            "plugin" => "plugin-host",
            "modules" | "listeners" => "supervisor",
            other => other,
        };
        let mut node = json!({
            "name": name,
            "kind": kind,
            "status": format!("{:?}", actor.status),
            "children": actor.children.iter().map(|c| self.node(c)).collect::<Vec<_>>(),
        });
        if let Some(module) = name.strip_prefix("plugin.")
            && let Some(m) = self.generation.load().module(module)
        {
            node["module"] = json!({
                "status": m.slot.status(),
                "generation": m.slot.loads(),
                "restarts": m.slot.metrics().map(|s| s.restarts.get()),
            });
        }
        node
    }

    async fn module_action(&self, name: &str, action: &str) -> Response<Full<Bytes>> {
        let live = self.generation.load_full();
        let Some(slot) = live.module(name).map(|m: &Arc<ModuleEntry>| m.slot.clone()) else {
            let names: Vec<&str> = live.modules.iter().map(|m| m.name.as_str()).collect();
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no module named `{name}`"), "modules": names}),
            );
        };
        let (status, body) = match action {
            "reload" => match self.tree.reload_module(name).await {
                Ok(()) => {
                    tracing::info!(
                        module = name,
                        loads = slot.loads(),
                        "admin API: module reloaded"
                    );
                    (
                        StatusCode::OK,
                        json!({"module": name, "reloaded": true, "loads": slot.loads()}),
                    )
                }
                Err(why) => {
                    tracing::warn!(module = name, error = %why, "admin API: reload refused; the old instance keeps serving");
                    (StatusCode::CONFLICT, json!({"module": name, "error": why}))
                }
            },
            "disable" => {
                let changed = slot.disable();
                tracing::info!(module = name, changed, "admin API: module disabled");
                (
                    StatusCode::OK,
                    json!({"module": name, "status": slot.status(), "changed": changed}),
                )
            }
            "enable" => {
                let changed = slot.enable();
                tracing::info!(module = name, changed, "admin API: module enabled");
                (
                    StatusCode::OK,
                    json!({"module": name, "status": slot.status(), "changed": changed}),
                )
            }
            other => (
                StatusCode::NOT_FOUND,
                json!({"error": format!("no action `{other}` (expected reload, enable or disable)")}),
            ),
        };
        json_response(status, &body)
    }

    fn authorized(&self, req: &http::request::Parts) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers
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
        json_response(StatusCode::OK, &self.node(&self.tree.walk()))
    }
}

/// What a config may hold that a reader of the admin API must not see:
/// each module's own config (API keys, passwords) and the values
/// `RequireHeader` middleware demands.
fn redact(value: &mut Value) {
    const HIDDEN: &str = "<redacted>";
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(modules)) = map.get_mut("modules") {
                for m in modules {
                    if let Some(c) = m.get_mut("config").filter(|c| !c.is_null()) {
                        *c = Value::from(HIDDEN);
                    }
                }
            }
            if let Some(Value::Object(req)) = map.get_mut("RequireHeader")
                && let Some(v) = req.get_mut("value").filter(|v| !v.is_null())
            {
                *v = Value::from(HIDDEN);
            }
            for v in map.values_mut() {
                redact(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The largest body a POST may carry.
const MAX_BODY: usize = 64 * 1024;

/// A POST body of an endpoint without parameters must be empty or a JSON
/// object (room for options later); anything else is refused rather than
/// silently ignored.
async fn empty_or_object(body: Incoming) -> Result<(), Response<Full<Bytes>>> {
    json_object(body).await.map(drop)
}

/// A POST body read as a JSON object (empty: an empty object).
async fn json_object(
    body: Incoming,
) -> Result<serde_json::Map<String, Value>, Response<Full<Bytes>>> {
    use http_body_util::BodyExt as _;
    let read = http_body_util::Limited::new(body, MAX_BODY).collect();
    let Ok(read) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        // Answered before the body ended, hyper closes the connection.
        return Err(json_response(
            StatusCode::REQUEST_TIMEOUT,
            &json!({"error": format!("the body did not arrive within {BODY_TIMEOUT:?}")}),
        ));
    };
    let bytes = match read {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": format!("the body is over {MAX_BODY} bytes")}),
            ));
        }
        Err(e) => {
            return Err(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("cannot read the body: {e}")}),
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes).map_err(|e| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("the body must be empty or a JSON object: {e}")}),
        )
    })
}

fn wrong_method(path: &str, allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": format!("{path} takes {allow}")}),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
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
