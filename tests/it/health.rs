//! Active health checks of upstream groups (issue 13), on the real
//! binary with real backends: a group's actor under `upstreams` probes
//! each backend, and requests skip the ones it found down.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{
    proxy::{config, group, load, start, stop_load, url},
    support::{
        backend::{Behaviour, TestBackend},
        client,
        daemon::{self, Daemon},
        eventually,
    },
};

const ROUTE: &str = r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#;

/// The backends (`x-backend`) that answered `n` requests to `/x`, in order.
async fn answers(d: &Daemon, n: usize) -> Vec<String> {
    let c = client::h1();
    let mut seen = Vec::new();
    for _ in 0..n {
        let r = client::send(
            &c,
            http::Request::get(url(d, "/x"))
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, http::StatusCode::OK, "{}", r.text());
        seen.push(r.text().trim_start_matches("hello from ").to_owned());
    }
    seen
}

/// The line logged when active checks take `b` out (or bring it back).
fn turned(b: &TestBackend, down: bool) -> String {
    let what = if down { "down" } else { "up" };
    format!("upstream backend {what}") + &format!("|{}", b.addr) // both must be on one line; see `logged`
}

/// Whether one log line has both parts of `turned`.
fn logged(d: &Daemon, needle: &str) -> bool {
    let (what, addr) = needle.split_once('|').expect("two parts");
    d.logs()
        .lines()
        .any(|l| l.contains(what) && l.contains(&format!("backend={addr}")))
}

async fn wait_logged(d: &Daemon, needle: &str, within: Duration) -> bool {
    eventually(within, || async { logged(d, needle) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_path_takes_a_backend_out_after_fall_checks_and_back_after_rise() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let b = TestBackend::start("b", Behaviour::default()).await;
    let check = r#"health: (check: (probe: Http(path: "/healthz"), interval: "100ms", timeout: "1s", rise: 2, fall: 3))"#;
    let (_dir, d) = start(
        &group("app", &[&a, &b], check),
        ROUTE,
        r#"admin: (listen: "127.0.0.1:0"),"#,
    );
    // The tree names the supervisor and the group's actor.
    let logs = d.logs();
    assert!(
        logs.contains("upstreams [Running]") && logs.contains("upstream.app [Running]"),
        "{logs}"
    );
    let admin = d.admin_addr();
    let gauge = |addr| format!("troupe_upstream_backend_up{{backend=\"{addr}\",upstream=\"app\"}}");
    let metrics = || async { client::get(&format!("http://{admin}/metrics")).await.text() };

    // Requests run all along; none may fail.
    let (stop, ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks = load(&d, "/x", 2, stop.clone(), ok.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.hits() > 0 && b.hits() > 0);

    // /healthz fails, /x still answers: out after 3 probes, not before.
    let t = tokio::time::Instant::now();
    a.sick.store(true, Ordering::Relaxed);
    assert!(
        wait_logged(&d, &turned(&a, true), Duration::from_secs(5)).await,
        "{}",
        d.logs()
    );
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "out after {:?}, before 3 probes at 100 ms",
        t.elapsed()
    );
    let line = d.logs();
    let line = line
        .lines()
        .find(|l| l.contains("upstream backend down"))
        .unwrap();
    assert!(
        line.contains("upstream=app") && line.contains("503"),
        "the line names the group and the reason: {line}"
    );
    assert_eq!(answers(&d, 10).await, vec!["b"; 10]);
    assert!(
        eventually(Duration::from_secs(3), || async {
            metrics().await.contains(&format!("{} 0", gauge(a.addr)))
        })
        .await,
        "{}",
        metrics().await
    );
    assert!(metrics().await.contains(&format!("{} 1", gauge(b.addr))));
    let status: serde_json::Value =
        serde_json::from_slice(&client::get(&format!("http://{admin}/upstreams")).await.body)
            .unwrap();
    let backends = &status["app"]["backends"];
    assert_eq!(backends[0]["addr"], a.addr.to_string(), "{status}");
    assert_eq!(backends[0]["up"], false, "{status}");
    assert_eq!(backends[0]["down_by_check"], true, "{status}");
    assert!(
        backends[0]["last_check_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{status}"
    );
    assert_eq!(backends[1]["up"], true, "{status}");

    // Healthy again: back after 2 probes.
    a.sick.store(false, Ordering::Relaxed);
    assert!(
        wait_logged(&d, &turned(&a, false), Duration::from_secs(5)).await,
        "{}",
        d.logs()
    );
    // (The load shares the turns, so not exactly every other one.)
    let seen = answers(&d, 10).await;
    assert!(seen.contains(&"a".to_owned()), "{seen:?}");
    stop_load(&stop, tasks, &ok, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_check_takes_a_stopped_backend_out_and_brings_it_back() {
    let mut a = TestBackend::start("a", Behaviour::default()).await;
    let b = TestBackend::start("b", Behaviour::default()).await;
    // Passive health off: only the check can take it out.
    let check = r#"health: (max_fails: 0, check: (probe: Tcp, interval: "100ms", timeout: "500ms", rise: 1, fall: 2))"#;
    let (_dir, d) = start(&group("app", &[&a, &b], check), ROUTE, "");
    let addr = a.addr;
    a.kill();
    assert!(
        wait_logged(&d, &turned(&a, true), Duration::from_secs(5)).await,
        "{}",
        d.logs()
    );
    assert!(d.logs().contains("connect"), "{}", d.logs());
    assert_eq!(answers(&d, 6).await, vec!["b"; 6]);
    let a = TestBackend::start_on("a", addr, Behaviour::default()).await;
    assert!(
        wait_logged(&d, &turned(&a, false), Duration::from_secs(5)).await,
        "{}",
        d.logs()
    );
    assert!(answers(&d, 6).await.contains(&"a".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_keeps_a_backend_keeps_its_health_verdict() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let b = TestBackend::start("b", Behaviour::default()).await;
    let check = |interval: &str| {
        format!(
            r#"health: (check: (probe: Http(path: "/healthz"), interval: "{interval}", rise: 1, fall: 3))"#
        )
    };
    let (dir, d) = start(&group("app", &[&a, &b], &check("100ms")), ROUTE, "");
    a.sick.store(true, Ordering::Relaxed);
    assert!(wait_logged(&d, &turned(&a, true), Duration::from_secs(5)).await);
    // New settings (a probe every 2 s), the same backends: were its state
    // lost, `a` would take requests until 3 probes had failed, 6 s on.
    std::fs::write(
        dir.path().join("config.ron"),
        config(&group("app", &[&a, &b], &check("2s")), ROUTE, ""),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("upstreams changed", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    assert_eq!(answers(&d, 10).await, vec!["b"; 10]);
    assert_eq!(
        d.logs().matches("upstream backend down").count(),
        1,
        "{}",
        d.logs()
    );
    // The group's actor carries on with the new settings.
    a.sick.store(false, Ordering::Relaxed);
    assert!(wait_logged(&d, &turned(&a, false), Duration::from_secs(5)).await);
    assert!(d.logs().contains("upstream.app [Running]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_backend_has_its_pooled_connections_closed() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let (_dir, d) = start(
        &group("app", &[&a], r#"pool: (idle_timeout: "300ms")"#),
        ROUTE,
        "",
    );
    assert_eq!(answers(&d, 3).await, vec!["a"; 3]);
    assert_eq!(a.open.load(Ordering::Relaxed), 1);
    // No more requests: the upkeep drops it, and the socket closes.
    assert!(
        eventually(Duration::from_secs(3), || async {
            a.open.load(Ordering::Relaxed) == 0
        })
        .await
    );
}

/// `troupe -t` refuses `check` at `line:col` with `words`.
fn refused(check: &str, line: usize, col: usize, words: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(
        &path,
        format!(
            "Config(\n    listen: [\"127.0.0.1:0\"],\n    upstreams: {{ \"app\": (backends: [(addr: \"127.0.0.1:9\")],\n        health: (check: {check})) }},\n    servers: [(routes: [(path: \"/\", handler: Proxy(upstream: \"app\"))])],\n)\n"
        ),
    )
    .unwrap();
    let (code, stderr) = daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:{line}:{col}: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in {stderr}");
    assert!(stderr.contains(words), "expected `{words}` in {stderr}");
}

#[test]
fn a_bad_health_check_is_refused_with_its_position() {
    // `health: (check: ` is 24 characters in.
    refused("(rise: 0)", 4, 26, "health check rise is 0");
    refused(r#"(interval: "0s")"#, 4, 26, "health check interval is 0");
    refused(
        r#"(probe: Http(path: "healthz"))"#,
        4,
        44,
        "invalid health check path `healthz`",
    );
    refused(
        r#"(probe: Http(status: (400, 200)))"#,
        4,
        38,
        "is not a range of statuses",
    );
    refused("(every: \"1s\")", 4, 26, "every");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_a_reload_removes_loses_its_series() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let b = TestBackend::start("b", Behaviour::default()).await;
    let admin = r#"admin: (listen: "127.0.0.1:0"),"#;
    let (dir, d) = start(&group("app", &[&a, &b], ""), ROUTE, admin);
    let addr = d.admin_addr();
    let gauge = |b: &TestBackend| {
        format!(
            "troupe_upstream_backend_up{{backend=\"{}\",upstream=\"app\"}} 1",
            b.addr
        )
    };
    let metrics = || async { client::get(&format!("http://{addr}/metrics")).await.text() };
    assert!(
        eventually(Duration::from_secs(5), || async {
            let m = metrics().await;
            m.contains(&gauge(&a)) && m.contains(&gauge(&b))
        })
        .await,
        "{}",
        metrics().await
    );
    std::fs::write(
        dir.path().join("config.ron"),
        config(&group("app", &[&a], ""), ROUTE, admin),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(d.wait_for_log("upstreams changed", Duration::from_secs(10)));
    // Within the upkeep's second, `b` is gone from /metrics; `a` stays.
    assert!(
        eventually(Duration::from_secs(5), || async {
            !metrics().await.contains(&format!("backend=\"{}\"", b.addr))
        })
        .await,
        "{}",
        metrics().await
    );
    assert!(metrics().await.contains(&gauge(&a)));

    // No group at all: no upkeep runs, and the series go all the same.
    let none = r#"(path: "/{*rest}", handler: Return(body: "none"))"#;
    std::fs::write(dir.path().join("config.ron"), config("", none, admin)).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || async {
            !metrics().await.contains("troupe_upstream_backend_up{")
        })
        .await,
        "{}",
        metrics().await
    );
}
