//! `access`, `cors`, `basic_auth` and `forward_auth` → the gates a route
//! runs before its own middleware, in this order: the address rules
//! (cheapest, and a denied client learns nothing more), CORS (a preflight
//! carries no credentials, so it is answered before any authentication,
//! and a 401 still gets its grants), then Basic, then forward
//! authentication. A route's own setting replaces its server's; each
//! server's is compiled once and shared by its routes.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use http::{HeaderName, HeaderValue, Method};

use super::{
    access_schema::{AccessRule, BasicAuthSpec, CorsSpec, ForwardAuthSpec},
    locate::{Anchor, CompileError, err},
    proxy_schema::{ForwardedSpec, ProxySpec},
    schema::Config,
    schema::{Route, Server},
};
use crate::{
    client::ClientAddr,
    handler::Middleware,
    middleware::{
        access::{Access, Rule},
        basic_auth::{BasicAuth, Htpasswd},
        cors::{Cors, CorsLayer, Origin},
        forward_auth::ForwardAuth,
    },
};

/// What compiling the gates needs from the config compiler.
pub(super) struct GateCtx<'a> {
    /// Finds a request's client.
    pub client: &'a Arc<ClientAddr>,
    /// Where relative paths start.
    pub base: &'a Path,
    /// The config's upstream groups (forward auth asks one).
    pub upstreams: &'a crate::proxy::Upstreams,
}

type Gate = Option<Arc<dyn Middleware>>;

/// A server's gates, compiled once for the routes that keep them.
pub(super) struct ServerGates {
    access: Gate,
    cors: Option<Arc<Cors>>,
    basic: Gate,
    forward: Gate,
}

impl ServerGates {
    /// Compiles a server's settings.
    pub fn compile(server: &Server, ctx: &GateCtx<'_>) -> Result<Self, CompileError> {
        Ok(Self {
            access: access(server.access.as_deref(), ctx)?,
            cors: cors(server.cors.as_ref())?,
            basic: basic(server.basic_auth.as_ref(), ctx)?,
            forward: forward(server.forward_auth.as_ref(), ctx)?,
        })
    }

    /// The gates of `route`, in the order they run: its own settings,
    /// else its server's.
    pub fn for_route(&self, route: &Route, ctx: &GateCtx<'_>) -> Result<RouteGates, CompileError> {
        let access = match &route.access {
            Some(own) => access(Some(own), ctx)?,
            None => self.access.clone(),
        };
        let cors = match &route.cors {
            Some(own) => cors(Some(own))?,
            None => self.cors.clone(),
        };
        let basic = match &route.basic_auth {
            Some(own) => basic(Some(own), ctx)?,
            None => self.basic.clone(),
        };
        let forward = match &route.forward_auth {
            Some(own) => forward(Some(own), ctx)?,
            None => self.forward.clone(),
        };
        Ok(RouteGates {
            access,
            cors,
            auth: [basic, forward].into_iter().flatten().collect(),
        })
    }
}

/// A route's gates, until its methods are known.
pub(super) struct RouteGates {
    access: Gate,
    cors: Option<Arc<Cors>>,
    auth: Vec<Arc<dyn Middleware>>,
}

impl RouteGates {
    /// The route's methods and its gates, in the order they run. A CORS
    /// route that names its methods (or whose handler does, as `Static`)
    /// takes `OPTIONS` too, or routing would answer its preflights 405;
    /// an `OPTIONS` that is no preflight still gets that 405.
    pub fn finish(
        self,
        mut methods: Option<Vec<Method>>,
    ) -> (Option<Vec<Method>>, Vec<Arc<dyn Middleware>>) {
        let cors = self.cors.map(|cors| {
            let refuse_options = match &mut methods {
                Some(list) if !list.contains(&Method::OPTIONS) => {
                    let allow: Vec<&str> = list.iter().map(Method::as_str).collect();
                    let allow = HeaderValue::from_str(&allow.join(", ")).ok();
                    list.push(Method::OPTIONS);
                    allow
                }
                _ => None,
            };
            Arc::new(CorsLayer {
                cors,
                refuse_options,
            }) as Arc<dyn Middleware>
        });
        let chain = [self.access, cors]
            .into_iter()
            .flatten()
            .chain(self.auth)
            .collect();
        (methods, chain)
    }
}

fn access(rules: Option<&[AccessRule]>, ctx: &GateCtx<'_>) -> Result<Gate, CompileError> {
    let Some(rules) = rules.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let rules = rules
        .iter()
        .map(|r| {
            let (allow, text) = match r {
                AccessRule::Allow(t) => (true, t),
                AccessRule::Deny(t) => (false, t),
            };
            Rule::parse(allow, text).map_err(|message| CompileError {
                message,
                anchor: Anchor::str(text),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Arc::new(Access::new(rules, ctx.client.clone()))))
}

fn cors(spec: Option<&CorsSpec>) -> Result<Option<Arc<Cors>>, CompileError> {
    let Some(spec) = spec.filter(|s| s.enabled) else {
        return Ok(None);
    };
    if spec.origins.is_empty() {
        return err(
            Anchor::Key {
                key: "origins",
                nth: 0,
            },
            "`cors` has no `origins` (expected at least one, such as \"https://app.example.com\", or `enabled: false`)",
        );
    }
    let any = spec.origins.iter().any(|o| o == "*");
    if any && spec.credentials {
        return err(
            Anchor::str("*"),
            "`cors` allows any origin (\"*\") with `credentials: true`, which would let every site read answers made with its visitors' cookies (expected the origins listed)",
        );
    }
    let origins = if any {
        None
    } else {
        Some(
            spec.origins
                .iter()
                .map(|o| {
                    Origin::parse(o).map_err(|message| CompileError {
                        message,
                        anchor: Anchor::str(o),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let methods = if spec.methods.iter().any(|m| m == "*") {
        None
    } else {
        Some(
            spec.methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.as_bytes())
                        .ok()
                        .filter(|_| !m.is_empty())
                        .ok_or_else(|| CompileError {
                            message: format!(
                                "invalid method `{m}` in `cors` (expected a token such as PUT, or \"*\")"
                            ),
                            anchor: Anchor::str(m),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let names = |list: &[String], what: &str| {
        list.iter()
            .map(|h| {
                HeaderName::try_from(h.as_str()).map_err(|_| CompileError {
                    message: format!(
                        "invalid header name `{h}` in `cors` `{what}` (expected a token such as `x-request-id`)"
                    ),
                    anchor: Anchor::str(h),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let headers = if spec.headers.iter().any(|h| h == "*") {
        None
    } else {
        Some(names(&spec.headers, "headers")?)
    };
    if spec.credentials && spec.expose.iter().any(|h| h == "*") {
        return err(
            Anchor::Key {
                key: "expose",
                nth: 0,
            },
            "`expose: [\"*\"]` with `credentials: true` exposes nothing: browsers read it as a header named `*` (expected the header names)",
        );
    }
    let expose = names(&spec.expose, "expose")?;
    let expose = (!expose.is_empty())
        .then(|| {
            let joined: Vec<&str> = expose.iter().map(HeaderName::as_str).collect();
            HeaderValue::from_str(&joined.join(", ")).ok()
        })
        .flatten();
    Ok(Some(Arc::new(Cors {
        origins,
        methods,
        headers,
        credentials: spec.credentials,
        max_age: spec.max_age,
        expose,
    })))
}

fn basic(spec: Option<&BasicAuthSpec>, ctx: &GateCtx<'_>) -> Result<Gate, CompileError> {
    let Some(spec) = spec.filter(|s| s.enabled) else {
        return Ok(None);
    };
    if spec.htpasswd.as_os_str().is_empty() {
        return err(
            Anchor::Key {
                key: "basic_auth",
                nth: 0,
            },
            "`basic_auth` has no `htpasswd` file (expected e.g. `htpasswd: \"admin.htpasswd\"`, or `enabled: false`)",
        );
    }
    let anchor = Anchor::str(&spec.htpasswd.to_string_lossy());
    let users = Htpasswd::load(&ctx.base.join(&spec.htpasswd)).map_err(|message| CompileError {
        message,
        anchor: anchor.clone(),
    })?;
    if users.is_empty() {
        tracing::warn!(file = %spec.htpasswd.display(), "htpasswd file has no users: every request to its routes gets 401");
    }
    let auth = BasicAuth::new(users, &spec.realm).ok_or_else(|| CompileError {
        message: format!(
            "invalid realm `{}` (expected text without control characters)",
            spec.realm
        ),
        anchor: Anchor::str(&spec.realm),
    })?;
    Ok(Some(Arc::new(auth)))
}

fn forward(spec: Option<&ForwardAuthSpec>, ctx: &GateCtx<'_>) -> Result<Gate, CompileError> {
    let Some(spec) = spec.filter(|s| s.enabled) else {
        return Ok(None);
    };
    if spec.upstream.is_empty() {
        return err(
            Anchor::Key {
                key: "forward_auth",
                nth: 0,
            },
            "`forward_auth` has no `upstream` (expected the name of the auth service's group in `upstreams`, or `enabled: false`)",
        );
    }
    let uri = spec
        .uri
        .starts_with('/')
        .then(|| spec.uri.parse::<http::uri::PathAndQuery>().ok())
        .flatten()
        .ok_or_else(|| CompileError {
            message: format!(
                "invalid `uri` `{}` for `forward_auth` (expected a path such as \"/verify\", with a query if need be)",
                spec.uri
            ),
            anchor: Anchor::str(&spec.uri),
        })?;
    let copy = spec
        .copy_headers
        .iter()
        .map(|h| {
            HeaderName::try_from(h.as_str()).map_err(|_| CompileError {
                message: format!(
                    "invalid header name `{h}` in `copy_headers` (expected a token such as `x-user`)"
                ),
                anchor: Anchor::str(h),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let proxy = super::upstreams::compile_proxy(
        &ProxySpec {
            upstream: spec.upstream.clone(),
            host: spec.host.clone(),
            upgrades: Vec::new(),
            forwarded: ForwardedSpec::All,
        },
        ctx.upstreams,
        &spec.uri,
    )?;
    Ok(Some(Arc::new(ForwardAuth::new(
        proxy,
        uri,
        copy,
        &spec.upstream,
    ))))
}

/// The htpasswd files `config` reads (resolved against `base`), which a
/// change to reloads it.
pub fn htpasswd_files(config: &Config, base: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config
        .servers
        .iter()
        .flat_map(|s| {
            s.basic_auth
                .iter()
                .chain(s.routes.iter().filter_map(|r| r.basic_auth.as_ref()))
        })
        .filter(|b| b.enabled && !b.htpasswd.as_os_str().is_empty())
        .map(|b| base.join(&b.htpasswd))
        .collect();
    files.sort();
    files.dedup();
    files
}
