//! `RequireHeader`: a minimal gate that short-circuits without a header.

use http::{HeaderName, HeaderValue, StatusCode};

use crate::{
    error::error_page,
    handler::{HandlerFuture, Middleware, Next},
    pipeline::request::Request,
};

/// Answers `status` unless the request has `header` (with `value`, if set).
#[derive(Debug)]
pub struct RequireHeader {
    /// The header that must be present.
    pub header: HeaderName,
    /// The value it must have, if any.
    pub value: Option<HeaderValue>,
    /// What to answer otherwise.
    pub status: StatusCode,
}

impl Middleware for RequireHeader {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let allowed = match (req.headers().get(&self.header), &self.value) {
            (Some(got), Some(want)) => got == want,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if allowed {
            next.run(req)
        } else {
            HandlerFuture::ready(Ok(error_page(self.status)))
        }
    }
}
