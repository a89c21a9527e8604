//! `troupe:host/api` `respond` (0.2.1): a component's whole answer in one
//! host call. Through wasi:http, a text response takes nine (fields,
//! outgoing-response, its status, its body, the body's stream, a write, the
//! stream's drop, `finish`, `response-outparam.set`), each a trip through
//! the component model's lifting and resource tables; this builds the same
//! `hyper::Response` from one list of headers and one buffer, and sends it
//! through the same `response-outparam`, so the host's side of a request
//! does not change.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header::CONTENT_LENGTH};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{
    WasiHttpHooks,
    p2::{bindings::http::types::ErrorCode, body::HyperOutgoingBody},
};

/// The response a component asked for, checked by the rules
/// `wasi:http/types.fields` applies (`forbidden` is the store's
/// `WasiHttpHooks`, so both paths refuse the same names).
pub fn response(
    hooks: &mut dyn WasiHttpHooks,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Result<hyper::Response<HyperOutgoingBody>, ErrorCode> {
    let refuse = |why: String| ErrorCode::InternalError(Some(why));
    let status = StatusCode::from_u16(status)
        .map_err(|_| refuse(format!("status {status} is not between 100 and 999")))?;
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| refuse(format!("`{name}` is not a header name")))?;
        if hooks.is_forbidden_header(&name) {
            return Err(refuse(format!("the header `{name}` is forbidden")));
        }
        let value = HeaderValue::from_bytes(&value)
            .map_err(|_| refuse(format!("the value of `{name}` is not a header value")))?;
        map.append(name, value);
    }
    if let Some(length) = map.get(CONTENT_LENGTH)
        && length.as_bytes() != body.len().to_string().as_bytes()
    {
        return Err(refuse(format!(
            "content-length {length:?} is not the body's {} bytes",
            body.len()
        )));
    }
    let body = Full::new(Bytes::from(body))
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = map;
    Ok(response)
}
