//! `Return`: a fixed response, like nginx `return 200 "…"`.
//!
//! Status, headers and a variable-free body are built once at config
//! compile time; a request clones a `Bytes` and a few header values, which
//! are reference counted. A body with [`Template`] variables is rendered
//! per request.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};

use super::template::Template;
use crate::{
    handler::{Handler, HandlerFuture},
    pipeline::{body::Body, request::Request},
};

/// The body: fixed bytes, or a template rendered per request.
#[derive(Debug)]
enum Content {
    Fixed(Bytes),
    Template(Template),
}

/// A fixed status and headers, and a fixed or templated body.
#[derive(Debug)]
pub struct Return {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    content: Content,
}

impl Return {
    /// A response whose body is `body`, a [`Template`]. A non-empty body
    /// with no `content-type` header gets `text/plain`.
    pub fn new(
        status: StatusCode,
        mut headers: Vec<(HeaderName, HeaderValue)>,
        body: &str,
    ) -> Self {
        if !body.is_empty() && !headers.iter().any(|(n, _)| n == header::CONTENT_TYPE) {
            headers.push((header::CONTENT_TYPE, HeaderValue::from_static("text/plain")));
        }
        let template = Template::parse(body);
        let content = match template.as_static() {
            Some(text) => Content::Fixed(Bytes::from(text.to_owned())),
            None => Content::Template(template),
        };
        Self {
            status,
            headers,
            content,
        }
    }
}

impl Handler for Return {
    fn call(&self, req: Request) -> HandlerFuture {
        let body = match &self.content {
            Content::Fixed(bytes) => Body::full(bytes.clone()),
            Content::Template(t) => Body::full(t.render(&req)),
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.reserve(self.headers.len() + 2);
        for (name, value) in &self.headers {
            h.append(name.clone(), value.clone());
        }
        HandlerFuture::ready(Ok(resp))
    }
}
