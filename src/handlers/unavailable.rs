//! A handler for routes whose module is not serving: always 503.

use crate::{
    error::HttpError,
    handler::{Handler, HandlerFuture},
    pipeline::request::Request,
};

/// Answers 503 with `Retry-After`, e.g. for a module that is not loaded.
#[derive(Debug)]
pub struct Unavailable(pub &'static str);

impl Handler for Unavailable {
    fn call(&self, _req: Request) -> HandlerFuture {
        HandlerFuture::ready(Err(HttpError::Unavailable(self.0)))
    }
}
