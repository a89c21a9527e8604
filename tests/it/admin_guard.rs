//! The admin API cannot be driven from a browser (issue 14, P7.1): a
//! `Host` or `Origin` that is not the API's own is refused (DNS
//! rebinding, cross-site requests), a POST needs a JSON content type (no
//! form can send one), and wrong tokens are slowed down, then refused.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::support::{
    client::{raw, status_of},
    daemon,
    modules::config,
    server::TestServer,
};

const TOKEN: &str = "s3cret-admin-token";

/// A server whose admin API has `admin` settings; returns it and the
/// admin address.
async fn server(admin: &str) -> (TestServer, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let ron = config("", r#"(path: "/", handler: Return(body: "hi\n"))"#).replacen(
        "Config(",
        &format!("Config(admin: {admin},"),
        1,
    );
    let srv = TestServer::start_in(dir, &ron).await;
    let addr = srv.running().admin_addr().expect("admin listener");
    (srv, addr)
}

/// One request with these head lines (after the request line); returns
/// the status and the whole answer.
async fn ask(addr: SocketAddr, request_line: &str, lines: &[&str]) -> (u16, String) {
    let mut head = format!("{request_line}\r\n");
    for l in lines {
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let answer = raw(addr, head.as_bytes(), Duration::from_secs(20)).await;
    (status_of(&answer).unwrap_or(0), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_own_host_and_origin_are_answered() {
    let (_srv, addr) = server(r#"(listen: "127.0.0.1:0")"#).await;
    let port = addr.port();
    let get = "GET /health HTTP/1.1";
    for (host, want) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("LocalHost:{port}"), 200),
        // Another loopback address reaches the same socket.
        (format!("[::1]:{port}"), 200),
        // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
        (format!("evil.example:{port}"), 403),
        ("evil.example".into(), 403),
        // The right address on another port is another server.
        ("127.0.0.1:1".into(), 403),
        ("localhost".into(), 403),
        ("[bad".into(), 403),
    ] {
        let (status, answer) = ask(addr, get, &[&format!("Host: {host}")]).await;
        assert_eq!(status, want, "Host: {host}\n{answer}");
        if want == 403 {
            assert!(answer.contains("does not answer to Host"), "{answer}");
        }
    }
    // The page itself is refused to a rebound name too.
    let (status, _) = ask(addr, "GET / HTTP/1.1", &["Host: evil.example"]).await;
    assert_eq!(status, 403);
    // RFC 9112 §3.2: HTTP/1.1 needs Host; HTTP/1.0 may leave it out.
    assert_eq!(ask(addr, get, &[]).await.0, 400);
    assert_eq!(ask(addr, "GET /health HTTP/1.0", &[]).await.0, 200);

    let host = format!("Host: 127.0.0.1:{port}");
    for (origin, want) in [
        (format!("http://127.0.0.1:{port}"), 200),
        (format!("http://localhost:{port}"), 200),
        ("http://evil.example".into(), 403),
        (format!("http://evil.example:{port}"), 403),
        // Our address, but over https: another origin (port 443).
        ("https://127.0.0.1".into(), 403),
        // A sandboxed frame or a file:// page.
        ("null".into(), 403),
    ] {
        let (status, answer) = ask(addr, get, &[&host, &format!("Origin: {origin}")]).await;
        assert_eq!(status, want, "Origin: {origin}\n{answer}");
        if want == 403 {
            assert!(answer.contains("of origin"), "{answer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_needs_a_json_content_type() {
    let (_srv, addr) = server(r#"(listen: "127.0.0.1:0")"#).await;
    let host = format!("Host: 127.0.0.1:{}", addr.port());
    let post = "POST /config/reload HTTP/1.1";
    // What a cross-site form or a no-CORS fetch can send.
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/plain"),
    ] {
        let ct = ct.map(|c| format!("Content-Type: {c}"));
        let mut lines = vec![host.as_str(), "Content-Length: 0"];
        lines.extend(ct.as_deref());
        let (status, answer) = ask(addr, post, &lines).await;
        assert_eq!(status, 415, "{ct:?}\n{answer}");
        assert!(answer.contains("application/json"), "{answer}");
    }
    let (_, status_page) = ask(addr, "GET /config/status HTTP/1.1", &[&host]).await;
    assert!(status_page.contains(r#""reloads":0"#), "{status_page}");
    for ct in ["application/json", "Application/JSON; charset=utf-8"] {
        let ct = format!("Content-Type: {ct}");
        let (status, answer) = ask(addr, post, &[&host, &ct, "Content-Length: 0"]).await;
        assert_eq!(status, 200, "{ct}\n{answer}");
    }
    // A browser's preflight for a cross-site JSON POST gets no 2xx.
    let (status, _) = ask(
        addr,
        "OPTIONS /config/reload HTTP/1.1",
        &[
            &host,
            "Origin: http://evil.example",
            "Access-Control-Request-Method: POST",
        ],
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hosts_add_names() {
    let (_srv, addr) =
        server(r#"(listen: "127.0.0.1:0", allowed_hosts: ["admin.internal", "Ops.Example:8443"])"#)
            .await;
    let get = "GET /health HTTP/1.1";
    for (lines, want) in [
        (vec!["Host: admin.internal"], 200),
        (vec!["Host: ADMIN.internal:1234"], 200),
        (vec!["Host: ops.example:8443"], 200),
        (vec!["Host: ops.example"], 403),
        (
            vec!["Host: ops.example:8443", "Origin: https://ops.example:8443"],
            200,
        ),
        (
            vec!["Host: ops.example:8443", "Origin: https://ops.example"],
            403,
        ),
        (vec!["Host: other.internal"], 403),
    ] {
        let (status, answer) = ask(addr, get, &lines).await;
        assert_eq!(status, want, "{lines:?}\n{answer}");
    }
}

#[test]
fn a_bad_allowed_host_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.ron");
    let ron = config("", r#"(path: "/", handler: Return(body: "hi\n"))"#).replacen(
        "Config(",
        "Config(admin: (listen: \"127.0.0.1:0\",\n allowed_hosts: [\"http://admin.internal/\"]),",
        1,
    );
    std::fs::write(&path, ron).unwrap();
    let (code, out) = daemon::check(&path);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{}:2:", path.display()))
            && out.contains("`http://admin.internal/` is not a host name"),
        "{out}"
    );
}

#[test]
fn wrong_tokens_are_slowed_down_then_refused() {
    // The real binary, for its log.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let path = dir.path().join("config.ron");
    let ron = config("", "").replacen(
        "Config(",
        r#"Config(admin: (listen: "127.0.0.1:0", token_file: "admin.token"),"#,
        1,
    );
    std::fs::write(&path, ron).unwrap();
    let d = daemon::Daemon::start(&path);
    let addr: SocketAddr = d.admin_addr().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host = format!("Host: 127.0.0.1:{}", addr.port());
    let get = "GET /health HTTP/1.1";
    let wrong = "Authorization: Bearer guess";
    // Five guesses are answered at once.
    let t0 = Instant::now();
    for _ in 0..5 {
        assert_eq!(rt.block_on(ask(addr, get, &[&host, wrong])).0, 401);
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // The sixth waits for its place (a second after the burst).
    let t1 = Instant::now();
    assert_eq!(rt.block_on(ask(addr, get, &[&host, wrong])).0, 401);
    assert!(
        t1.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t1.elapsed()
    );
    // A missing token is no guess, and the right one is not slowed.
    let t2 = Instant::now();
    assert_eq!(rt.block_on(ask(addr, get, &[&host])).0, 401);
    let right = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(rt.block_on(ask(addr, get, &[&host, &right])).0, 200);
    assert!(
        t2.elapsed() < Duration::from_millis(500),
        "{:?}",
        t2.elapsed()
    );
    // Guesses in parallel queue a second apart; beyond five seconds of
    // queue they are refused at once, with when to come back. (15: the
    // admin API takes 16 connections at most.)
    let answers = rt.block_on(async {
        let guesses: Vec<_> = (0..15)
            .map(|_| {
                let host = host.clone();
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (status, answer) = ask(addr, get, &[&host, wrong]).await;
                    (status, answer, t.elapsed())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for g in guesses {
            answers.push(g.await.unwrap());
        }
        answers
    });
    let mut refused = 0;
    for (status, answer, took) in answers {
        match status {
            401 => {}
            429 => {
                refused += 1;
                assert!(took < Duration::from_secs(2), "{took:?}");
                assert!(
                    answer.to_ascii_lowercase().contains("retry-after: "),
                    "{answer}"
                );
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert!(refused >= 3, "{refused} of 15 refused");
    let logs = d.logs();
    assert!(logs.contains("repeated wrong tokens"), "{logs}");
}
