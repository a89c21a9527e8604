//! A handler for routes whose module is not serving: always 503.

use crate::{
    error::HttpError,
    handler::{BoxFuture, Handler, HandlerResult},
    pipeline::request::Request,
};

/// Answers 503 with `Retry-After`, e.g. for a module that is not loaded.
#[derive(Debug)]
pub struct Unavailable(pub &'static str);

impl Handler for Unavailable {
    fn call(&self, _req: Request) -> BoxFuture<'_, HandlerResult> {
        Box::pin(std::future::ready(Err(HttpError::Unavailable(self.0))))
    }
}
