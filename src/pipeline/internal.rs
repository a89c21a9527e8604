//! Internal re-routing: the one way a request is routed again inside its
//! server with another URI, without the client seeing it (nginx's
//! internal redirect). `try_files` fallbacks, error pages and rewrites all
//! go through [`Internal::route`].
//!
//! A server that can re-route (it has rewrites, error pages, or a route
//! whose handler re-routes) gets an [`Internal`] in each request's
//! extensions when it is routed: the generation the request was routed on,
//! which server, and how many hops it has made. Servers without any of
//! these pay nothing. A request that re-routes more than [`MAX_HOPS`]
//! times answers 500, as nginx does after 10 ("rewrite or internal
//! redirection cycle").

use std::sync::Arc;

use http::Uri;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::{request::Request, routes::Match, vhost};
use crate::{
    error::HttpError,
    generation::Generation,
    handler::{HandlerFuture, Next},
    limit::Verdict,
};

/// Re-routes a request may make before it answers 500 (nginx's 10).
pub const MAX_HOPS: u8 = 10;

/// What a request needs to be routed again: carried in its extensions.
#[derive(Clone)]
pub struct Internal {
    generation: Arc<Generation>,
    server: usize,
    hops: u8,
    /// Set while an error page is served: its own failure gives the
    /// plain error, never another error page.
    pub(crate) in_error_page: bool,
    /// Set once a route's rate limits were checked: as nginx's
    /// `limit_req` decides once per request, the first route with limits
    /// that the request reaches (first routing or re-routed) counts it,
    /// and no later one counts it again.
    pub(crate) limited: bool,
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Internal")
            .field("server", &self.server)
            .field("hops", &self.hops)
            .finish()
    }
}

impl Internal {
    /// The re-routing context of a request routed to `server` of `generation`.
    pub(crate) fn new(generation: Arc<Generation>, server: usize) -> Self {
        Self {
            generation,
            server,
            hops: 0,
            in_error_page: false,
            limited: false,
        }
    }

    /// The server the request was routed to.
    fn server(&self) -> &vhost::Server {
        self.generation.snapshot.servers.get(self.server)
    }

    /// Routes `req` again inside its server with `target` (a path, with a
    /// query or not; a target without one keeps the request's query, as
    /// nginx does): its server's rewrites, then the route table, the
    /// route's rate limits (unless a route before counted the request),
    /// then the route's chain. Past [`MAX_HOPS`] hops: 500.
    pub fn route(mut self, req: Request, target: &str) -> HandlerFuture {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            tracing::warn!(
                uri = %req.uri(),
                target,
                "rewrite or internal redirection cycle"
            );
            return HandlerFuture::ready(Err(HttpError::Internal(
                "rewrite or internal redirection cycle".into(),
            )));
        }
        let uri = match with_query(target, req.query()) {
            Ok(uri) => uri,
            Err(e) => return HandlerFuture::ready(Err(e)),
        };
        let normalized = match super::path::normalize(uri.path()) {
            Ok(p) => p.into_owned(),
            Err(_) => return HandlerFuture::ready(Err(HttpError::BadRequest("invalid path"))),
        };
        let server = self.server();
        let (uri, normalized) = match server.routing.rewrite(&normalized, uri.query()) {
            Some(Ok((uri, path))) => (uri, path),
            Some(Err(e)) => return HandlerFuture::ready(Err(e)),
            None => (uri, normalized),
        };
        let method = req.method().clone();
        let (route, params) = match server.routes.lookup(&method, &normalized) {
            Match::Found { route, params } => (route, params),
            Match::WrongMethod { allow } => {
                return HandlerFuture::ready(Err(HttpError::MethodNotAllowed { allow }));
            }
            Match::NotFound => return HandlerFuture::ready(Err(HttpError::NotFound)),
        };
        let chain = Next::new(route.middleware.clone(), route.handler.clone());
        let verdict = (!route.limits.is_empty() && !self.limited)
            .then(|| crate::limit::check(&route.limits, req.peer().ip(), req.headers()));
        let mut req = req.reroute(uri, normalized, params);
        let mut wait = None;
        if let Some(verdict) = verdict {
            self.limited = true;
            match verdict {
                Verdict::Go => {}
                Verdict::Refuse {
                    status,
                    retry_after,
                } => {
                    return HandlerFuture::ready(Err(HttpError::RateLimited {
                        status,
                        retry_after,
                    }));
                }
                Verdict::Wait(w) => wait = Some(w),
            }
        }
        req.extensions_mut().insert(self);
        match wait {
            None => chain.run(req),
            // The body was read by the first route: only the handler waits.
            Some(w) => HandlerFuture::new(async move {
                tokio::time::sleep(w).await;
                chain.run(req).await
            }),
        }
    }
}

/// Puts the re-routing context of a request routed to `server` (one of
/// `generation`'s) into its extensions.
pub(crate) fn mark(
    generation: &Arc<Generation>,
    server: &vhost::Server,
    head: &mut http::request::Parts,
) {
    let index = generation.snapshot.servers.index_of(server);
    head.extensions
        .insert(Internal::new(Arc::clone(generation), index));
}

/// What is escaped in a query.
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'#');

/// What is escaped in a target's path: it is decoded text (`$uri`), so
/// `%` too, and whatever a URI may not hold.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^')
    .add(b'\\');

/// `target` (a decoded path, then `?query` or not) as a URI. Without a
/// query of its own it takes `query`; one ending in `?` drops it
/// (nginx's rewrite rules).
pub(crate) fn with_query(target: &str, query: Option<&str>) -> Result<Uri, HttpError> {
    let (path, own) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut text = utf8_percent_encode(path, PATH).to_string();
    match (own, query) {
        (Some(""), _) | (None, None) => {}
        (Some(q), _) | (None, Some(q)) => {
            text.push('?');
            text.extend(utf8_percent_encode(q, QUERY));
        }
    }
    text.parse::<Uri>()
        .ok()
        .filter(|u| u.path().starts_with('/') && u.scheme().is_none())
        .ok_or(HttpError::Internal(format!(
            "internal target `{target}` is not a path"
        )))
}
