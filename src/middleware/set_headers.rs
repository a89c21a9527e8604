//! `SetHeaders`: sets response headers after the handler ran.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::{
    handler::{HandlerFuture, Middleware, Next},
    pipeline::request::Request,
};

/// Sets (replaces) response headers; error pages get them too.
#[derive(Debug)]
pub struct SetHeaders(pub Arc<[(HeaderName, HeaderValue)]>);

impl Middleware for SetHeaders {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let headers = self.0.clone();
        next.run(req).map(move |result| {
            let mut resp = result.unwrap_or_else(|err| err.into_response());
            for (name, value) in headers.iter() {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
            Ok(resp)
        })
    }
}
