//! The `Handler` and `Middleware` traits (P2.1): how anything answers a request.
//!
//! Core handlers (static files, fixed responses, redirects) implement
//! [`Handler`]; module hosts will too. A route runs its middleware in order,
//! outermost first, and then its handler:
//!
//! ```text
//! request → mw[0] → mw[1] → … → handler
//! response ← mw[0] ← mw[1] ← … ←
//! ```
//!
//! A middleware can short-circuit (return a response without calling
//! [`Next::run`]), or wrap (call it and change the response).
//!
//! # Example
//! ```
//! use troupe::{Body, Handler, HandlerFuture, Middleware, Next, Request};
//!
//! /// Answers at once with the `name` route parameter.
//! struct Greet;
//!
//! impl Handler for Greet {
//!     fn call(&self, req: Request) -> HandlerFuture<'_> {
//!         let name = req.param("name").unwrap_or("world");
//!         HandlerFuture::ready(Ok(http::Response::new(Body::full(format!("Hello, {name}!\n")))))
//!     }
//! }
//!
//! /// Refuses requests without `x-api-key`, and tags every answer.
//! struct ApiKey;
//!
//! impl Middleware for ApiKey {
//!     fn call<'a>(&'a self, req: Request, next: Next<'a>) -> HandlerFuture<'a> {
//!         HandlerFuture::new(async move {
//!             if req.header("x-api-key").is_none() {
//!                 let mut denied = http::Response::new(Body::full("no key\n"));
//!                 *denied.status_mut() = http::StatusCode::UNAUTHORIZED;
//!                 return Ok(denied);
//!             }
//!             let mut resp = next.run(req).await?;
//!             resp.headers_mut().insert("x-checked", http::HeaderValue::from_static("1"));
//!             Ok(resp)
//!         })
//!     }
//! }
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use crate::{error::HttpError, pipeline::body::Body, pipeline::request::Request};

pub use troupe_actors::BoxFuture;

/// A response with Troupe's body type.
pub type Response = http::Response<Body>;

/// What handlers and middleware return: a response, or an error that the
/// pipeline turns into one (see [`HttpError::into_response`]).
pub type HandlerResult = Result<Response, HttpError>;

/// What a handler or middleware returns: an answer that is ready now, or
/// one still to come.
///
/// A ready answer costs no allocation, which matters on the hottest routes
/// (fixed responses, redirects, cache hits); anything that awaits is boxed.
pub enum HandlerFuture<'a> {
    /// Answered already (taken on first poll).
    Ready(Option<HandlerResult>),
    /// Still working.
    Pending(BoxFuture<'a, HandlerResult>),
}

impl<'a> HandlerFuture<'a> {
    /// An answer that is ready now.
    pub fn ready(result: HandlerResult) -> Self {
        Self::Ready(Some(result))
    }

    /// An answer that needs to await something.
    pub fn new(fut: impl Future<Output = HandlerResult> + Send + 'a) -> Self {
        Self::Pending(Box::pin(fut))
    }
}

impl std::fmt::Debug for HandlerFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ready(_) => "HandlerFuture::Ready",
            Self::Pending(_) => "HandlerFuture::Pending",
        })
    }
}

impl Future for HandlerFuture<'_> {
    type Output = HandlerResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult> {
        match self.get_mut() {
            Self::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("HandlerFuture::Ready polled after completion"),
            ),
            Self::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// Answers a request.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, req: Request) -> HandlerFuture<'_>;

    /// Methods the handler answers when the route lists none; `None` means any.
    fn default_methods(&self) -> Option<&'static [http::Method]> {
        None
    }
}

/// Runs around a handler: may short-circuit, or change the response.
pub trait Middleware: Send + Sync + 'static {
    /// Handles one request; call `next.run(req)` to continue the chain.
    fn call<'a>(&'a self, req: Request, next: Next<'a>) -> HandlerFuture<'a>;
}

/// The rest of a route's chain, handed to each middleware.
pub struct Next<'a> {
    chain: &'a [Arc<dyn Middleware>],
    handler: &'a dyn Handler,
}

impl<'a> Next<'a> {
    /// The chain for a route: its middleware, then its handler.
    pub fn new(chain: &'a [Arc<dyn Middleware>], handler: &'a dyn Handler) -> Self {
        Self { chain, handler }
    }

    /// Runs the rest of the chain.
    pub fn run(self, req: Request) -> HandlerFuture<'a> {
        match self.chain.split_first() {
            Some((first, rest)) => first.call(
                req,
                Next {
                    chain: rest,
                    handler: self.handler,
                },
            ),
            None => self.handler.call(req),
        }
    }
}
