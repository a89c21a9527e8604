//! Schema → snapshot, checking meaning on the way (P3.3).
//!
//! There is no second "runtime config": each part of the schema becomes the
//! object that serves it (a handler, a route table, a server index), and a
//! failure names the literal it is about so [`super::locate`] can point at it.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;

use super::{
    locate::{Anchor, CompileError, err, unknown},
    schema::{self, Config, HandlerSpec, MiddlewareSpec, WebSocketSpec},
};
use crate::{
    handler::{Handler, Middleware},
    handlers,
    middleware::{AddHeaders, RequireHeader, SetHeaders},
    modules::{
        ModuleEntry, ModuleUse, Role, Slot,
        route::{ModuleFilter, ModuleHandler, ModuleLogger},
        ws::{WsHandler, WsSettings},
    },
    pipeline::{
        log_hook::LogHook,
        routes::{CountedModule, Route, RouteError, RouteTable},
        server_routing::{Recover, ServerRouting},
        snapshot::{RequestLimits, Snapshot},
        vhost::{Server, Servers},
    },
};

/// What routes need while compiling: where relative paths start, each
/// module by name, and the uses of modules found so far.
struct Ctx<'a> {
    base: &'a Path,
    upstreams: &'a crate::proxy::Upstreams,
    modules: HashMap<&'a str, &'a Arc<ModuleEntry>>,
    uses: RefCell<Vec<ModuleUse>>,
    zones: super::limits::ZoneMap,
    caches: super::caches::CacheMap,
    client: Arc<crate::client::ClientAddr>,
    locate: &'a dyn Fn(&Anchor) -> String,
}

impl Ctx<'_> {
    /// The slot of the module `name`, used as `role` at `at`: refused if
    /// its runtime cannot take the role, or its hooks are known and lack
    /// the one the role needs. Each use is kept for `troupe -t`, which
    /// checks the others once it has loaded their code.
    fn use_module(&self, name: &str, role: Role, at: &Anchor) -> Result<Arc<Slot>, CompileError> {
        let entry = self.entry(name)?;
        let used = ModuleUse {
            module: name.to_owned(),
            role,
            at: (self.locate)(at),
        };
        if let Some(message) = used.problem(entry.runtime, entry.hooks) {
            return err(at.clone(), message);
        }
        self.uses.borrow_mut().push(used);
        Ok(entry.slot.clone())
    }

    fn entry(&self, name: &str) -> Result<&Arc<ModuleEntry>, CompileError> {
        self.modules
            .get(name)
            .copied()
            .ok_or_else(|| unknown("module", name, "modules", self.modules.keys()))
    }
}

/// Checks and compiles a parsed config. Relative paths resolve against `base`.
/// `previous` are the running config's modules, to reuse where unchanged
/// (none at start-up); `locate` gives an anchor's `file:line:col`.
pub(super) fn compile(
    cfg: &Config,
    base: &Path,
    previous: &[Arc<ModuleEntry>],
    carry: &super::Carry,
    locate: &dyn Fn(&Anchor) -> String,
) -> Result<Compiled, CompileError> {
    if cfg.listen.is_empty() {
        return err(
            Anchor::Key {
                key: "listen",
                nth: 0,
            },
            "`listen` is empty (expected at least one address, e.g. \"127.0.0.1:8080\")",
        );
    }
    for (i, l) in cfg.listen.iter().enumerate() {
        if cfg.listen[..i]
            .iter()
            .any(|other| other.addr == l.addr && (other.tls, other.mode) != (l.tls, l.mode))
        {
            return err(
                Anchor::Key {
                    key: "listen",
                    nth: 0,
                },
                format!(
                    "`{}` is listed twice with different options (expected each address once; with port 0, use another IP for the second)",
                    l.addr
                ),
            );
        }
    }
    if cfg.servers.is_empty() {
        return err(
            Anchor::Key {
                key: "servers",
                nth: 0,
            },
            "`servers` is empty (expected at least one server block)",
        );
    }
    let defaults: Vec<usize> = (0..cfg.servers.len())
        .filter(|&i| cfg.servers[i].default)
        .collect();
    if defaults.len() > 1 {
        return err(
            Anchor::Key {
                key: "default",
                nth: 1,
            },
            "more than one server has `default: true` (expected at most one)",
        );
    }
    let declared_at = |name: &str| locate(&Anchor::str(name));
    let modules = super::modules::compile_modules(cfg, base, previous, &declared_at)?;
    let upstreams = super::upstreams::compile_upstreams(cfg, base, &carry.upstreams)?;
    let ctx = Ctx {
        base,
        upstreams: &upstreams,
        modules: modules.iter().map(|m| (m.name.as_str(), m)).collect(),
        uses: RefCell::default(),
        zones: super::limits::compile_zones(cfg, &carry.zones)?,
        caches: super::caches::compile_cache_zones(cfg, base, &carry.caches)?,
        client: Arc::new(crate::client::ClientAddr::new(
            (*upstreams.trusted).clone(),
            cfg.client_ip_header,
        )),
        locate,
    };
    let default = defaults.first().copied().unwrap_or(0);
    let super::tls::CompiledTls { certs, https } = super::tls::compile_tls(cfg, base, default)?;
    let mut https = https.into_iter();
    let mut seen_names = HashSet::new();
    let mut servers = Vec::with_capacity(cfg.servers.len());
    let mut loggers_seen = 0;
    for server in &cfg.servers {
        for name in &server.names {
            check_server_name(name)?;
            if !seen_names.insert(name.to_ascii_lowercase()) {
                return err(
                    Anchor::Str {
                        value: name.clone(),
                        nth: 1,
                    },
                    format!(
                        "server name `{name}` is used by two servers (expected each name once)"
                    ),
                );
            }
        }
        let at = Anchor::Key {
            key: "loggers",
            nth: loggers_seen,
        };
        loggers_seen += usize::from(!server.loggers.is_empty());
        let loggers = server
            .loggers
            .iter()
            .map(|name| {
                let slot = ctx.use_module(name, Role::Logger, &at)?;
                Ok(Arc::new(ModuleLogger::new(slot)) as Arc<dyn LogHook>)
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        let error_pages = super::routing::error_pages(&server.error_pages, base)?;
        let rewrites = super::routing::rewrites(&server.rewrites)?;
        let reroutes = !rewrites.is_empty()
            || error_pages.is_some()
            || server.routes.iter().any(|r| {
                !r.error_pages.is_empty()
                    || matches!(&r.handler, HandlerSpec::Rewrite(_))
                    || matches!(&r.handler, HandlerSpec::Static(s) if !s.try_files.is_empty())
            });
        servers.push(Server {
            names: server.names.clone(),
            routes: compile_routes(server, &ctx)?,
            loggers: loggers.into(),
            https: https.next().unwrap_or_default(),
            routing: ServerRouting {
                reroutes,
                rewrites,
                error_pages: error_pages.map(|p| Arc::new(p) as Arc<dyn Recover>),
                log: super::routing::server_log(server.access_log.as_ref())?,
            },
        });
    }
    let snapshot = Snapshot {
        servers: Servers::new(servers, default),
        limits: RequestLimits {
            max_body_bytes: cfg.limits.max_body_bytes,
            body_timeout: cfg.limits.body_timeout,
        },
        client: ctx.client.clone(),
        custom_logs: cfg
            .servers
            .iter()
            .any(|s| s.access_log.as_ref().is_some_and(|l| l.format.is_some())),
    };
    let uses = ctx.uses.into_inner();
    Ok(Compiled {
        snapshot,
        modules,
        uses,
        certs,
        upstreams,
    })
}

/// What a config compiles into.
pub(super) struct Compiled {
    pub snapshot: Snapshot,
    pub modules: Vec<Arc<ModuleEntry>>,
    pub uses: Vec<ModuleUse>,
    pub certs: crate::tls::Certs,
    pub upstreams: crate::proxy::Upstreams,
}

fn check_server_name(name: &str) -> Result<(), CompileError> {
    let body = name.strip_prefix("*.").unwrap_or(name);
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(())
    } else {
        err(
            Anchor::str(name),
            format!(
                "invalid server name `{name}` (expected a host name such as `example.com` or `*.example.com`)"
            ),
        )
    }
}

fn compile_routes(server: &schema::Server, ctx: &Ctx<'_>) -> Result<RouteTable, CompileError> {
    let mut paths = Vec::new();
    let mut regexes = Vec::new();
    let label = server.names.first().map_or("_", String::as_str);
    let server_compression = super::compress::compile(server.compression.as_ref())?;
    let gate_ctx = super::access::GateCtx {
        client: &ctx.client,
        base: ctx.base,
        upstreams: ctx.upstreams,
    };
    let server_gates = super::access::ServerGates::compile(server, &gate_ctx)?;
    let server_pages = super::routing::error_pages(&server.error_pages, ctx.base)?;
    for r in &server.routes {
        // A module's use is pointed at by its route's pattern.
        let at = match (&r.path, &r.regex) {
            (Some(p), _) | (None, Some(p)) => Anchor::str(p),
            (None, None) => Anchor::Key {
                key: "handler",
                nth: 0,
            },
        };
        let mut handler = compile_handler(&r.handler, ctx, &at)?;
        if let Some(cache) = &r.cache {
            handler = super::caches::cached(handler, cache, &ctx.caches)?;
        }
        let mut middleware = r
            .middleware
            .iter()
            .map(|m| compile_middleware(m, ctx, &at))
            .collect::<Result<Vec<_>, _>>()?;
        let gates = server_gates.for_route(r, &gate_ctx)?;
        // First in the chain, so it sees what every other middleware
        // answered; a route's own setting replaces its server's.
        let compression = match &r.compression {
            Some(own) => super::compress::compile(Some(own))?,
            None => server_compression.clone(),
        };
        let compressed = compression.is_some();
        if let Some(compress) = compression {
            middleware.insert(0, compress);
        }
        if let Some(expires) =
            super::routing::expires(r.expires.as_ref().or(server.expires.as_ref()))?
        {
            middleware.insert(0, expires);
        }
        // Outermost, so a page replaces whatever the chain answered.
        match super::routing::error_pages(&r.error_pages, ctx.base)? {
            Some(own) => middleware.insert(0, Arc::new(own)),
            None => {
                if let Some(pages) = &server_pages {
                    middleware.insert(0, Arc::new(pages.clone()));
                }
            }
        }
        let (pattern, anchor) = match (&r.path, &r.regex) {
            (Some(p), None) => (p, Anchor::str(p)),
            (None, Some(re)) => (re, Anchor::str(re)),
            (Some(p), Some(_)) => {
                return err(
                    Anchor::str(p),
                    "a route has both `path` and `regex` (expected exactly one)",
                );
            }
            (None, None) => {
                return err(
                    Anchor::Key {
                        key: "handler",
                        nth: 0,
                    },
                    "a route has neither `path` nor `regex` (expected exactly one)",
                );
            }
        };
        let methods = match &r.methods {
            Some(list) => Some(parse_methods(list, &anchor)?),
            None => handler.default_methods().map(<[Method]>::to_vec),
        };
        // Access control after compression, before the route's own
        // middleware (config/access.rs).
        let (methods, gates) = gates.finish(methods);
        let first = usize::from(compressed);
        middleware.splice(first..first, gates);
        let describe: Arc<str> = match &r.handler {
            HandlerSpec::Static(_) => "Static".into(),
            HandlerSpec::Return(_) => "Return".into(),
            HandlerSpec::Redirect(_) => "Redirect".into(),
            HandlerSpec::Module(name) => format!("Module({name})").into(),
            HandlerSpec::Proxy(p) => format!("Proxy({})", p.upstream).into(),
            HandlerSpec::WebSocket(w) => format!("WebSocket({})", w.module).into(),
            HandlerSpec::Rewrite(_) => "Rewrite".into(),
        };
        let (limits, after_filters) = super::limits::route_limits(
            &server.rate_limits,
            &r.rate_limits,
            &ctx.zones,
            pattern,
            label,
            &ctx.client,
            r.middleware
                .iter()
                .any(|m| matches!(m, MiddlewareSpec::Module(_))),
            &anchor,
        )?;
        // Zones keyed by a module's choice: checked last, once every
        // filter of the route had its say.
        let middleware: Vec<_> = middleware.into_iter().chain(after_filters).collect();
        let route = Route {
            pattern: pattern.as_str().into(),
            limits,
            methods,
            middleware: middleware.into(),
            handler,
            describe,
            module: match &r.handler {
                HandlerSpec::Module(name)
                | HandlerSpec::WebSocket(WebSocketSpec { module: name, .. }) => {
                    Some(ctx.entry(name)?.slot.clone() as Arc<dyn CountedModule>)
                }
                _ => None,
            },
            metrics: Default::default(),
        };
        match (&r.path, &r.regex) {
            (Some(p), _) => {
                if !p.starts_with('/') {
                    return err(anchor, format!("route path `{p}` must start with `/`"));
                }
                paths.push(route);
            }
            (_, Some(re)) => {
                let compiled = Regex::new(re).map_err(|e| CompileError {
                    message: format!("invalid regex `{re}`: {}", one_line(&e.to_string())),
                    anchor: anchor.clone(),
                })?;
                regexes.push((compiled, route));
            }
            _ => unreachable!("checked above"),
        }
    }
    RouteTable::build(paths, regexes).map_err(|e| match &e {
        RouteError::Duplicate(p) => CompileError {
            message: e.to_string(),
            anchor: Anchor::Str {
                value: p.clone(),
                nth: 1,
            },
        },
        RouteError::Path { pattern, .. } => CompileError {
            message: e.to_string(),
            anchor: Anchor::str(pattern),
        },
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_methods(list: &[String], anchor: &Anchor) -> Result<Vec<Method>, CompileError> {
    let mut out = Vec::new();
    for m in list {
        let method = Method::from_bytes(m.as_bytes())
            .ok()
            .filter(|_| m.bytes().all(|b| b.is_ascii_uppercase()))
            .ok_or_else(|| CompileError {
                message: format!("invalid method `{m}` (expected an upper-case token such as GET)"),
                anchor: anchor.clone(),
            })?;
        out.push(method);
    }
    // As in nginx, a route that answers GET answers HEAD too.
    if out.contains(&Method::GET) && !out.contains(&Method::HEAD) {
        out.push(Method::HEAD);
    }
    Ok(out)
}

fn compile_handler(
    spec: &HandlerSpec,
    ctx: &Ctx<'_>,
    at: &Anchor,
) -> Result<Arc<dyn Handler>, CompileError> {
    let base = ctx.base;
    Ok(match spec {
        HandlerSpec::Return(r) => {
            let status = status(
                r.status,
                &Anchor::Key {
                    key: "status",
                    nth: 0,
                },
            )?;
            let headers = header_list(&r.headers)?;
            Arc::new(handlers::ret::Return::new(status, headers, &r.body))
        }
        #[cfg(feature = "handler-static")]
        HandlerSpec::Static(s) => {
            let root = base.join(&s.root);
            let anchor = Anchor::str(&s.root.to_string_lossy());
            if !root.is_dir() {
                return err(
                    anchor,
                    format!(
                        "static root `{}` does not exist or is not a directory (expected an existing directory; relative paths start at {})",
                        s.root.display(),
                        base.display()
                    ),
                );
            }
            let limits = handlers::static_files::CacheLimits {
                max_file_bytes: s.cache_max_file_bytes,
                total_bytes: s.cache_total_bytes,
                max_entries: 100_000,
            };
            let files = handlers::static_files::StaticFiles::new(
                root,
                s.index.clone(),
                s.follow_symlinks_outside_root,
                limits,
            )
            .map_err(|e| CompileError {
                message: format!("static root `{}`: {e}", s.root.display()),
                anchor,
            })?
            .with_precompressed(
                s.precompressed
                    .iter()
                    .map(|&a| super::compress::encoding(a))
                    .collect(),
            );
            super::routing::try_files(files, &s.try_files)?
        }
        #[cfg(not(feature = "handler-static"))]
        HandlerSpec::Static(s) => {
            let _ = base;
            return err(
                Anchor::str(&s.root.to_string_lossy()),
                "the `Static` handler is not compiled in (build with feature `handler-static`)",
            );
        }
        #[cfg(feature = "handler-redirect")]
        HandlerSpec::Redirect(r) => {
            let anchor = Anchor::str(&r.to);
            let status = status(r.status, &anchor)?;
            Arc::new(
                handlers::redirect::Redirect::new(status, &r.to)
                    .map_err(|message| CompileError { message, anchor })?,
            )
        }
        #[cfg(not(feature = "handler-redirect"))]
        HandlerSpec::Redirect(r) => {
            return err(
                Anchor::str(&r.to),
                "the `Redirect` handler is not compiled in (build with feature `handler-redirect`)",
            );
        }
        HandlerSpec::Module(name) => Arc::new(ModuleHandler::new(ctx.use_module(
            name,
            Role::Handler,
            at,
        )?)),
        HandlerSpec::Proxy(p) => {
            // The route's pattern, for the log line of a bad module choice.
            let route = match at {
                Anchor::Str { value, .. } => value.as_str(),
                _ => "",
            };
            Arc::new(super::upstreams::compile_proxy(p, ctx.upstreams, route)?)
        }
        HandlerSpec::Rewrite(to) => Arc::new(handlers::rewrite::Rewrite::new(to).map_err(
            |message| CompileError {
                message,
                anchor: Anchor::str(to),
            },
        )?),
        HandlerSpec::WebSocket(w) => Arc::new(WsHandler::new(
            ctx.use_module(&w.module, Role::WebSocket, at)?,
            WsSettings {
                max_message: w.max_message_bytes,
                max_frame: w.max_frame_bytes,
                queue: w.send_queue,
                reload_drain: w.reload_drain,
                idle_timeout: (!w.idle_timeout.is_zero()).then_some(w.idle_timeout),
            },
        )),
    })
}

fn compile_middleware(
    spec: &MiddlewareSpec,
    ctx: &Ctx<'_>,
    at: &Anchor,
) -> Result<Arc<dyn Middleware>, CompileError> {
    Ok(match spec {
        MiddlewareSpec::Module(name) => Arc::new(ModuleFilter::new(ctx.use_module(
            name,
            Role::Middleware,
            at,
        )?)),
        MiddlewareSpec::SetHeaders(map) => Arc::new(SetHeaders(header_list(map)?.into())),
        MiddlewareSpec::AddHeaders { headers, always } => Arc::new(AddHeaders {
            headers: header_list(headers)?.into(),
            always: *always,
        }),
        MiddlewareSpec::RequireHeader {
            header,
            value,
            status: code,
        } => {
            let anchor = Anchor::str(header);
            let name = HeaderName::try_from(header.as_str()).map_err(|_| CompileError {
                message: format!("invalid header name `{header}`"),
                anchor: anchor.clone(),
            })?;
            let value = match value {
                Some(v) => Some(HeaderValue::try_from(v.as_str()).map_err(|_| CompileError {
                    message: format!("invalid header value for `{header}`"),
                    anchor: anchor.clone(),
                })?),
                None => None,
            };
            Arc::new(RequireHeader {
                header: name,
                value,
                status: status(*code, &anchor)?,
            })
        }
    })
}

fn status(code: u16, anchor: &Anchor) -> Result<StatusCode, CompileError> {
    StatusCode::from_u16(code)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| CompileError {
            message: format!("invalid status {code} (expected a number from 200 to 999)"),
            anchor: anchor.clone(),
        })
}

fn header_list(
    map: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, CompileError> {
    map.iter()
        .map(|(k, v)| {
            let anchor = Anchor::str(k);
            let name = HeaderName::try_from(k.as_str()).map_err(|_| CompileError {
                message: format!(
                    "invalid header name `{k}` (expected a token such as `content-type`)"
                ),
                anchor: anchor.clone(),
            })?;
            let value = HeaderValue::try_from(v.as_str()).map_err(|_| CompileError {
                message: format!(
                    "invalid value for header `{k}` (expected visible ASCII, no newlines)"
                ),
                anchor,
            })?;
            Ok((name, value))
        })
        .collect()
}
