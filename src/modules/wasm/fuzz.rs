//! (feature `fuzzing`) A request as a component would see it: converted
//! the way [`super::Inner`] converts every request it serves, then read
//! back through the wasi:http functions a guest calls
//! (`crate::fuzzing::module_request` checks what comes back).

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::Resource;
use wasmtime_wasi_http::{
    WasiHttpView,
    p2::bindings::http::types::{HostFields, HostIncomingRequest, Method, Scheme},
};

use super::{
    egress::{AllowList, Egress},
    hyper_request,
    state::State,
    with_authority,
};
use crate::modules::hostapi::LocalServices;

/// What a guest reads of a request.
#[derive(Debug)]
pub struct Seen {
    /// `incoming-request.method`, as text.
    pub method: String,
    /// `incoming-request.path-with-query`.
    pub path_with_query: Option<String>,
    /// `incoming-request.authority`.
    pub authority: Option<String>,
    /// `fields.entries` of `incoming-request.headers`, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Converts `head` and `body` as a served request is converted, and reads
/// it back; `Err` is the conversion's refusal, which a served request
/// would answer 500 with.
pub fn seen(mut head: http::request::Parts, body: Bytes) -> Result<Seen, String> {
    with_authority(&mut head);
    let services = Arc::new(LocalServices::new(&prometheus::Registry::new()));
    let module: Arc<str> = "fuzz".into();
    let egress = Egress::new(
        module.clone(),
        Arc::new(AllowList::parse::<&str>(&[]).map_err(|e| e.to_string())?),
        std::time::Duration::from_secs(1),
    );
    let mut state = State::new(module, services, Default::default(), egress);
    let mut http = state.http();
    let e = |e: wasmtime::Error| format!("{e:#}");
    let req = http
        .new_incoming_request(Scheme::Http, hyper_request(head, body))
        .map_err(e)?;
    let method = match http.method(Resource::new_borrow(req.rep())).map_err(e)? {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(m) => m,
    };
    let path_with_query = http
        .path_with_query(Resource::new_borrow(req.rep()))
        .map_err(e)?;
    let authority = http.authority(Resource::new_borrow(req.rep())).map_err(e)?;
    let fields = http.headers(Resource::new_borrow(req.rep())).map_err(e)?;
    let headers = http.entries(fields).map_err(e)?;
    Ok(Seen {
        method,
        path_with_query,
        authority,
        headers,
    })
}

/// Whether wasi:http keeps the field `name` from a guest (connection
/// fields, and `Host`, which the guest reads as the authority).
pub fn dropped(name: &http::HeaderName) -> bool {
    wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
}
