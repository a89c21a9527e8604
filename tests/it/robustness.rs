//! P7.1: malformed and hostile requests get a clear 4xx, and the server
//! keeps serving after each one.

use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    client::{self, raw, status_of},
    server::TestServer,
};

fn config() -> String {
    r#"Config(
    listen: ["127.0.0.1:0"],
    limits: (max_header_bytes: 8192, max_headers: 20, max_body_bytes: 1000),
    log: (access: Off),
    servers: [(routes: [
        (path: "/hello", handler: Return(body: "Hello, World!\n")),
        (path: "/upload", methods: ["POST"], handler: Return(body: "got it\n")),
    ])],
)"#
    .into()
}

async fn send_raw(srv: &TestServer, bytes: &[u8]) -> Option<u16> {
    let out = raw(srv.addr, bytes, Duration::from_secs(5)).await;
    status_of(&out)
}

async fn still_serving(srv: &TestServer) {
    let r = client::get(&srv.url("/hello")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_lines_get_400() {
    let srv = TestServer::start(&config()).await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /hello HTTP/9.9\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: a\r\nX: \x01\x02\r\n\r\n",
        b"G\x00T /hello HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(
            send_raw(&srv, bad).await,
            Some(400),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        still_serving(&srv).await;
    }
}

/// RFC 9112 §3: a request-target longer than the server will parse gets
/// 414 (hyper's own answer, 431, is turned: `conn/request_line.rs`), on a
/// fresh connection, after an answered request, and pipelined behind one;
/// a single field line longer than the limit is still 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_over_the_limit_gets_414() {
    let srv = TestServer::start(&config()).await;
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20_000));
    let out = raw(srv.addr, long.as_bytes(), Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 414 "), "{out}");
    still_serving(&srv).await;
    // After an answered request on the same connection.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0; 4096];
    let n = s.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 "));
    s.write_all(long.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(
        rest.starts_with(b"HTTP/1.1 414 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // Pipelined behind a request, in one write.
    let both = format!("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n{long}");
    let out = raw(srv.addr, both.as_bytes(), Duration::from_secs(5)).await;
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "414"], "{out}");
    // A field line alone longer than the limit is the fields' fault.
    let field = format!(
        "GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(send_raw(&srv, field.as_bytes()).await, Some(431));
    still_serving(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_get_431() {
    let srv = TestServer::start(&config()).await;
    let big = format!(
        "GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(send_raw(&srv, big.as_bytes()).await, Some(431));
    still_serving(&srv).await;
    let mut many = String::from("GET /hello HTTP/1.1\r\nHost: a\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(send_raw(&srv, many.as_bytes()).await, Some(431));
    still_serving(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_get_400() {
    let srv = TestServer::start(&config()).await;
    let cl_and_te = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\
        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
    let out = raw(srv.addr, cl_and_te, Duration::from_secs(5)).await;
    assert_eq!(status_of(&out), Some(400), "{out}");
    // The smuggled second request must not be answered on that connection.
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    // The refusal passed back up the built-in layers like any answer.
    assert!(out.to_ascii_lowercase().contains("server: troupe"), "{out}");

    let two_lengths =
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
    assert_eq!(send_raw(&srv, two_lengths).await, Some(400));
    let bad_te = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(send_raw(&srv, bad_te).await, Some(400));
    still_serving(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let srv = TestServer::start(&config()).await;
    // Declared too large: refused before the body is read.
    let declared = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n";
    assert_eq!(send_raw(&srv, declared).await, Some(413));
    // Chunked, growing past the limit.
    let mut chunked =
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'x'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(send_raw(&srv, &chunked).await, Some(413));
    // Within the limit is fine.
    let ok =
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(send_raw(&srv, ok).await, Some(200));
    still_serving(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_resets_do_not_hurt() {
    let srv = TestServer::start(&config()).await;
    for bytes in [
        &b"GET /hel"[..],
        b"POST /upload HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
        b"",
    ] {
        let s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let (_, mut w) = s.into_split();
        tokio::io::AsyncWriteExt::write_all(&mut w, bytes)
            .await
            .unwrap();
        drop(w);
    }
    still_serving(&srv).await;
}
