//! What RFC 9112 says a server MUST refuse (issue 14): a missing
//! (HTTP/1.1), repeated or invalid `Host` gets 400 on every route; and
//! client input never makes a module route answer 500 (a component's
//! request conversion needed a valid, present authority).

use std::time::Duration;

use crate::support::{
    client::{raw, status_of},
    modules::{config, ready, wasm},
    server::TestServer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_must_be_there_once_and_valid_on_every_route() {
    let srv = TestServer::start(&config(
        &format!(r#"(name: "hello_wasm", source: Wasm({}))"#, wasm("hello")),
        r#"(path: "/hello/wasm", handler: Module("hello_wasm"))"#,
    ))
    .await;
    ready(&srv, "hello_wasm").await;
    let ask = |req: Vec<u8>| async move {
        let answer = raw(srv.addr, &req, Duration::from_secs(20)).await;
        (status_of(&answer).unwrap_or(0), answer)
    };
    for path in ["/hello", "/hello/wasm"] {
        let line = |v: &str, rest: &[u8]| {
            let mut r = format!("GET {path} HTTP/{v}\r\n").into_bytes();
            r.extend_from_slice(rest);
            r.extend_from_slice(b"Connection: close\r\n\r\n");
            r
        };
        for (req, want) in [
            (line("1.1", b"Host: a\r\n"), 200),
            (line("1.1", b""), 400),
            (line("1.1", b"Host: a\r\nHost: a\r\n"), 400),
            (line("1.1", b"Host: a\r\nHost: b\r\n"), 400),
            // obs-text: a legal field value, never a legal host.
            (line("1.1", b"Host: caf\xe9\r\n"), 400),
            (line("1.1", b"Host: a/b\r\n"), 400),
            (line("1.1", b"Host: user@a\r\n"), 400),
            // HTTP/1.0 may leave it out: the module still answers.
            (line("1.0", b""), 200),
            // obs-text elsewhere reaches the module as it was sent.
            (line("1.1", b"Host: a\r\nX-Name: caf\xe9\r\n"), 200),
        ] {
            let (status, answer) = ask(req.clone()).await;
            assert_eq!(
                status,
                want,
                "{path}: {}\n{answer}",
                String::from_utf8_lossy(&req)
            );
        }
    }
}
