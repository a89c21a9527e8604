//! [`Children`] as an [`Instance`]: requests encoded to frames for the
//! active child, replies decoded into responses.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{
    children::Children,
    wire::{self, Hook, ToChild, WireLog, WireRequest, WireResponse},
};
use crate::{
    HttpError,
    handler::{BoxFuture, HandlerFuture, HandlerResult, Response},
    modules::{
        instance::{Filtered, Hooks, Instance, into_response, steer},
        native::peer_text,
    },
    pipeline::{log_hook::LogLine, request::Request},
};

pub(crate) fn call_frame(id: u64, hook: Hook, req: &Request, peer: &str) -> bytes::Bytes {
    let hint = 512 + req.body().len();
    wire::encode_sized(
        &ToChild::Call {
            id,
            hook,
            req: WireRequest {
                method: req.method().as_str(),
                path: req.path(),
                query: req.query().unwrap_or(""),
                headers: req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes()))
                    .collect(),
                params: req.params().collect(),
                body: req.body(),
                peer,
            },
        },
        hint,
    )
}

/// A reply's head, validated (the child validated too, but a broken child
/// must not be trusted).
fn head(resp: &WireResponse) -> Result<(StatusCode, HeaderMap), HttpError> {
    let bad = || HttpError::Internal("the module sent an invalid response".into());
    let status = StatusCode::from_u16(resp.status).map_err(|_| bad())?;
    let mut headers = HeaderMap::new();
    for (n, v) in &resp.headers {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(v).map_err(|_| bad())?;
        headers.try_append(name, value).map_err(|_| bad())?;
    }
    Ok((status, headers))
}

fn response(resp: WireResponse) -> HandlerResult {
    let (status, headers) = head(&resp)?;
    Ok(into_response(status, headers, resp.body))
}

impl Instance for Children {
    fn hooks(&self) -> Hooks {
        Children::hooks(self)
    }

    fn handle(&self, req: Request) -> HandlerFuture {
        if req.body().len() > wire::MAX_BODY {
            return HandlerFuture::ready(Err(HttpError::BodyTooLarge));
        }
        let mut buf = [0u8; 64];
        let peer = peer_text(req.peer(), &mut buf);
        let reply = self
            .current()
            .call(|id| call_frame(id, Hook::Handle, &req, peer));
        HandlerFuture::new(async move { response(reply.await?) })
    }

    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        if req.body().len() > wire::MAX_BODY {
            return Box::pin(async { Err(HttpError::BodyTooLarge) });
        }
        let mut buf = [0u8; 64];
        let peer = peer_text(req.peer(), &mut buf);
        let reply = self
            .current()
            .call(|id| call_frame(id, Hook::RequestFilter, &req, peer));
        let module = self.module().clone();
        Box::pin(async move {
            let reply = reply.await?;
            if reply.respond {
                response(reply).map(Filtered::Respond)
            } else {
                Ok(Filtered::Continue(steer(
                    req,
                    &module,
                    reply.upstream,
                    reply.rate_key,
                )))
            }
        })
    }

    fn response_filter(&self, mut resp: Response) -> HandlerFuture {
        let reply = self.current().call(|id| {
            wire::encode(&ToChild::ResponseFilter {
                id,
                status: resp.status().as_u16(),
                headers: resp
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes()))
                    .collect(),
            })
        });
        HandlerFuture::new(async move {
            let (status, headers) = head(&reply.await?)?;
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            Ok(resp)
        })
    }

    fn log(&self, line: &LogLine) {
        let mut buf = [0u8; 64];
        let peer = peer_text(line.peer, &mut buf);
        self.current().notify(wire::encode(&ToChild::Log(WireLog {
            method: line.method.as_str(),
            path: &line.path,
            query: &line.query,
            peer,
            status: line.status,
            bytes: line.bytes,
            duration_us: u64::try_from(line.duration.as_micros()).unwrap_or(u64::MAX),
        })));
    }
}
