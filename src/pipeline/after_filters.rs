//! [`AfterFilters`]: the step that checks a route's rate-limit zones keyed
//! by a module's choice ([`ModuleKey`], which a request filter sets with
//! `set_rate_key` in every module runtime) once the route's filters ran.
//!
//! A route's other limits run before its body is read (`run_route`);
//! these cannot, since the key is only known once the module filters have
//! seen the request, body included. The config compiles them into one
//! middleware at the end of the route's chain, just before its handler,
//! so a route without such a zone pays nothing.

use std::sync::Arc;

use super::request::Request;
use crate::{
    error::HttpError,
    handler::{HandlerFuture, Middleware, Next},
    limit::{Limit, ModuleKey, Verdict, check_keyed},
};

/// A route's limits whose zones key by [`ModuleKey`], as the last
/// middleware of its chain.
#[derive(Debug)]
pub struct AfterFilters {
    limits: Arc<[Limit]>,
}

impl AfterFilters {
    /// The step checking `limits` (each keyed by `Module`).
    pub fn new(limits: Vec<Limit>) -> Self {
        Self {
            limits: limits.into(),
        }
    }
}

impl Middleware for AfterFilters {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let chosen = req.extensions().get::<ModuleKey>().map(|k| &*k.0);
        match check_keyed(&self.limits, req.peer().ip(), req.headers(), chosen) {
            Verdict::Go => next.run(req),
            Verdict::Refuse {
                status,
                retry_after,
            } => HandlerFuture::ready(Err(HttpError::RateLimited {
                status,
                retry_after,
            })),
            // As nginx delays a request in its turn: the handler runs then.
            Verdict::Wait(wait) => HandlerFuture::new(async move {
                tokio::time::sleep(wait).await;
                next.run(req).await
            }),
        }
    }
}
