//! [`UpstreamChoice`]: a module's choice of upstream group for one request,
//! and how a `Proxy` route honours it.
//!
//! A module's request filter (any runtime) may name a group, as OpenResty
//! sets `ngx.var.upstream` before `proxy_pass http://$upstream`. The
//! runtime puts the choice in the request's extensions; the proxy
//! handler (`forward.rs`) sends the request to that group instead of
//! its route's. Any group of the config may be chosen; an unknown name
//! answers 502. A route whose handler is not `Proxy(..)` never reads it.

use std::{collections::BTreeMap, sync::Arc};

use super::upstream::Upstream;
use crate::{error::HttpError, pipeline::request::Request};

/// The group a module chose for this request (the last filter to choose
/// wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamChoice {
    /// The group's name in `upstreams`.
    pub group: String,
    /// The module that chose it, for the log.
    pub module: Arc<str>,
}

impl UpstreamChoice {
    /// Records `module`'s choice of `group` on `req`, replacing an
    /// earlier filter's.
    pub fn set(req: &mut Request, module: &Arc<str>, group: String) {
        req.extensions_mut().insert(UpstreamChoice {
            group,
            module: module.clone(),
        });
    }
}

/// The group for this request: the chosen one if a module chose, else the
/// route's. A name no group has answers 502, with a warning naming the
/// choice, the module and the route.
pub(super) fn group<'a>(
    req: &Request,
    default: &'a Arc<Upstream>,
    groups: &'a BTreeMap<String, Arc<Upstream>>,
    route: &str,
) -> Result<&'a Arc<Upstream>, HttpError> {
    let Some(choice) = req.extensions().get::<UpstreamChoice>() else {
        return Ok(default);
    };
    groups.get(&choice.group).ok_or_else(|| {
        tracing::warn!(
            module = &*choice.module,
            chosen = %choice.group,
            route,
            upstream = &*default.name,
            "a module chose an upstream group that does not exist"
        );
        HttpError::BadGateway("the module chose an unknown upstream group")
    })
}
