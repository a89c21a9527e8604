//! The reverse proxy's upstream protocols on the real binary: TLS to
//! backends (verified with a configured CA or the system's roots, SNI,
//! a client certificate), HTTP/2 with prior knowledge, more HTTP/2
//! connections when one is full of streams, ALPN's choice with `Auto`,
//! and a reload that changes how a backend is spoken to.

use std::time::Duration;

use http::StatusCode;

use crate::support::{
    backend::{Behaviour, TestBackend, tls_server, tls_server_asking},
    client,
    daemon::Daemon,
    tls::Pki,
};

/// Starts the binary with `upstreams` and one server whose `/NAME/…`
/// routes go to the group `NAME`, for each of `groups`.
fn start(dir: &std::path::Path, upstreams: &str, groups: &[&str]) -> Daemon {
    let routes: Vec<String> = groups
        .iter()
        .map(|g| format!(r#"(path: "/{g}/{{*rest}}", handler: Proxy(upstream: "{g}")),"#))
        .collect();
    let path = dir.join("config.ron");
    std::fs::write(
        &path,
        format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    upstreams: {{ {upstreams} }},
    servers: [( routes: [ {} ] )],
)"#,
            routes.concat()
        ),
    )
    .expect("write config");
    Daemon::start_logging(&path, "info")
}

fn url(d: &Daemon, path: &str) -> String {
    format!("http://{}{path}", d.addr)
}

fn pki() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().expect("dir");
    let pki = Pki::new(dir.path());
    (dir, pki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_is_verified_with_the_configured_ca_and_sees_the_sni() {
    let (dir, pki) = pki();
    let tls = Behaviour {
        tls: Some(tls_server(&pki, "a", &["http/1.1"])),
        ..Default::default()
    };
    let b = TestBackend::start("secure", tls).await;
    let ca = pki.path("ca.pem");
    let d = start(
        dir.path(),
        &format!(
            r#""ok": (backends: [(addr: "{a}")], tls: (ca: "{ca}", server_name: "a.test")),
               "nameless": (backends: [(addr: "{a}")], tls: (ca: "{ca}")),
               "system": (backends: [(addr: "{a}")], tls: (server_name: "a.test")),"#,
            a = b.addr,
            ca = ca.display()
        ),
        &["ok", "nameless", "system"],
    );
    for _ in 0..2 {
        let r = client::get(&url(&d, "/ok/headers")).await;
        assert_eq!(r.status, StatusCode::OK, "{}\n{}", r.text(), d.logs());
        assert_eq!(r.header("x-sni"), Some("a.test"));
        assert!(
            r.text().starts_with("GET /ok/headers HTTP/1.1"),
            "{}",
            r.text()
        );
    }
    // The TLS connection was kept and reused.
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::Relaxed), 1);

    // Without a name, the certificate must carry the IP address: it does not.
    let r = client::get(&url(&d, "/nameless/x")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // The system's roots do not have the test CA.
    let r = client::get(&url(&d, "/system/x")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        d.wait_for_log("UnknownIssuer", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("UnknownIssuer"))
        .expect("a line");
    assert!(
        line.contains("upstream connect failed")
            && line.contains("system")
            && line.contains(&b.addr.to_string())
            && line.contains("TLS handshake failed"),
        "{line}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("nameless") && l.contains("TLS handshake failed")),
        "{logs}"
    );
    assert_eq!(b.hits(), 2, "no request reached the backend unverified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_asking_for_a_client_certificate_gets_the_configured_one() {
    let (dir, pki) = pki();
    let asking = Behaviour {
        tls: Some(tls_server_asking(&pki, "a")),
        ..Default::default()
    };
    let b = TestBackend::start("mtls", asking).await;
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.crt"),
        pki.path("client.key"),
    );
    let d = start(
        dir.path(),
        &format!(
            r#""with": (backends: [(addr: "{a}")], tls: (ca: "{ca}", server_name: "a.test", client_cert: "{cert}", client_key: "{key}")),
               "without": (backends: [(addr: "{a}")], tls: (ca: "{ca}", server_name: "a.test")),"#,
            a = b.addr,
            ca = ca.display(),
            cert = cert.display(),
            key = key.display()
        ),
        &["with", "without"],
    );
    let r = client::get(&url(&d, "/with/x")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
    assert_eq!(r.text(), "hello from mtls");
    let r = client::get(&url(&d, "/without/x")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", d.logs());
    assert_eq!(b.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_backend_with_prior_knowledge_gets_http2() {
    let dir = tempfile::tempdir().expect("dir");
    let h2 = Behaviour {
        h2: true,
        ..Default::default()
    };
    let b = TestBackend::start("h2", h2).await;
    let d = start(
        dir.path(),
        &format!(
            r#""app": (backends: [(addr: "{}")], protocol: Http2),"#,
            b.addr
        ),
        &["app"],
    );
    let r = client::get(&url(&d, "/app/headers?q=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
    let text = r.text();
    // The client's Host went as :authority.
    assert!(
        text.starts_with(&format!("GET http://{}/app/headers?q=1 HTTP/2.0", d.addr)),
        "{text}"
    );
    let c = client::h1();
    let r = client::send(
        &c,
        http::Request::post(url(&d, "/app/upload"))
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"hello",
            )))
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "5"));
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_h2_connection_makes_the_pool_open_another() {
    let dir = tempfile::tempdir().expect("dir");
    let h2 = Behaviour {
        h2: true,
        max_streams: Some(2),
        ..Default::default()
    };
    let b = TestBackend::start("h2", h2).await;
    let d = start(
        dir.path(),
        &format!(
            r#""app": (backends: [(addr: "{}")], protocol: Http2, pool: (max_streams: 2)),"#,
            b.addr
        ),
        &["app"],
    );
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let u = url(&d, "/app/slow?ms=700");
            tokio::spawn(async move { client::get(&u).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
        assert_eq!(r.text(), "slow");
    }
    let conns = b.conns.load(std::sync::atomic::Ordering::Relaxed);
    assert!((2..=3).contains(&conns), "{conns} connections");
    // Three connections of two streams: all at once, not in turns.
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_speaks_what_alpn_chose() {
    let (dir, pki) = pki();
    let both = TestBackend::start(
        "both",
        Behaviour {
            tls: Some(tls_server(&pki, "a", &["h2", "http/1.1"])),
            ..Default::default()
        },
    )
    .await;
    let h1 = TestBackend::start(
        "h1",
        Behaviour {
            tls: Some(tls_server(&pki, "a", &["http/1.1"])),
            ..Default::default()
        },
    )
    .await;
    let tls = format!(
        r#"tls: (ca: "{}", server_name: "a.test")"#,
        pki.path("ca.pem").display()
    );
    let d = start(
        dir.path(),
        &format!(
            r#""both": (backends: [(addr: "{}")], protocol: Auto, {tls}),
               "h1": (backends: [(addr: "{}")], protocol: Auto, {tls}),"#,
            both.addr, h1.addr
        ),
        &["both", "h1"],
    );
    for _ in 0..2 {
        let r = client::get(&url(&d, "/both/headers")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
        assert!(r.text().contains(" HTTP/2.0\n"), "{}", r.text());
        assert_eq!(r.header("x-sni"), Some("a.test"));
        let r = client::get(&url(&d, "/h1/headers")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
        assert!(
            r.text().starts_with("GET /h1/headers HTTP/1.1\n"),
            "{}",
            r.text()
        );
    }
    assert_eq!(both.conns.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(h1.conns.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn bad_upstream_tls_settings_are_refused_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    let check = |body: &str| {
        std::fs::write(
            &path,
            format!(
                "Config(\n    listen: [\"127.0.0.1:0\"],\n    upstreams: {{\n{body}\n    }},\n    servers: [(routes: [])],\n)\n"
            ),
        )
        .unwrap();
        let (code, stderr) = crate::support::daemon::check(&path);
        assert_eq!(code, Some(1), "{stderr}");
        stderr
    };
    let stderr = check(
        "        \"app\": (backends: [(addr: \"127.0.0.1:9\")], tls: (ca: \"no-such-ca.pem\")),",
    );
    let at = format!("{}:4:62: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in {stderr}");
    assert!(stderr.contains("no-such-ca.pem"), "{stderr}");

    let stderr = check("        \"app\": (backends: [(addr: \"127.0.0.1:9\")], protocol: Auto),");
    let at = format!("{}:4:52: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in {stderr}");
    assert!(stderr.contains("needs TLS"), "{stderr}");

    let stderr = check("        \"app\": (backends: [(addr: \"127.0.0.1:9\")], tls: (bogus: 1)),");
    assert!(stderr.contains(":4:"), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_the_protocol_leaves_the_old_connections_unused() {
    let (dir, pki) = pki();
    let both = Behaviour {
        tls: Some(tls_server(&pki, "a", &["h2", "http/1.1"])),
        ..Default::default()
    };
    let b = TestBackend::start("both", both).await;
    let group = |protocol: &str| {
        format!(
            r#""app": (backends: [(addr: "{}")], protocol: {protocol}, tls: (ca: "{}", server_name: "a.test")),"#,
            b.addr,
            pki.path("ca.pem").display()
        )
    };
    let d = start(dir.path(), &group("Http1"), &["app"]);
    let r = client::get(&url(&d, "/app/headers")).await;
    assert!(
        r.text().starts_with("GET /app/headers HTTP/1.1\n"),
        "{}",
        r.text()
    );
    // The same backend, now spoken to by ALPN's choice.
    let config = std::fs::read_to_string(dir.path().join("config.ron")).expect("config");
    std::fs::write(
        dir.path().join("config.ron"),
        config.replace("protocol: Http1", "protocol: Auto"),
    )
    .expect("rewrite");
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("upstreams changed", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    for _ in 0..2 {
        let r = client::get(&url(&d, "/app/headers")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
        assert!(r.text().contains(" HTTP/2.0\n"), "{}", r.text());
    }
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// An HTTP health check speaks to a backend the way requests do: over
/// TLS with the group's CA and name, and HTTP/2 when the group does. A
/// probe in plain HTTP/1.1 would fail both and take healthy backends out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_go_over_the_groups_tls_and_http2() {
    use std::sync::atomic::Ordering;
    let (dir, pki) = pki();
    let tls = Behaviour {
        tls: Some(tls_server(&pki, "a", &["h2"])),
        ..Default::default()
    };
    let b = TestBackend::start("secure", tls).await;
    let d = start(
        dir.path(),
        &format!(
            r#""h2s": (backends: [(addr: "{a}")], protocol: Http2,
                       tls: (ca: "{ca}", server_name: "a.test"),
                       health: (check: (probe: Http(path: "/healthz"), interval: "100ms", rise: 1, fall: 2))),"#,
            a = b.addr,
            ca = pki.path("ca.pem").display()
        ),
        &["h2s"],
    );
    // Several rounds of probes pass: the backend is never reported down.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!d.logs().contains("upstream backend down"), "{}", d.logs());
    let r = client::get(&url(&d, "/h2s/headers")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
    // And they do see a sick backend.
    b.sick.store(true, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !d.logs().contains("upstream backend down") {
        assert!(std::time::Instant::now() < deadline, "{}", d.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.logs().contains("status 503"), "{}", d.logs());
}
