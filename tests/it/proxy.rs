//! The reverse proxy (issue 13) on the real binary, with real backends
//! (small hyper servers, `support::backend`) on loopback.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::support::{
    backend::{Behaviour, TestBackend},
    client,
    daemon::Daemon,
};

/// A config with `upstreams` and the routes of one server, `extra` at
/// the top level; written to a temp dir and started.
pub(crate) fn start(upstreams: &str, routes: &str, extra: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config(upstreams, routes, extra)).expect("write config");
    let d = Daemon::start(&path);
    (dir, d)
}

pub(crate) fn config(upstreams: &str, routes: &str, extra: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    limits: (max_body_bytes: 200000000),
    upstreams: {{ {upstreams} }},
    {extra}
    servers: [( routes: [ {routes} ] )],
)"#
    )
}

/// A group of `backends` with `settings` (RON fields, may be empty).
pub(crate) fn group(name: &str, backends: &[&TestBackend], settings: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("(addr: \"{}\")", b.addr))
        .collect();
    format!("\"{name}\": (backends: [{}], {settings}),", list.join(", "))
}

pub(crate) fn url(d: &Daemon, path: &str) -> String {
    format!("http://{}{path}", d.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_backends_in_turn() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let b = TestBackend::start("b", Behaviour::default()).await;
    let (_dir, d) = start(
        &group("app", &[&a, &b], ""),
        r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#,
        "",
    );
    let c = client::h1();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = client::send(
            &c,
            Request::get(url(&d, "/x?y=1"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        seen.push(r.text());
    }
    assert_eq!(
        seen,
        [
            "hello from a",
            "hello from b",
            "hello from a",
            "hello from b"
        ]
    );
    // The query and the method arrive as sent.
    let r = client::get(&url(&d, "/headers?q=1")).await;
    assert!(
        r.text().starts_with("GET /headers?q=1 HTTP/1.1\n"),
        "{}",
        r.text()
    );
    assert_eq!(a.hits() + b.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_set() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let routes = r#"
        (path: "/headers", handler: Proxy(upstream: "app")),
        (path: "/hop", handler: Proxy(upstream: "app")),
        (path: "/backend/headers", handler: Proxy(upstream: "app", host: Backend)),
        (path: "/set/headers", handler: Proxy(upstream: "app", host: Set("app.internal"))),
    "#;
    let (_dir, d) = start(&group("app", &[&a], ""), routes, "");
    let raw = |path: &str, extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: X-Forwarded-For, X-Drop, close\r\n\
             X-Drop: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers, deflate\r\n\
             X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\n{extra}\r\n"
        )
    };
    // What the backend saw: the body of the answer.
    let seen_at = |got: &str| {
        got.split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_ascii_lowercase())
    };
    let got = client::raw(
        d.addr,
        raw("/headers", "").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(client::status_of(&got), Some(200), "{got}");
    let seen = seen_at(&got);
    // Named in Connection, and hop-by-hop: gone. Ours: set, not deleted.
    for gone in [
        "x-drop:",
        "keep-alive:",
        "connection:",
        "6.6.6.6",
        "deflate",
    ] {
        assert!(!seen.contains(gone), "`{gone}` reached the backend:\n{got}");
    }
    for kept in [
        "host: example.test\n",
        "x-forwarded-for: 127.0.0.1\n",
        "x-forwarded-proto: http\n",
        "x-forwarded-host: example.test\n",
        "forwarded: for=127.0.0.1;proto=http;host=example.test\n",
        "te: trailers\n",
    ] {
        assert!(
            seen.contains(kept),
            "expected `{kept}` at the backend:\n{got}"
        );
    }
    // Host rewritten.
    let got = client::raw(
        d.addr,
        raw("/backend/headers", "").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        seen_at(&got).contains(&format!("host: {}\n", a.addr)),
        "{got}"
    );
    let got = client::raw(
        d.addr,
        raw("/set/headers", "").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(seen_at(&got).contains("host: app.internal\n"), "{got}");
    // The backend's own hop-by-hop headers stop at the proxy.
    let r = client::get(&url(&d, "/hop")).await;
    assert_eq!(r.text(), "hop");
    assert!(r.header("x-internal").is_none() && r.header("keep-alive").is_none());
    assert_eq!(r.header("x-backend"), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_adds_the_forwarding_headers_it_chooses_and_never_a_forged_one() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let routes = r#"
        (path: "/off/headers", handler: Proxy(upstream: "app", forwarded: Off)),
        (path: "/x/headers", handler: Proxy(upstream: "app", forwarded: XForwarded)),
        (path: "/rfc/headers", handler: Proxy(upstream: "app", forwarded: Rfc7239)),
    "#;
    let (_dir, d) = start(&group("app", &[&a], ""), routes, "");
    let forged = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.test"),
        ("forwarded", "for=6.6.6.6"),
    ];
    let seen = |path: &'static str| {
        let url = url(&d, path);
        async move {
            let r = client::get_with(&url, &forged).await;
            assert_eq!(r.status, StatusCode::OK);
            r.text().to_ascii_lowercase()
        }
    };
    let names = |seen: &str| -> Vec<String> {
        seen.lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
            .filter(|n| n.starts_with("x-forwarded") || n == "forwarded")
            .collect()
    };
    // Off (nginx's default): the backend sees none, the forged ones least of all.
    let off = seen("/off/headers").await;
    assert!(names(&off).is_empty(), "{off}");
    // The X- trio, ours.
    let x = seen("/x/headers").await;
    assert_eq!(
        names(&x),
        ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"],
        "{x}"
    );
    assert!(x.contains("x-forwarded-for: 127.0.0.1\n"), "{x}");
    assert!(x.contains("x-forwarded-proto: http\n"), "{x}");
    assert!(!x.contains("6.6.6.6") && !x.contains("evil.test"), "{x}");
    // `Forwarded` alone, ours.
    let rfc = seen("/rfc/headers").await;
    assert_eq!(names(&rfc), ["forwarded"], "{rfc}");
    assert!(
        rfc.contains("forwarded: for=127.0.0.1;proto=http;host="),
        "{rfc}"
    );
    // And a bad value is refused at load, naming where.
    let bad = config(
        &group("app", &[&a], ""),
        r#"(path: "/", handler: Proxy(upstream: "app", forwarded: Some))"#,
        "",
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, bad).expect("write");
    let (code, err) = crate::support::daemon::check(&path);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("config.ron:") && err.contains("Some"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_proxy_are_extended() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let (_dir, d) = start(
        &group("app", &[&a], ""),
        r#"(path: "/headers", handler: Proxy(upstream: "app"))"#,
        r#"trusted_proxies: ["127.0.0.0/8"],"#,
    );
    let r = client::get_with(
        &url(&d, "/headers"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=203.0.113.9;proto=https"),
        ],
    )
    .await;
    let seen = r.text();
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    assert!(
        seen.contains("forwarded: for=203.0.113.9;proto=https, for=127.0.0.1;proto=http"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_answer_502_504_and_503() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let slow = TestBackend::start("slow", Behaviour::default()).await;
    let upstreams = format!(
        r#""gone": (backends: [(addr: "{closed}")]),
        "slow": (backends: [(addr: "{}")], read_timeout: "300ms"),
        "one": (backends: [(addr: "{}")], pool: (max_total: 1)),"#,
        slow.addr, slow.addr
    );
    let routes = r#"
        (path: "/gone", handler: Proxy(upstream: "gone")),
        (path: "/slow", handler: Proxy(upstream: "slow")),
        (path: "/one/{*rest}", handler: Proxy(upstream: "one")),
    "#;
    let (_dir, d) = start(&upstreams, routes, "");
    // Refused: 502, again and again (all out → all tried anyway).
    for _ in 0..3 {
        let r = client::get(&url(&d, "/gone")).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        assert_eq!(r.text(), "502 Bad Gateway\n");
    }
    assert!(d.wait_for_log("upstream connect failed", Duration::from_secs(5)));
    assert!(
        d.logs()
            .contains(&format!("upstream=\"gone\" backend={closed}"))
            || d.logs()
                .contains(&format!("upstream=gone backend={closed}")),
        "{}",
        d.logs()
    );
    // Too slow: 504 after the read timeout.
    let t = Instant::now();
    let r = client::get(&url(&d, "/slow?ms=3000")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(t.elapsed() < Duration::from_secs(2));
    // Full: one connection allowed, held by a slow request → 503.
    let held = tokio::spawn(client::get(url(&d, "/one/slow?ms=1000").leak()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client::get(&url(&d, "/one/x")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
    // Once it is free, the pooled connection serves again.
    assert_eq!(client::get(&url(&d, "/one/x")).await.status, StatusCode::OK);
}

#[test]
fn an_unknown_upstream_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(
        &path,
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    upstreams: { \"app\": (backends: [(addr: \"127.0.0.1:9\")]) },\n    servers: [(routes: [\n        (path: \"/\", handler: Proxy(upstream: \"nope\")),\n    ])],\n)\n",
    )
    .unwrap();
    let (code, stderr) = crate::support::daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:5:46: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in {stderr}");
    assert!(
        stderr.contains("no upstream named `nope`") && stderr.contains("app"),
        "{stderr}"
    );
}

/// Sends GETs to `path` on `clients` keep-alive clients until `stop`;
/// returns the non-200 answers and counts the rest in `ok`.
pub(crate) fn load(
    d: &Daemon,
    path: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..clients)
        .map(|_| {
            let (u, stop, ok) = (url(d, path), stop.clone(), ok.clone());
            tokio::spawn(async move {
                let c = client::h1();
                let mut bad = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let req = Request::get(u.as_str()).body(Full::default()).unwrap();
                    match c.request(req).await {
                        Ok(resp) if resp.status() == StatusCode::OK => {
                            let _ = resp.into_body().collect().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(resp) => bad.push(resp.status().to_string()),
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                bad
            })
        })
        .collect()
}

/// Stops the `load` clients and asserts that none failed and that more
/// than `at_least` requests succeeded.
pub(crate) async fn stop_load(
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
    ok: &AtomicU64,
    at_least: u64,
) {
    stop.store(true, Ordering::Relaxed);
    let mut bad = Vec::new();
    for t in tasks {
        bad.extend(t.await.expect("load task"));
    }
    assert!(
        bad.is_empty(),
        "{} failed, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    let ok = ok.load(Ordering::Relaxed);
    assert!(ok > at_least, "only {ok} requests succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_costs_no_idempotent_request_and_comes_back() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let mut b = TestBackend::start("b", Behaviour::default()).await;
    let c = TestBackend::start("c", Behaviour::default()).await;
    let (_dir, d) = start(
        &group("app", &[&a, &b, &c], "health: (fail_timeout: \"1s\")"),
        r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#,
        "",
    );
    let (stop, ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks = load(&d, "/x", 8, stop.clone(), ok.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = b.addr;
    b.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Out: while dead, it is tried at most once per fail_timeout.
    let b = TestBackend::start_on("b", addr, Behaviour::default()).await;
    let hits = b.hits.clone();
    let came_back = crate::support::eventually(Duration::from_secs(5), move || {
        let hits = hits.clone();
        async move { hits.load(Ordering::Relaxed) > 10 }
    })
    .await;
    stop_load(&stop, tasks, &ok, 200).await;
    assert!(came_back, "the backend got no traffic after it came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_reached_a_dying_backend_is_not_retried() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let b = TestBackend::start("b", Behaviour::default()).await;
    let (_dir, d) = start(
        &group("app", &[&a, &b], ""),
        r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#,
        "",
    );
    let c = client::h1();
    let r = client::send(
        &c,
        Request::post(url(&d, "/die"))
            .body(Full::new(Bytes::from("once")))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.hits() + b.hits(), 1, "the POST was sent again");
    // A GET is idempotent: it is tried on the other backend too.
    let r = client::get(&url(&d, "/die")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.hits() + b.hits(), 3);
}

/// Shares of `n` GETs over 16 clients, by the `x-backend` that answered.
async fn shares(d: &Daemon, path: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let counts = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (u, counts) = (url(d, path), counts.clone());
            tokio::spawn(async move {
                let c = client::h1();
                for _ in 0..n / 16 {
                    let r =
                        client::send(&c, Request::get(u.as_str()).body(Full::default()).unwrap())
                            .await;
                    assert_eq!(r.status, StatusCode::OK);
                    let who = r.header("x-backend").unwrap_or("?").to_owned();
                    *counts.lock().unwrap().entry(who).or_insert(0) += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    counts.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_aware_policies_avoid_a_slow_backend() {
    let fast1 = TestBackend::start("fast1", Behaviour::default()).await;
    let fast2 = TestBackend::start("fast2", Behaviour::default()).await;
    let slow = TestBackend::start(
        "slow",
        Behaviour {
            delay: Duration::from_millis(20),
            ..Behaviour::default()
        },
    )
    .await;
    let all = [&fast1, &fast2, &slow];
    let upstreams =
        group("ewma", &all, "policy: PeakEwma") + &group("least", &all, "policy: LeastConn");
    let routes = r#"
        (path: "/ewma/{*rest}", handler: Proxy(upstream: "ewma")),
        (path: "/least/{*rest}", handler: Proxy(upstream: "least")),
    "#;
    let (_dir, d) = start(&upstreams, routes, "");
    for policy in ["ewma", "least"] {
        let counts = shares(&d, &format!("/{policy}/x"), 1600).await;
        let total: usize = counts.values().sum();
        let slow = counts.get("slow").copied().unwrap_or(0);
        assert!(
            slow * 5 < total,
            "{policy}: the slow backend got {slow} of {total}: {counts:?}"
        );
        assert!(
            counts.contains_key("fast1") && counts.contains_key("fast2"),
            "{counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_keeps_each_key_on_one_backend() {
    let bs = [
        TestBackend::start("a", Behaviour::default()).await,
        TestBackend::start("b", Behaviour::default()).await,
        TestBackend::start("c", Behaviour::default()).await,
    ];
    let (_dir, d) = start(
        &group(
            "app",
            &[&bs[0], &bs[1], &bs[2]],
            "policy: Hash(Header(\"x-user\"))",
        ),
        r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#,
        "",
    );
    let mut used = std::collections::BTreeSet::new();
    for user in 0..30 {
        let user = format!("user{user}");
        let mut who = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let r = client::get_with(&url(&d, "/x"), &[("x-user", &user)]).await;
            who.insert(r.header("x-backend").unwrap_or("?").to_owned());
        }
        assert_eq!(who.len(), 1, "{user} went to {who:?}");
        used.extend(who);
    }
    assert_eq!(used.len(), 3, "30 keys over 3 backends used {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_keeps_a_backend_keeps_its_pooled_connections() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let route = r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#;
    let (dir, d) = start(&group("app", &[&a], ""), route, "");
    let c = client::h1();
    async fn five(c: &client::H1, d: &Daemon) {
        for _ in 0..5 {
            let r =
                client::send(c, Request::get(url(d, "/x")).body(Full::default()).unwrap()).await;
            assert_eq!(r.text(), "hello from a");
        }
    }
    five(&c, &d).await;
    assert_eq!(a.conns.load(Ordering::Relaxed), 1, "one pooled connection");
    // Another setting for the group; the same backend.
    std::fs::write(
        dir.path().join("config.ron"),
        config(&group("app", &[&a], "read_timeout: \"30s\""), route, ""),
    )
    .expect("rewrite");
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("upstreams changed", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    five(&c, &d).await;
    assert_eq!(a.hits(), 10);
    assert_eq!(
        a.conns.load(Ordering::Relaxed),
        1,
        "the new generation took the old one's connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_backend_and_its_time() {
    use crate::support::{eventually, server::TestServer};
    let a = TestBackend::start("a", Behaviour::default()).await;
    for format in ["Combined", "Json"] {
        let srv = TestServer::start(&format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: File("access.log"), format: {format}),
    upstreams: {{ {} }},
    servers: [(routes: [
        (path: "/p", handler: Proxy(upstream: "app")),
        (path: "/here", handler: Return(body: "here")),
    ])],
)"#,
            group("app", &[&a], "")
        ))
        .await;
        assert_eq!(client::get(&srv.url("/p")).await.text(), "hello from a");
        assert_eq!(client::get(&srv.url("/here")).await.text(), "here");
        let path = srv.dir.path().join("access.log");
        let p = path.clone();
        assert!(
            eventually(Duration::from_secs(5), move || {
                let p = p.clone();
                async move { std::fs::read_to_string(&p).is_ok_and(|t| t.lines().count() >= 2) }
            })
            .await
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        match format {
            "Combined" => {
                // ... "GET /p HTTP/1.1" 200 12 "-" "-" 127.0.0.1:PORT 0.001
                let tail = format!("\"-\" \"-\" {} 0.", a.addr);
                assert!(lines[0].contains(&tail), "{}", lines[0]);
                assert!(lines[1].ends_with("\"-\" \"-\""), "{}", lines[1]);
            }
            _ => {
                let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
                assert_eq!(first["upstream_addr"], a.addr.to_string());
                assert!(
                    first["upstream_response_time_ms"]
                        .as_f64()
                        .is_some_and(|t| t >= 0.0)
                );
                let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
                assert!(second.get("upstream_addr").is_none(), "{second}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_through() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let (_dir, d) = start(
        &group("app", &[&a], ""),
        r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#,
        "",
    );
    let req = Request::get(url(&d, "/trailers"))
        .header("te", "trailers")
        .body(Full::default())
        .unwrap();
    let resp = client::h1().request(req).await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    assert_eq!(collected.to_bytes(), "abc");
    let trailers = trailers.expect("trailers reached the client");
    assert_eq!(trailers["x-checksum"], "42");
}
