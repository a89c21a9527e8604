//! `Rewrite`: a route that changes the URI and routes the request again
//! inside its server (nginx's `rewrite REGEX REPLACEMENT last;` in a
//! `location`). The target is a [`Template`]: a regex route's captures
//! are `$1`…`$9`. Each rewrite is one hop of `pipeline/internal.rs`, so a
//! loop answers 500 after ten.

use super::template::Template;
use crate::{
    error::HttpError,
    handler::{Handler, HandlerFuture},
    pipeline::{internal::Internal, request::Request},
};

/// Routes the request again with a templated URI.
#[derive(Debug)]
pub struct Rewrite {
    to: Template,
}

impl Rewrite {
    /// A rewrite to `to`, which must be a path (`/new/$1`).
    pub fn new(to: &str) -> Result<Self, String> {
        if !to.starts_with('/') {
            return Err(format!(
                "rewrite target `{to}` must start with `/` (a path in this server; use `Redirect` to send the client elsewhere)"
            ));
        }
        Ok(Self {
            to: Template::parse(to),
        })
    }
}

impl Handler for Rewrite {
    fn call(&self, req: Request) -> HandlerFuture {
        let target = self.to.render(&req);
        match req.extensions().get::<Internal>().cloned() {
            Some(internal) => internal.route(req, &target),
            None => HandlerFuture::ready(Err(HttpError::Internal(
                "rewrite: no routing context".into(),
            ))),
        }
    }
}
