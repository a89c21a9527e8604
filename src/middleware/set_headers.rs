//! `SetHeaders` and `AddHeaders`: response headers after the handler ran.
//!
//! `SetHeaders` replaces, on every answer (error pages too). `AddHeaders`
//! is nginx's `add_header`: it appends, and only to the statuses nginx
//! adds to (200, 201, 204, 206, 301, 302, 303, 304, 307, 308) unless
//! `always` is set, when errors get them too.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};

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

/// Adds response headers, as nginx's `add_header` (with `always` or not).
#[derive(Debug)]
pub struct AddHeaders {
    /// The headers, appended in order.
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    /// Errors get them too (nginx's `always`).
    pub always: bool,
}

/// The statuses nginx's `add_header` and `expires` apply to without
/// `always`.
pub fn nginx_success(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

impl Middleware for AddHeaders {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let headers = self.headers.clone();
        let always = self.always;
        next.run(req).map(move |result| {
            let mut resp = match result {
                Ok(resp) => resp,
                // Only `always` turns an error into its page here, so the
                // page can carry them.
                Err(err) if always => err.into_response(),
                Err(err) => return Err(err),
            };
            if always || nginx_success(resp.status()) {
                for (name, value) in headers.iter() {
                    resp.headers_mut().append(name.clone(), value.clone());
                }
            }
            Ok(resp)
        })
    }
}
