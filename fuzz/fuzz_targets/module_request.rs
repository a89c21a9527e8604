//! A client's request converted into each module runtime's form: the C
//! ABI's view (in process and in a child, through the call frame), Lua's
//! `req`, and, built with `--features wasm`, a component's request.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use troupe::fuzzing::{self, ClientRequest};

#[derive(Debug, Arbitrary)]
struct Input {
    method: Vec<u8>,
    target: Vec<u8>,
    version: u8,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    peer: IpAddr,
    port: u16,
}

fuzz_target!(|input: Input| {
    let version = match input.version % 3 {
        0 => http::Version::HTTP_10,
        1 => http::Version::HTTP_11,
        _ => http::Version::HTTP_2,
    };
    let headers: Vec<(&[u8], &[u8])> = input
        .headers
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let _ = fuzzing::module_request(&ClientRequest {
        method: &input.method,
        target: &input.target,
        version,
        headers: &headers,
        body: &input.body,
        peer: SocketAddr::new(input.peer, input.port),
    });
});
