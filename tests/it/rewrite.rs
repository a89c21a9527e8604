//! issue 16: internal rewrites (nginx `rewrite … last`): a server's
//! rules before routing and a route's `Rewrite`, captures, the query,
//! the bound on hops (500), and a regex that does not compile.

use std::process::Command;

use http::StatusCode;

use crate::support::{
    backend::{Behaviour, TestBackend},
    client,
    daemon::bin,
    server::TestServer,
};

fn config(server: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [({server})],
)"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rewrites_run_before_routing() {
    let server = r#"
        rewrites: [
            (regex: "^/old/(.*)$", to: "/new/$1"),
            (regex: "^/search/(?P<term>[a-z]+)$", to: "/find?q=${term}"),
            (regex: "^/clean$", to: "/new/clean?"),
        ],
        routes: [
            (path: "/new/{*p}", handler: Return(body: "new $uri q=$arg_q ($request_uri)")),
            (path: "/find", handler: Return(body: "find $arg_q")),
            (path: "/{*p}", handler: Return(body: "catch-all $uri")),
        ],
    "#;
    let srv = TestServer::start(&config(server)).await;
    // The client is not redirected: the answer is the new route's.
    let r = client::get(&srv.url("/old/a/b?q=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "new /new/a/b q=1 (/new/a/b?q=1)");
    // A named capture, and a target with its own query.
    assert_eq!(
        client::get(&srv.url("/search/cats?q=dogs")).await.text(),
        "find cats"
    );
    // A target ending in `?` drops the query.
    assert_eq!(
        client::get(&srv.url("/clean?q=1")).await.text(),
        "new /new/clean q= (/new/clean)"
    );
    // Rules run before the route table, so a catch-all does not hide them.
    assert_eq!(
        client::get(&srv.url("/other")).await.text(),
        "catch-all /other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_rewrite_routes_again_and_redirects_still_work() {
    let server = r#"
        routes: [
            (regex: "^/v1/(users|teams)/(\\d+)$", handler: Rewrite("/api/$1/$2")),
            (path: "/api/{kind}/{id}", handler: Return(body: "$param_kind #$param_id via $request_method")),
            (path: "/moved", handler: Redirect(to: "/api/users/1", status: 301)),
        ],
    "#;
    let srv = TestServer::start(&config(server)).await;
    let r = client::get(&srv.url("/v1/teams/7")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "teams #7 via GET")
    );
    let r = client::get(&srv.url("/moved")).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("location"), Some("/api/users/1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_loop_answers_500() {
    let server = r#"
        rewrites: [(regex: "^/start$", to: "/a")],
        routes: [
            (path: "/a", handler: Rewrite("/b")),
            (path: "/b", handler: Rewrite("/a")),
            (path: "/ok", handler: Return(body: "ok")),
        ],
    "#;
    let srv = TestServer::start(&config(server)).await;
    for path in ["/a", "/start"] {
        let r = client::get(&srv.url(path)).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }
    // The server still answers.
    assert_eq!(client::get(&srv.url("/ok")).await.text(), "ok");
}

/// `troupe -t` on `config`: its exit code and what it said.
fn check(config: &str) -> (tempfile::TempDir, Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin())
        .args(["-t", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (dir, out.status.code(), stderr)
}

#[test]
fn a_bad_regex_or_target_names_its_place() {
    let cfg = "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(\n        rewrites: [(regex: \"^/(open\", to: \"/x\")],\n        routes: [(path: \"/\", handler: Return(body: \"x\"))],\n    )],\n)\n";
    let (dir, code, stderr) = check(cfg);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:4:28: ", dir.path().join("bad.ron").display());
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");
    assert!(stderr.contains("invalid regex `^/(open`"), "{stderr}");

    let cfg = "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(routes: [\n        (path: \"/r\", handler: Rewrite(\"http://elsewhere/\")),\n    ])],\n)\n";
    let (dir, code, stderr) = check(cfg);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:4:39: ", dir.path().join("bad.ron").display());
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");
    assert!(stderr.contains("must start with `/`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_read_by_a_rewrite_route_reaches_the_proxy_it_routes_to() {
    let backend = TestBackend::start("b", Behaviour::default()).await;
    let ron = format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    upstreams: {{ "b": (backends: [(addr: "{}")]) }},
    servers: [(routes: [
        (path: "/old/{{*p}}", methods: ["POST"], handler: Rewrite("/app/$param_p")),
        (path: "/app/{{*p}}", handler: Proxy(upstream: "b")),
    ])],
)"#,
        backend.addr
    );
    let srv = TestServer::start(&ron).await;
    let body = "x".repeat(5000);
    for path in ["/old/upload", "/app/upload"] {
        let req = http::Request::post(srv.url(path))
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
            .unwrap();
        let r = client::send(&client::h1(), req).await;
        // `/upload` answers the length of the body it received.
        assert_eq!(
            (r.status, r.text()),
            (StatusCode::OK, "5000".into()),
            "{path}"
        );
    }
}
