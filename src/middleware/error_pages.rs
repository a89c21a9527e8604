//! Error pages (nginx `error_page`): an answer whose status a page is set
//! for is replaced by that page, a file or a URI routed again inside the
//! server (`pipeline/internal.rs`), keeping the original status unless
//! the page says another (`error_page 404 =200 /empty`).
//!
//! It sees every answer of its route's chain: the handler's errors
//! (static files, modules that failed or timed out, the proxy's 502/504),
//! and error statuses a module answers with. A backend's own answer
//! through the proxy passes as it is, as with nginx's
//! `proxy_intercept_errors off`. A page that fails gives the plain
//! error: a page request never gets another page.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header, request::Parts};

use crate::{
    error::{Generated, HttpError},
    handler::{HandlerFuture, HandlerResult, Middleware, Next, Response},
    observe::access_log::UpstreamTiming,
    pipeline::{body::Body, internal::Internal, request::Request, server_routing::Recover},
};

pub use crate::pipeline::codes::Codes;

/// What answers instead.
#[derive(Debug)]
pub enum PageSource {
    /// A URI routed again inside the server (as `GET`, or `HEAD`).
    Uri(String),
    /// A file's content, read when the config was (re)loaded.
    File {
        /// The content.
        body: Bytes,
        /// Its type, from its extension.
        content_type: HeaderValue,
    },
}

/// One `error_page` line.
#[derive(Debug)]
pub struct Page {
    /// The statuses it stands for.
    pub codes: Codes,
    /// What answers.
    pub source: PageSource,
    /// The status to answer with instead of the original (nginx's `=200`).
    pub status: Option<StatusCode>,
}

/// The error pages of a server or route, first match wins.
#[derive(Debug, Clone)]
pub struct ErrorPages(Arc<[Page]>);

impl ErrorPages {
    /// Pages in file order.
    pub fn new(pages: Vec<Page>) -> Self {
        Self(pages.into())
    }

    fn page_for(&self, status: StatusCode) -> Option<&Page> {
        self.0.iter().find(|p| p.codes.contains(status))
    }
}

/// Whether an answer is one a page may replace: not a backend's own.
fn replaceable(resp: &Response) -> bool {
    resp.status().as_u16() >= 300
        && (resp.extensions().get::<UpstreamTiming>().is_none()
            || resp.extensions().get::<Generated>().is_some())
}

/// The status of an answer a page could replace.
fn status_of(result: &HandlerResult) -> Option<StatusCode> {
    match result {
        Ok(resp) if replaceable(resp) => Some(resp.status()),
        Ok(_) => None,
        Err(e) => Some(e.status()),
    }
}

impl Middleware for ErrorPages {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        if req
            .extensions()
            .get::<Internal>()
            .is_some_and(|i| i.in_error_page)
        {
            return next.run(req);
        }
        let (head, peer, tls) = (req.head().clone(), req.peer(), req.is_tls());
        let mut chain = next.run(req);
        if let Some(result) = chain.take_ready() {
            return self.recover(head, peer, tls, result);
        }
        let pages = self.clone();
        HandlerFuture::new(async move { pages.recover(head, peer, tls, chain.await).await })
    }
}

impl Recover for ErrorPages {
    fn recover(
        &self,
        head: Parts,
        peer: SocketAddr,
        tls: bool,
        result: HandlerResult,
    ) -> HandlerFuture {
        let Some(status) = status_of(&result) else {
            return HandlerFuture::ready(result);
        };
        let Some(page) = self.page_for(status) else {
            return HandlerFuture::ready(result);
        };
        let answer = page.status.unwrap_or(status);
        match &page.source {
            PageSource::File { body, content_type } => {
                let original = into_response(result);
                let mut resp = http::Response::new(Body::full(body.clone()));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, content_type.clone());
                HandlerFuture::ready(Ok(finish(resp, answer, &original)))
            }
            PageSource::Uri(target) => {
                let Some(mut internal) = head.extensions.get::<Internal>().cloned() else {
                    return HandlerFuture::ready(result);
                };
                internal.in_error_page = true;
                let target = target.clone();
                let mut head = head;
                if head.method != Method::HEAD {
                    head.method = Method::GET;
                }
                let page_req =
                    Request::new(head, None, Vec::new(), Bytes::new(), peer).with_stream(None, tls);
                let page = internal.route(page_req, &target);
                HandlerFuture::new(async move {
                    match page.await {
                        Ok(resp) if resp.status().is_success() => {
                            let original = into_response(result);
                            Ok(finish(resp, answer, &original))
                        }
                        // The page failed: the plain error.
                        _ => result,
                    }
                })
            }
        }
    }
}

fn into_response(result: HandlerResult) -> Response {
    result.unwrap_or_else(HttpError::into_response)
}

/// The page with the status to answer and the original's headers that
/// still hold (`Allow`, `Retry-After`, `WWW-Authenticate`, `Connection`).
fn finish(mut page: Response, status: StatusCode, original: &Response) -> Response {
    *page.status_mut() = status;
    for name in [
        header::ALLOW,
        header::RETRY_AFTER,
        header::WWW_AUTHENTICATE,
        header::CONNECTION,
    ] {
        if let Some(v) = original.headers().get(&name) {
            page.headers_mut().insert(name, v.clone());
        }
    }
    page
}
