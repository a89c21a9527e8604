//! Rate limits (issue 14, P7.2): zones keyed by client, route, server or
//! header; nginx's burst, `nodelay` and `delay`; 429 (or the configured
//! status) with `Retry-After`; dry runs; the client address behind
//! trusted proxies; zones kept across a reload that keeps them; idle keys
//! swept and counted.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpSocket,
};
use troupe::Trigger;

use crate::support::server::TestServer;

/// What one request got.
#[derive(Debug)]
struct Got {
    status: u16,
    retry_after: Option<u64>,
    took: Duration,
}

/// `GET path` on a fresh connection from the loopback address `from`,
/// with `headers` (`"Name: value\r\n"` lines).
async fn hit(from: &str, to: SocketAddr, path: &str, headers: &str) -> Got {
    let start = Instant::now();
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    let mut s = socket.connect(to).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let retry_after = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .map(|v| v.trim().parse().expect("Retry-After is whole seconds"));
    Got {
        status,
        retry_after,
        took: start.elapsed(),
    }
}

/// `n` requests one after the other; their statuses.
async fn statuses(n: usize, from: &str, to: SocketAddr, path: &str, headers: &str) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(hit(from, to, path, headers).await.status);
    }
    out
}

/// A config with these `rate_zones` entries, top-level `extra` fields and
/// one server's `routes` (and its `server` fields).
fn config(zones: &str, extra: &str, server: &str, routes: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    {extra}
    rate_zones: {{ {zones} }},
    servers: [( names: ["a"], {server} routes: [
        (path: "/free", handler: Return(body: "free\n")),
        {routes}
    ] )],
)"#
    )
}

/// A route `path` answering "ok" under `limits`.
fn route(path: &str, limits: &str) -> String {
    format!(r#"(path: "{path}", handler: Return(body: "ok\n"), rate_limits: [{limits}]),"#)
}

const OK: u16 = 200;
const LIMITED: u16 = 429;

/// `n` requests at once, each on its own connection: how long the served
/// ones and the refused ones took, each list sorted.
async fn at_once(n: usize, to: SocketAddr, path: &str) -> (Vec<Duration>, Vec<Duration>) {
    let all = futures_util::future::join_all(
        (0..n).map(|_| async move { hit("127.0.0.1", to, path, "").await }),
    )
    .await;
    let took = |status| {
        let mut t: Vec<Duration> = all
            .iter()
            .filter(|g| g.status == status)
            .map(|g| g.took)
            .collect();
        t.sort();
        t
    };
    let (served, refused) = (took(OK), took(LIMITED));
    assert_eq!(served.len() + refused.len(), n, "{all:?}");
    (served, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodelay_serves_the_burst_at_once_then_refuses_with_retry_after() {
    let srv = TestServer::start(&config(
        r#""z": (rate: "1r/m")"#,
        "",
        "",
        &route("/r", r#"(zone: "z", burst: 3, nodelay: true)"#),
    ))
    .await;
    let got = statuses(6, "127.0.0.1", srv.addr, "/r", "").await;
    assert_eq!(got, [OK, OK, OK, OK, LIMITED, LIMITED]);
    let refused = hit("127.0.0.1", srv.addr, "/r", "").await;
    assert_eq!(refused.status, LIMITED);
    // One request a minute: the next place is about a minute away.
    let after = refused.retry_after.expect("Retry-After");
    assert!((55..=60).contains(&after), "Retry-After: {after}");
    // Other routes of the server are not limited.
    assert_eq!(hit("127.0.0.1", srv.addr, "/free", "").await.status, OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nodelay_the_burst_waits_its_turn_and_the_rest_is_refused_at_once() {
    let srv = TestServer::start(&config(
        r#""z": (rate: "5r/s")"#,
        "",
        "",
        &route("/r", r#"(zone: "z", burst: 3)"#),
    ))
    .await;
    let (served, refused) = at_once(7, srv.addr, "/r").await;
    assert_eq!(
        (served.len(), refused.len()),
        (4, 3),
        "{served:?} {refused:?}"
    );
    // One at once, then one per 200 ms: the last waited about 600 ms.
    assert!(served[0] < Duration::from_millis(150), "{served:?}");
    assert!(served[3] >= Duration::from_millis(450), "{served:?}");
    // Refusals do not wait.
    assert!(refused[2] < Duration::from_millis(300), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_serves_part_of_the_burst_at_once() {
    let srv = TestServer::start(&config(
        r#""z": (rate: "2r/s")"#,
        "",
        "",
        &route("/r", r#"(zone: "z", burst: 4, delay: 2)"#),
    ))
    .await;
    let (served, _) = at_once(7, srv.addr, "/r").await;
    assert_eq!(served.len(), 5, "{served:?}");
    // Three at once (one plus `delay`), two after 500 ms and 1 s.
    assert!(served[2] < Duration::from_millis(300), "{served:?}");
    assert!(served[3] >= Duration::from_millis(350), "{served:?}");
    assert!(served[4] >= Duration::from_millis(850), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_refuses_nothing_and_the_status_is_configurable() {
    let srv = TestServer::start(&config(
        r#""z": (rate: "1r/m"), "y": (rate: "1r/m")"#,
        "",
        "",
        &format!(
            "{}{}",
            route("/dry", r#"(zone: "z", dry_run: true)"#),
            route("/503", r#"(zone: "y", status: 503)"#)
        ),
    ))
    .await;
    let got = statuses(5, "127.0.0.1", srv.addr, "/dry", "").await;
    assert_eq!(got, [OK; 5]);
    let got = statuses(2, "127.0.0.1", srv.addr, "/503", "").await;
    assert_eq!(got, [OK, 503]);
    // The dry run counted what it would have refused.
    let zones = srv.running().generation().zones.clone();
    let text = metrics_text(&zones);
    assert!(
        text.contains(r#"troupe_rate_limit_requests_total{outcome="dry_run",zone="z"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"troupe_rate_limit_requests_total{outcome="refused",zone="y"} 1"#),
        "{text}"
    );
}

/// The zones' series as Prometheus text.
fn metrics_text(zones: &troupe::limit::Zones) -> String {
    let registry = prometheus::Registry::new();
    zones.register(&registry).expect("register");
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_key_by_client_route_server_or_header() {
    let srv = TestServer::start(&config(
        r#""client": (rate: "1r/m"), "route": (rate: "1r/m", key: Route),
           "server": (rate: "1r/m", key: Server), "header": (rate: "1r/m", key: Header("x-api-key"))"#,
        "",
        "",
        &format!(
            "{}{}{}{}{}",
            route("/client", r#"(zone: "client")"#),
            route("/route", r#"(zone: "route")"#),
            route("/server1", r#"(zone: "server")"#),
            route("/server2", r#"(zone: "server")"#),
            route("/header", r#"(zone: "header")"#),
        ),
    ))
    .await;
    let a = srv.addr;
    // By client: each address has its own bucket.
    assert_eq!(
        statuses(2, "127.0.0.1", a, "/client", "").await,
        [OK, LIMITED]
    );
    assert_eq!(
        statuses(2, "127.0.0.2", a, "/client", "").await,
        [OK, LIMITED]
    );
    // By route: every client shares one.
    assert_eq!(statuses(1, "127.0.0.1", a, "/route", "").await, [OK]);
    assert_eq!(statuses(1, "127.0.0.2", a, "/route", "").await, [LIMITED]);
    // By server: every route and client of the server shares one.
    assert_eq!(statuses(1, "127.0.0.1", a, "/server1", "").await, [OK]);
    assert_eq!(statuses(1, "127.0.0.2", a, "/server2", "").await, [LIMITED]);
    // By header: one bucket per value; without it, no limit.
    let k1 = "x-api-key: one\r\n";
    let k2 = "x-api-key: two\r\n";
    assert_eq!(
        statuses(2, "127.0.0.1", a, "/header", k1).await,
        [OK, LIMITED]
    );
    assert_eq!(statuses(1, "127.0.0.1", a, "/header", k2).await, [OK]);
    assert_eq!(statuses(3, "127.0.0.1", a, "/header", "").await, [OK; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_key_and_others_cannot_spoof_it() {
    let srv = TestServer::start(&config(
        r#""z": (rate: "1r/m")"#,
        r#"trusted_proxies: ["127.0.0.1"],"#,
        "rate_limits: [(zone: \"z\")],",
        "",
    ))
    .await;
    let a = srv.addr;
    // The trusted proxy forwards two clients: one bucket each, by the
    // right-most address it did not add itself.
    let c1 = "X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n";
    let c2 = "X-Forwarded-For: 198.51.100.2\r\n";
    assert_eq!(
        statuses(2, "127.0.0.1", a, "/free", c1).await,
        [OK, LIMITED]
    );
    assert_eq!(
        statuses(2, "127.0.0.1", a, "/free", c2).await,
        [OK, LIMITED]
    );
    // An untrusted peer naming a new client each time is still itself.
    let spoof = |n: u8| format!("X-Forwarded-For: 203.0.113.{n}\r\n");
    assert_eq!(hit("127.0.0.2", a, "/free", &spoof(1)).await.status, OK);
    assert_eq!(
        hit("127.0.0.2", a, "/free", &spoof(2)).await.status,
        LIMITED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_a_zone_it_does_not_change() {
    let limited = |rate: &str, body: &str| {
        config(
            &format!(r#""z": (rate: "{rate}")"#),
            "",
            "",
            &format!(
                r#"(path: "/r", handler: Return(body: "{body}"), rate_limits: [(zone: "z")]),"#
            ),
        )
    };
    let srv = TestServer::start(&limited("1r/m", "v1")).await;
    let a = srv.addr;
    assert_eq!(statuses(2, "127.0.0.1", a, "/r", "").await, [OK, LIMITED]);
    // Another body, the same zone: the client is still over its rate.
    std::fs::write(srv.dir.path().join("config.ron"), limited("1r/m", "v2")).unwrap();
    srv.running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert_eq!(statuses(1, "127.0.0.1", a, "/r", "").await, [LIMITED]);
    // A new rate is a new zone: counting starts afresh.
    std::fs::write(srv.dir.path().join("config.ron"), limited("2r/m", "v3")).unwrap();
    srv.running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert_eq!(statuses(2, "127.0.0.1", a, "/r", "").await, [OK, LIMITED]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keys_are_swept_and_counted() {
    // 40 requests at 10 per second: each key is 4 s ahead of the rate,
    // so the sweep (every 5 s) sees it at most once.
    let srv = TestServer::start(&config(
        r#""z": (rate: "10r/s")"#,
        "",
        "",
        &route("/r", r#"(zone: "z", burst: 39, nodelay: true)"#),
    ))
    .await;
    let zones = srv.running().generation().zones.clone();
    let keys = || {
        let text = metrics_text(&zones);
        text.lines()
            .find_map(|l| l.strip_prefix(r#"troupe_rate_limit_keys{zone="z"} "#))
            .and_then(|v| v.parse::<i64>().ok())
    };
    for from in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let got = statuses(40, from, srv.addr, "/r", "").await;
        assert!(got.iter().all(|&s| s == OK), "{got:?}");
    }
    let zone = &zones.live()[0];
    assert_eq!(zone.len(), 3);
    // The next sweep after the keys' time has passed forgets them, and
    // the gauge says so.
    let deadline = Instant::now() + Duration::from_secs(12);
    while !(zone.is_empty() && keys() == Some(0)) {
        assert!(Instant::now() < deadline, "keys were never swept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_zone_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ron");
    for (zones, limits, want) in [
        (
            r#""z": (rate: "10r/h")"#,
            r#"(zone: "z")"#,
            "invalid rate `10r/h`",
        ),
        (
            r#""z": (rate: "1r/s")"#,
            r#"(zone: "nope")"#,
            "no rate zone named `nope`",
        ),
        (
            r#""z": (rate: "1r/s")"#,
            r#"(zone: "z", burst: 1, delay: 2)"#,
            "expected delay ≤ burst",
        ),
        (
            r#""z": (rate: "1r/s")"#,
            r#"(zone: "z", status: 200)"#,
            "expected a 4xx or 5xx status",
        ),
        (
            r#""z": (rate: "1r/s", key: Header("bad header"))"#,
            r#"(zone: "z")"#,
            "is not a header name",
        ),
    ] {
        let text = config(zones, "", "", &route("/r", limits));
        let err = troupe::config::load_str(&text, &path)
            .err()
            .unwrap_or_else(|| panic!("accepted: {zones} {limits}"))
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_reached_by_a_rewrite_is_limited_and_a_request_counts_once() {
    let routes = format!(
        r#"(path: "/old", handler: Rewrite("/r")),
        (path: "/twice", handler: Rewrite("/r"), rate_limits: [(zone: "y", burst: 1, nodelay: true)]),
        {}"#,
        route("/r", r#"(zone: "z", burst: 1, nodelay: true)"#)
    );
    let srv = TestServer::start(&config(
        r#""z": (rate: "1r/m"), "y": (rate: "1r/m")"#,
        "",
        "",
        &routes,
    ))
    .await;
    // A rewrite does not get around the limits of the route it reaches.
    let got = statuses(3, "127.0.0.1", srv.addr, "/old", "").await;
    assert_eq!(got, [OK, OK, LIMITED]);
    // As nginx's limit_req, a request is counted by the first route with
    // limits it reaches: `/twice` counts in `y`, never in `z` as well.
    let got = statuses(3, "127.0.0.2", srv.addr, "/twice", "").await;
    assert_eq!(got, [OK, OK, LIMITED]);
    assert_eq!(statuses(2, "127.0.0.2", srv.addr, "/r", "").await, [OK, OK]);
}
