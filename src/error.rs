//! HTTP errors and the one place that maps an error to a status and a page.
//!
//! Handlers and the pipeline return [`HttpError`]; nothing else picks a
//! status code for a failure. Each kind knows whose fault it is, which the
//! logs use to keep client mistakes out of the error level.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use crate::pipeline::body::Body;

/// A request that ends in an error status.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is malformed or hostile (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Refused by policy, e.g. a directory without an index (403).
    #[error("forbidden")]
    Forbidden,
    /// Nothing at this path (404).
    #[error("not found")]
    NotFound,
    /// The path exists but not for this method (405, with `Allow`).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: HeaderValue,
    },
    /// A TLS request for another server than the one its handshake was
    /// for (421): the client must open a new connection.
    #[error("misdirected request")]
    Misdirected,
    /// The body did not arrive within the body timeout (408).
    #[error("request body timeout")]
    BodyTimeout,
    /// The body is larger than `max_body_bytes` (413).
    #[error("request body too large")]
    BodyTooLarge,
    /// No part of the range is inside the file (416).
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The full length, for `Content-Range: bytes */len`.
        len: u64,
    },
    /// A rate limit refused the request (429 unless configured), with
    /// `Retry-After`.
    #[error("rate limited")]
    RateLimited {
        /// The status the limit answers with.
        status: StatusCode,
        /// Seconds until a retry would be accepted.
        retry_after: u64,
    },
    /// A module is not loaded, failed, or disabled (503).
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// A module's process died while answering (502).
    #[error("bad gateway: {0}")]
    BadGateway(&'static str),
    /// A module took longer than its timeout (504).
    #[error("gateway timeout: {0}")]
    GatewayTimeout(&'static str),
    /// A server-side failure, e.g. an I/O error reading a file (500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Who caused an error, for logging and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Client,
    /// Troupe or a module failed.
    Server,
}

impl HttpError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::RateLimited { status, .. } => *status,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whose fault it is.
    pub fn side(&self) -> Side {
        // A limit answering 503 (as nginx does) is still the client's doing.
        if self.status().is_server_error() && !matches!(self, Self::RateLimited { .. }) {
            Side::Server
        } else {
            Side::Client
        }
    }

    /// Whether the connection should close after answering: after a body
    /// error the rest of the body is still on the wire, so keep-alive would
    /// read it as the next request.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::BodyTimeout | Self::BodyTooLarge | Self::BadRequest(_)
        )
    }

    /// The response: the status line's text as a small plain-text page.
    pub fn into_response(self) -> http::Response<Body> {
        let status = self.status();
        let close = self.closes_connection();
        let mut resp = error_page(status);
        let headers = resp.headers_mut();
        match self {
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, allow);
            }
            Self::RangeNotSatisfiable { len } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::RateLimited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Marks an answer Troupe made for an error (not one a backend sent),
/// which error pages may replace even on a proxied route.
#[derive(Debug, Clone, Copy)]
pub struct Generated;

/// A plain-text page for a status: `404 Not Found\n`.
pub fn error_page(status: StatusCode) -> http::Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = http::Response::new(Body::full(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.extensions_mut().insert(Generated);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
