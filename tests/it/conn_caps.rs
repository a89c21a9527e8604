//! Connection caps (issue 14, P7.2): a global cap that pauses accepting
//! or closes new connections, a per-address cap, and the admin API's own
//! small cap; connections already open keep being served.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::support::{modules::config, server::TestServer};

const GET: &[u8] = b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n";

/// A server with these `limits`.
async fn server(limits: &str) -> (TestServer, SocketAddr) {
    let ron = config("", "").replacen("Config(", &format!("Config(limits: ({limits}),"), 1);
    let srv = TestServer::start(&ron).await;
    let addr = srv.addr;
    (srv, addr)
}

/// Connects from `from` (a loopback address) to `to`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends one keep-alive request; `Some(true)` for the answer, `Some(false)`
/// for a close without one, `None` for nothing within `within`.
async fn ask(s: &mut TcpStream, within: Duration) -> Option<bool> {
    if s.write_all(GET).await.is_err() {
        return Some(false);
    }
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.ends_with(b"Hello, World!\n") {
                return true;
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()
}

const SOON: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_new_connections_are_closed_and_open_ones_served() {
    let (srv, addr) = server("max_connections: 3, at_connection_cap: Close").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(ask(&mut s, SOON).await, Some(true));
        open.push(s);
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut fourth, SOON).await, Some(false), "closed at once");
    for s in &mut open {
        assert_eq!(ask(s, SOON).await, Some(true), "the open ones are served");
    }
    drop(open.pop());
    // The place is given back when the connection's task ends.
    let mut served = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if ask(&mut s, SOON).await == Some(true) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a place came free");
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_accepting_pauses_until_one_closes() {
    let (_srv, addr) = server("max_connections: 2").await;
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut a, SOON).await, Some(true));
    assert_eq!(ask(&mut b, SOON).await, Some(true));
    // The kernel completes the handshake (the backlog); Troupe does not
    // take the connection yet.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut waiting, Duration::from_millis(800)).await, None);
    assert_eq!(
        ask(&mut a, SOON).await,
        Some(true),
        "the open ones are served"
    );
    drop(b);
    // Its request was sent already: the answer comes once it is accepted.
    let mut got = Vec::new();
    let answered = tokio::time::timeout(SOON, async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = waiting.read(&mut buf).await {
            if n == 0 {
                return false;
            }
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"Hello, World!\n") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(answered, Ok(true), "{}", String::from_utf8_lossy(&got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_address_gets_its_share() {
    let (_srv, addr) = server("max_connections_per_ip: 2").await;
    let mut mine = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.1", addr).await;
        assert_eq!(ask(&mut s, SOON).await, Some(true));
        mine.push(s);
    }
    let mut third = connect_from("127.0.0.1", addr).await;
    assert_eq!(ask(&mut third, SOON).await, Some(false), "over its share");
    // Another client address is not touched.
    let mut other = connect_from("127.0.0.2", addr).await;
    assert_eq!(ask(&mut other, SOON).await, Some(true));
    for s in &mut mine {
        assert_eq!(ask(s, SOON).await, Some(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_has_its_own_small_cap() {
    let ron = config("", "").replacen("Config(", r#"Config(admin: (listen: "127.0.0.1:0"),"#, 1);
    let srv = TestServer::start(&ron).await;
    let admin = srv.running().admin_addr().expect("admin listener");
    let health = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        admin.port()
    );
    let mut open = Vec::new();
    for _ in 0..16 {
        let mut s = TcpStream::connect(admin).await.unwrap();
        s.write_all(health.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(SOON, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        open.push(s);
    }
    let mut seventeenth = TcpStream::connect(admin).await.unwrap();
    let _ = seventeenth.write_all(health.as_bytes()).await;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(SOON, seventeenth.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed: {}", String::from_utf8_lossy(&buf[..n]));
    // The request path is not touched by the admin's cap.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(ask(&mut s, SOON).await, Some(true));
}

#[test]
fn out_of_descriptors_the_listener_backs_off_logs_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config("", "")).unwrap();
    let d = crate::support::daemon::Daemon::start(&path);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .count()
    };
    // Room for a few connections more than it holds now.
    let limit = fds() + 8;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // More clients than descriptors: the kernel takes them all (the
        // backlog), the server can accept only some.
        let mut clients = Vec::new();
        for _ in 0..24 {
            clients.push(TcpStream::connect(d.addr).await.unwrap());
        }
        let mut served = 0;
        for c in &mut clients {
            if ask(c, Duration::from_millis(300)).await == Some(true) {
                served += 1;
            }
        }
        assert!(
            served < 24,
            "every client was served: the limit did not bite"
        );
        // It keeps trying (backing off) without a line per try.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let logs = d.logs();
        assert_eq!(
            logs.matches("accept failed; backing off").count(),
            1,
            "{logs}"
        );
        drop(clients);
        // Descriptors come back as those connections close.
        let mut ok = false;
        for _ in 0..100 {
            let mut s = TcpStream::connect(d.addr).await.unwrap();
            if ask(&mut s, Duration::from_millis(500)).await == Some(true) {
                ok = true;
                break;
            }
        }
        assert!(ok, "never served again:\n{}", d.logs());
    });
    assert!(
        d.wait_for_log("accepting again", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
}
