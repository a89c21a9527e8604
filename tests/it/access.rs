//! `access`: allow and deny by client address and CIDR, per server and
//! route, first match wins, nginx's `allow` / `deny`; the client is the
//! one `trusted_proxies` let us believe. Bad rules are config errors
//! naming the file, line and column.

use http::StatusCode;

use crate::support::{
    client::{get, get_with},
    daemon::{self, Daemon},
    server::TestServer,
};

const SERVER: &str = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(
        access: [Deny("127.0.0.0/8")],
        routes: [
            (path: "/server", handler: Return(body: "server rules\n")),
            (path: "/own", handler: Return(body: "own rules\n"),
             access: [Deny("127.0.0.2"), Allow("127.0.0.1"), Deny("all")]),
            (path: "/none", handler: Return(body: "no rules\n"), access: []),
            (path: "/other", handler: Return(body: "other\n"),
             access: [Deny("10.0.0.0/8"), Deny("::1")]),
        ],
    )],
)"#;

#[tokio::test]
async fn a_route_s_own_rules_replace_its_server_s_and_the_first_match_wins() {
    let s = TestServer::start(SERVER).await;
    let r = get(&s.url("/server")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.text().contains("server rules"));
    // `Allow("127.0.0.1")` comes before `Deny("all")`.
    let r = get(&s.url("/own")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "own rules\n");
    // `[]` turns the server's rules off.
    assert_eq!(get(&s.url("/none")).await.status, StatusCode::OK);
    // No rule names 127.0.0.1: let in, as nginx does.
    assert_eq!(get(&s.url("/other")).await.status, StatusCode::OK);
    // A forwarded address from an untrusted peer changes nothing.
    let r = get_with(&s.url("/server"), &[("x-forwarded-for", "192.0.2.1")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_judged_v4_and_v6() {
    let s = TestServer::start(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    trusted_proxies: ["127.0.0.1"],
    servers: [(
        access: [Deny("192.0.2.66"), Allow("192.0.2.0/24"), Allow("2001:db8::/32"), Deny("all")],
        routes: [(path: "/", handler: Return(body: "in\n"))],
    )],
)"#,
    )
    .await;
    let url = s.url("/");
    let as_client = |xff: &'static str| {
        let url = url.clone();
        async move { get_with(&url, &[("x-forwarded-for", xff)]).await.status }
    };
    assert_eq!(as_client("192.0.2.7").await, StatusCode::OK);
    assert_eq!(as_client("192.0.2.66").await, StatusCode::FORBIDDEN);
    assert_eq!(as_client("198.51.100.1").await, StatusCode::FORBIDDEN);
    assert_eq!(as_client("2001:db8:5::1").await, StatusCode::OK);
    assert_eq!(as_client("2001:db9::1").await, StatusCode::FORBIDDEN);
    // The client forged the left entry; the right-most untrusted one counts.
    assert_eq!(
        as_client("192.0.2.7, 203.0.113.5").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(as_client("203.0.113.5, 192.0.2.7").await, StatusCode::OK);
    // The proxy itself (no header) is 127.0.0.1: denied by `all`.
    assert_eq!(get(&url).await.status, StatusCode::FORBIDDEN);
    s.stop().await;
}

/// Runs `troupe -t` on `config` and returns (the config's path, stderr).
pub fn refused(config: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("access.ron");
    std::fs::write(&path, config).expect("write");
    let (code, stderr) = daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    (dir, path.display().to_string(), stderr)
}

#[test]
fn a_bad_block_is_an_error_at_its_line_and_column() {
    for (rule, words) in [
        ("Allow(\"10.0.0.0/33\")", "`10.0.0.0/33`"),
        ("Deny(\"fe80::/129\")", "`fe80::/129`"),
        ("Deny(\"everyone\")", "`everyone`"),
    ] {
        let config = format!(
            "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(routes: [\n        (path: \"/\", handler: Return(status: 200),\n         access: [Allow(\"10.0.0.0/8\"), {rule}]),\n    ])],\n)\n"
        );
        let (_dir, path, stderr) = refused(&config);
        let col = config
            .lines()
            .nth(4)
            .expect("line")
            .find(rule)
            .expect("rule")
            + rule.find('"').expect("quote")
            + 1;
        let at = format!("{path}:5:{col}: ");
        assert!(stderr.contains(&at), "expected `{at}` in {stderr}");
        assert!(
            stderr.contains(words) && stderr.contains("CIDR"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_tours_access_control() {
    let srv = TestServer::start_file(&crate::support::repo_root().join("config.ron")).await;
    assert_eq!(get(&srv.url("/status")).await.status, StatusCode::OK);
    let r = get(&srv.url("/members")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("Troupe demo"))
    );
    // demo:demo
    let r = get_with(
        &srv.url("/members"),
        &[("authorization", "Basic ZGVtbzpkZW1v")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get_with(
        &srv.url("/api/hello"),
        &[("origin", "https://x.app.localhost")],
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://x.app.localhost")
    );
}

#[tokio::test]
async fn ipv6_peers_and_ipv4_peers_of_an_ipv6_listener_are_judged_by_their_own_address() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("v6.ron");
    std::fs::write(
        &config,
        r#"Config(
    listen: ["[::]:0"],
    log: (access: Off),
    servers: [(routes: [
        (path: "/v6", handler: Return(body: "v6\n"), access: [Allow("::1/128"), Deny("all")]),
        (path: "/v4", handler: Return(body: "v4\n"), access: [Allow("127.0.0.0/8"), Deny("all")]),
    ])],
)"#,
    )
    .expect("write");
    let daemon = tokio::task::spawn_blocking(move || Daemon::start(&config))
        .await
        .expect("start");
    let port = daemon.addr.port();
    let v6 = |path: &str| format!("http://[::1]:{port}{path}");
    let v4 = |path: &str| format!("http://127.0.0.1:{port}{path}");
    assert_eq!(get(&v6("/v6")).await.status, StatusCode::OK);
    assert_eq!(get(&v4("/v6")).await.status, StatusCode::FORBIDDEN);
    // 127.0.0.1 arrives as ::ffff:127.0.0.1 and counts as 127.0.0.1.
    assert_eq!(get(&v4("/v4")).await.status, StatusCode::OK);
    assert_eq!(get(&v6("/v4")).await.status, StatusCode::FORBIDDEN);
    drop(dir);
}
