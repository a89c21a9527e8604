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
//!     fn call(&self, req: Request) -> HandlerFuture {
//!         let name = req.param("name").unwrap_or("world");
//!         HandlerFuture::ready(Ok(http::Response::new(Body::full(format!("Hello, {name}!\n")))))
//!     }
//! }
//!
//! /// Refuses requests without `x-api-key`, and tags every answer.
//! struct ApiKey;
//!
//! impl Middleware for ApiKey {
//!     fn call(&self, req: Request, next: Next) -> HandlerFuture {
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
/// As with tower's `Service`, the future owns what it needs (clone an `Arc`
/// into it) rather than borrowing the handler: that lets the connection
/// layer run the handler synchronously and keep only a small future.
pub enum HandlerFuture {
    /// Answered already (taken on first poll).
    Ready(Option<HandlerResult>),
    /// Still working.
    Pending(BoxFuture<'static, HandlerResult>),
}

impl HandlerFuture {
    /// An answer that is ready now.
    pub fn ready(result: HandlerResult) -> Self {
        Self::Ready(Some(result))
    }

    /// An answer that needs to await something.
    pub fn new(fut: impl Future<Output = HandlerResult> + Send + 'static) -> Self {
        Self::Pending(Box::pin(fut))
    }

    /// Applies `f` to the answer: at once if it is ready, else when it
    /// arrives. Response filters use this so that a ready answer stays
    /// unboxed.
    pub fn map(self, f: impl FnOnce(HandlerResult) -> HandlerResult + Send + 'static) -> Self {
        match self {
            Self::Ready(Some(result)) => Self::ready(f(result)),
            other => Self::new(async move { f(other.await) }),
        }
    }

    /// The answer, if it is ready without polling.
    pub fn take_ready(&mut self) -> Option<HandlerResult> {
        match self {
            Self::Ready(result) => result.take(),
            Self::Pending(_) => None,
        }
    }
}

impl std::fmt::Debug for HandlerFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ready(_) => "HandlerFuture::Ready",
            Self::Pending(_) => "HandlerFuture::Pending",
        })
    }
}

impl Future for HandlerFuture {
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
    fn call(&self, req: Request) -> HandlerFuture;

    /// Methods the handler answers when the route lists none; `None` means any.
    fn default_methods(&self) -> Option<&'static [http::Method]> {
        None
    }

    /// Whether the handler reads the request body as a stream
    /// ([`Request::take_body_stream`]) rather than buffered: then the
    /// pipeline hands it over unread (its size still capped by
    /// `max_body_bytes`), and middleware see an empty body. Default false.
    fn streams_body(&self) -> bool {
        false
    }
}

/// Runs around a handler: may short-circuit, or change the response.
pub trait Middleware: Send + Sync + 'static {
    /// Handles one request; call `next.run(req)` to continue the chain.
    fn call(&self, req: Request, next: Next) -> HandlerFuture;
}

/// The rest of a route's chain, handed to each middleware. It owns its
/// pieces (reference counted), so a middleware can move it into a future.
#[derive(Clone)]
pub struct Next {
    chain: Arc<[Arc<dyn Middleware>]>,
    pos: usize,
    handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &(self.chain.len() - self.pos))
            .finish()
    }
}

impl Next {
    /// The chain for a route: its middleware, then its handler.
    pub fn new(chain: Arc<[Arc<dyn Middleware>]>, handler: Arc<dyn Handler>) -> Self {
        Self {
            chain,
            pos: 0,
            handler,
        }
    }

    /// Runs the rest of the chain.
    pub fn run(self, req: Request) -> HandlerFuture {
        match self.chain.get(self.pos).cloned() {
            Some(mw) => mw.call(
                req,
                Next {
                    pos: self.pos + 1,
                    ..self
                },
            ),
            None => self.handler.call(req),
        }
    }
}
