//! Raw bytes on one connection, through the real pipeline over an
//! in-memory stream: no panic, no hang, and HTTP/1.x responses out.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use troupe::fuzzing::{Fixture, Server};

static SERVER: LazyLock<(Fixture, Server)> = LazyLock::new(|| {
    let fixture = Fixture::new().expect("fixture");
    let server = Server::new(&fixture).expect("the fuzz config compiles");
    (fixture, server)
});

fuzz_target!(|data: &[u8]| {
    SERVER.1.connection(data);
});
