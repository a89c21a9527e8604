//! A server's module log hooks (`loggers`, P6.2): each finished request
//! of the server, errors included, becomes a [`LogLine`] handed to every
//! hook once its answer is known. Only servers with `loggers` pay for the
//! captured fields; the others never reach this file.

use crate::{
    error::HttpError,
    handler::HandlerFuture,
    pipeline::{Routing, log_hook::LogLine, vhost},
};

/// Runs `route` and, once its answer is known (errors included), passes a
/// [`LogLine`] to the server's module log hooks. Only servers with
/// `loggers` pay for the captured fields.
pub(crate) fn wrap(
    server: &vhost::Server,
    req: Routing,
    route: impl FnOnce(Routing) -> Result<HandlerFuture, HttpError>,
) -> HandlerFuture {
    let start = std::time::Instant::now();
    let method = req.head().method.clone();
    let path = req.path().to_owned();
    let query = req.head().uri.query().unwrap_or("").to_owned();
    let peer = req.peer();
    let result = match route(req) {
        Ok(chain) => chain,
        Err(e) => HandlerFuture::ready(Err(e)),
    };
    let hooks = server.loggers.clone();
    result.map(move |result| {
        let (status, bytes) = match &result {
            Ok(resp) => (
                resp.status().as_u16(),
                http_body::Body::size_hint(resp.body()).exact().unwrap_or(0),
            ),
            Err(e) => (e.status().as_u16(), 0),
        };
        let line = LogLine {
            method,
            path,
            query,
            peer,
            status,
            bytes,
            duration: start.elapsed(),
        };
        for hook in hooks.iter() {
            hook.log(&line);
        }
        result
    })
}
