//! The tunnel pump (`src/proxy/pump.rs`), on the real binary: a proxied
//! WebSocket over plain TCP both ways moves on a pump thread, not through
//! tokio. What the pump must get right on its own: holding bytes for a
//! client that stops reading, passing on a backend's last bytes when its
//! end of stream comes with them, and counting the tunnel's bytes.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use crate::support::{
    client,
    daemon::Daemon,
    ws::{self, EchoBackend},
};

/// The proxy to `backend`, with `settings` (RON fields of the config).
fn start(backend: SocketAddr, settings: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    let config = format!(
        r#"Config(
    listen: ["127.0.0.1:0"],{settings}
    admin: (listen: "127.0.0.1:0"),
    log: (access: Off),
    upstreams: {{ "app": (backends: [(addr: "{backend}")]) }},
    servers: [( routes: [ (path: "/{{*rest}}", handler: Proxy(upstream: "app")) ] )],
)"#
    );
    std::fs::write(&path, config).expect("write config");
    let d = Daemon::start(&path);
    (dir, d)
}

/// Message `i` of the big test: a pattern that tells any byte's place.
fn pattern(i: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gets_every_byte_in_order_when_it_reads_again() {
    const N: usize = 8;
    const SIZE: usize = 2 << 20;
    let b = EchoBackend::start(false).await;
    let (_dir, d) = start(b.addr, "");
    let (sock, _) = ws::connect(&format!("ws://{}/big", d.addr))
        .await
        .expect("handshake through the proxy");
    let (mut tx, mut rx) = sock.split();
    // 16 MiB each way, more than the socket buffers on the way hold, so
    // the pump has to stop reading a side and start again.
    let writer = tokio::spawn(async move {
        for i in 0..N {
            tx.send(Message::binary(pattern(i, SIZE)))
                .await
                .expect("send");
        }
        tx
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..N {
        let got = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match rx.next().await {
                    Some(Ok(Message::Binary(data))) => return data,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    other => panic!("message {i}: {other:?}\n{}", d.logs()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("message {i} did not come back\n{}", d.logs()));
        assert_eq!(got.len(), SIZE, "message {i}");
        assert!(
            got[..] == pattern(i, SIZE)[..],
            "message {i} came back changed"
        );
    }
    let tx = writer.await.expect("writer");
    let mut sock = tx.reunite(rx).expect("one socket");
    sock.close(None).await.expect("close");
    while sock.next().await.is_some() {}
    drop(sock);

    // The tunnel's bytes join the connection's in the metrics when it
    // closes.
    let url = format!("http://{}/metrics", d.admin_addr());
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let moved = (N * SIZE) as f64;
    assert!(
        crate::support::eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let text = client::get(&url).await.text();
                value(&text, "troupe_http_received_bytes_total ") >= moved
                    && value(&text, "troupe_http_sent_bytes_total ") >= moved
            }
        })
        .await,
        "{}",
        client::get(&url).await.text()
    );
}

/// A backend that answers the upgrade, waits `delay`, sends its last
/// words and closes: after a delay its bytes and its end of stream reach
/// the pump together; without one they may come with the 101.
fn parting_backend(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("sec-websocket-key: "))
                .unwrap_or("")
                .trim()
                .to_owned();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
                 sec-websocket-accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            let _ = conn.write_all(answer.as_bytes());
            std::thread::sleep(delay);
            let _ = conn.write_all(b"last words");
        }
    });
    addr
}

#[test]
fn a_backends_last_bytes_and_its_close_reach_the_client() {
    for delay in [Duration::ZERO, Duration::from_millis(300)] {
        let (_dir, d) = start(parting_backend(delay), "\n    workers: 1,");
        let mut s = TcpStream::connect(d.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("send");
        let started = Instant::now();
        let mut got = Vec::new();
        // Up to the end of the stream: the tunnel's idle timeout (60 s)
        // is far beyond the read timeout.
        let end = s.read_to_end(&mut got);
        let got = String::from_utf8_lossy(&got);
        assert!(
            end.is_ok(),
            "{delay:?}: no end of stream ({end:?}): {got}\n{}",
            d.logs()
        );
        assert!(got.starts_with("HTTP/1.1 101"), "{delay:?}: {got}");
        assert!(got.ends_with("\r\n\r\nlast words"), "{delay:?}: {got}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{delay:?}: {:?}",
            started.elapsed()
        );
    }
}
