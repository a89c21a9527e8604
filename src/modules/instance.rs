//! [`Instance`]: one loaded module as requests call it, whatever runs it,
//! and the [`Hooks`] it offers.

use serde::{Deserialize, Serialize};

use crate::{
    HttpError,
    handler::{BoxFuture, HandlerFuture, Response},
    pipeline::{body::Body, log_hook::LogLine, request::Request},
};

/// The hooks a module offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// It answers requests.
    pub handle: bool,
    /// It filters requests before the handler.
    pub request_filter: bool,
    /// It changes responses after the handler.
    pub response_filter: bool,
    /// It sees every finished request.
    pub log: bool,
    /// It handles WebSocket messages (`WebSocket(module: ..)` routes).
    #[serde(default)]
    pub ws: bool,
}

/// What a request filter decided.
pub enum Filtered {
    /// Go on with this request.
    Continue(Request),
    /// Answer with this instead.
    Respond(Response),
}

/// One loaded module instance, whatever runs it. Each failure it sees
/// answers that request with a 5xx and is reported to its host actor.
///
/// Every hook but [`Instance::hooks`] has a default that does what a
/// module without that hook should, so a runtime writes only the hooks
/// its modules can have (as Pingora's `ProxyHttp` does).
pub trait Instance: Send + Sync + 'static {
    /// The hooks it offers.
    fn hooks(&self) -> Hooks;

    /// Answers a request. Default: 500 (routes only call a module that
    /// has the hook, and the config refuses one that has not).
    fn handle(&self, _req: Request) -> HandlerFuture {
        HandlerFuture::ready(Err(HttpError::Internal(
            "the module has no handle hook".into(),
        )))
    }

    /// Runs the request filter. Default: go on with the request.
    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        Box::pin(std::future::ready(Ok(Filtered::Continue(req))))
    }

    /// Runs the response filter. Default: the response as it is.
    fn response_filter(&self, resp: Response) -> HandlerFuture {
        HandlerFuture::ready(Ok(resp))
    }

    /// Runs the log hook. Default: nothing.
    fn log(&self, _line: &LogLine) {}

    /// A client asks to open WebSocket `socket` with `req`: accept (with
    /// the headers for the 101) or refuse (with this answer). A future,
    /// so a call that outruns its first slice can finish on the module
    /// pool while the handshake waits. Default: refused (the config
    /// refuses such a module for a WebSocket route).
    fn ws_open(&self, _socket: u64, _req: &Request) -> Opening {
        Box::pin(std::future::ready(Err(HttpError::Internal(
            "the module has no WebSocket hooks".into(),
        ))))
    }

    /// One whole message on `socket`; `Err` closes the socket (1011).
    fn ws_message(&self, _socket: u64, _msg: WsData<'_>) -> Result<(), String> {
        Err("the module has no WebSocket hooks".into())
    }

    /// `socket` is gone, with this close code.
    fn ws_close(&self, _socket: u64, _code: u16) {}
}

/// A module's answer to a WebSocket handshake, on its way.
pub type Opening = BoxFuture<'static, Result<WsOpen, HttpError>>;

/// What a module said to a WebSocket handshake.
pub enum WsOpen {
    /// Open it; these headers go with the 101.
    Accept(http::HeaderMap),
    /// Answer with this instead.
    Refuse(Response),
}

/// One whole WebSocket message, borrowed for a hook call.
#[derive(Debug, Clone, Copy)]
pub enum WsData<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// A module's answer as an HTTP response (validated when it was built).
pub(crate) fn into_response(
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
) -> Response {
    let mut resp = http::Response::new(Body::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The request a filter lets go on, with the upstream group it chose, if
/// any (`proxy::UpstreamChoice`; only a `Proxy` route reads it), and the
/// rate-limit key it chose, if any (`limit::ModuleKey`; only a zone keyed
/// by `Module` reads it).
pub(crate) fn steer(
    mut req: Request,
    module: &std::sync::Arc<str>,
    group: Option<String>,
    rate_key: Option<Vec<u8>>,
) -> Request {
    if let Some(group) = group {
        crate::proxy::UpstreamChoice::set(&mut req, module, group);
    }
    if let Some(key) = rate_key {
        req.extensions_mut()
            .insert(crate::limit::ModuleKey(key.into()));
    }
    req
}
