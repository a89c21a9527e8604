//! `Redirect`: a redirect to a templated target, like nginx `return 301 …`.
//! The target may use every [`Template`] variable.

use http::{HeaderValue, StatusCode, header};

use super::template::Template;
use crate::{
    error::HttpError,
    handler::{Handler, HandlerFuture},
    pipeline::{body::Body, request::Request},
};

/// A redirect to a templated location.
#[derive(Debug)]
pub struct Redirect {
    status: StatusCode,
    to: Template,
}

impl Redirect {
    /// Parses the target; the status must be a redirect.
    pub fn new(status: StatusCode, to: &str) -> Result<Self, String> {
        if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Err(format!(
                "redirect status must be 301, 302, 303, 307 or 308, found {}",
                status.as_u16()
            ));
        }
        Ok(Self {
            status,
            to: Template::parse(to),
        })
    }
}

impl Handler for Redirect {
    fn call(&self, req: Request) -> HandlerFuture {
        let result = HeaderValue::try_from(self.to.render(&req))
            .map_err(|_| HttpError::BadRequest("redirect target is not a valid header"))
            .map(|location| {
                let mut resp = http::Response::new(Body::Empty);
                *resp.status_mut() = self.status;
                resp.headers_mut().insert(header::LOCATION, location);
                resp
            });
        HandlerFuture::ready(result)
    }
}
