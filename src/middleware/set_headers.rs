//! `SetHeaders`: sets response headers after the handler ran.

use http::{HeaderName, HeaderValue};

use crate::{
    handler::{HandlerFuture, Middleware, Next},
    pipeline::request::Request,
};

/// Sets (replaces) response headers; error pages get them too.
#[derive(Debug)]
pub struct SetHeaders(pub Vec<(HeaderName, HeaderValue)>);

impl Middleware for SetHeaders {
    fn call<'a>(&'a self, req: Request, next: Next<'a>) -> HandlerFuture<'a> {
        HandlerFuture::new(async move {
            let mut resp = match next.run(req).await {
                Ok(resp) => resp,
                Err(err) => err.into_response(),
            };
            for (name, value) in &self.0 {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
            Ok(resp)
        })
    }
}
