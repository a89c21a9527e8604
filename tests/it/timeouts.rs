//! P1/P5.2/P7.2: header (slowloris), body and idle timeouts, and the cap
//! on requests per keep-alive connection.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{
    client::{self, read_until_close, status_of},
    server::TestServer,
};

fn config(limits: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    limits: ({limits}),
    log: (access: Off),
    servers: [(routes: [
        (path: "/hello", handler: Return(body: "Hello, World!\n")),
        (path: "/upload", methods: ["POST"], handler: Return(body: "got it\n")),
    ])],
)"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_after_the_header_timeout() {
    let srv = TestServer::start(&config(r#"header_timeout: "1s""#)).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let start = Instant::now();
    // Trickle a header, a byte every 100 ms, never finishing it.
    let mut cut = false;
    for b in b"GET /hello HTTP/1.1\r\nHost: a\r\nX-Slow: "
        .iter()
        .cycle()
        .take(100)
    {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            // EOF, a reset, or an error status: the server gave up on us.
            let _ = r;
            cut = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(cut, "a trickled header was never cut off");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut after {took:?}"
    );
    // Other clients are unaffected.
    assert_eq!(
        client::get(&srv.url("/hello")).await.text(),
        "Hello, World!\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408() {
    let srv = TestServer::start(&config(r#"body_timeout: "500ms""#)).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let start = Instant::now();
    let out = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(status_of(&out), Some(408), "{out}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connections_are_closed() {
    let srv = TestServer::start(&config(r#"keepalive_timeout: "400ms""#)).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(200));
    let start = Instant::now();
    let rest = read_until_close(&mut s, Duration::from_secs(5)).await;
    let took = start.elapsed();
    assert!(rest.is_empty());
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_requests_cap_closes_the_connection() {
    let srv = TestServer::start(&config("keepalive_requests: 3")).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut req = Vec::new();
    for _ in 0..5 {
        req.extend_from_slice(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    s.write_all(&req).await.unwrap();
    let out = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    assert_eq!(out.matches("connection: close").count(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_after_its_head_is_not_taken_for_a_slow_header() {
    let srv = TestServer::start(&config(
        r#"header_timeout: "300ms", keepalive_timeout: "1500ms""#,
    ))
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"hello").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(200));
    // Now idle: the idle timeout (1.5 s) applies, not the header one.
    let start = Instant::now();
    let rest = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_empty());
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1200), "closed after {took:?}");
}

/// A docroot with one file larger than any socket buffer.
fn big_file_server_config(limits: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let data: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("www/big.bin"), data).unwrap();
    let cfg = format!(
        r#"Config(listen: ["127.0.0.1:0"], limits: ({limits}), log: (access: Off),
             servers: [(routes: [(path: "/{{*p}}", handler: Static(root: "www"))])])"#
    );
    (dir, cfg)
}

/// Starts downloading `big.bin` and reads only its first kilobyte.
async fn stalled_download(srv: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off() {
    let (dir, cfg) = big_file_server_config(r#"keepalive_timeout: "400ms""#);
    let srv = TestServer::start_in(dir, &cfg).await;
    let mut s = stalled_download(&srv).await;
    // Stop reading: the server's writes stall, the connection goes idle,
    // its graceful close makes no progress, and it is cut.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection was never closed");
    assert!(
        rest.len() + 1024 < 32 * 1024 * 1024,
        "the whole file arrived"
    );
    assert_eq!(
        client::get(&srv.url("/missing")).await.status,
        http::StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_cuts_stalled_connections_in_process() {
    let (dir, cfg) = big_file_server_config(r#"drain_timeout: "300ms""#);
    let srv = TestServer::start_in(dir, &cfg).await;
    let mut s = stalled_download(&srv).await;
    let start = Instant::now();
    let cut = srv.stop().await;
    assert_eq!(cut, 1);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the cut connection is still open");
}
