//! P4.1–P4.2: precedence, 404, 405 with Allow, virtual hosts, middleware order.

use http::StatusCode;

use crate::support::{
    client,
    server::{TestServer, config_with_routes},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_then_param_then_catch_all_then_regex() {
    let routes = r#"
        (regex: "^/users/.*$", handler: Return(body: "regex")),
        (path: "/users/{id}/{*rest}", methods: ["GET"], handler: Return(body: "catch-all")),
        (path: "/users/{id}", methods: ["GET"], handler: Return(body: "param")),
        (path: "/users/me", methods: ["GET"], handler: Return(body: "exact")),
        (regex: "^/(a|b)/x$", handler: Return(body: "regex $1")),
    "#;
    let srv = TestServer::start(&config_with_routes(routes)).await;
    for (path, want) in [
        ("/users/me", "exact"),
        ("/users/7", "param"),
        ("/users/7/posts", "catch-all"),
        ("/users/7/", "catch-all"),
        ("/b/x", "regex b"),
    ] {
        assert_eq!(client::get(&srv.url(path)).await.text(), want, "{path}");
    }
    // POST is not taken by the path routes, so the regex gets it.
    let post = client::send(
        &client::h1(),
        http::Request::post(srv.url("/users/me"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(post.text(), "regex");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_404_wrong_method_405_with_allow() {
    let routes = r#"
        (path: "/a", methods: ["GET"], handler: Return(body: "get")),
        (path: "/a", methods: ["PUT", "DELETE"], handler: Return(body: "put")),
    "#;
    let srv = TestServer::start(&config_with_routes(routes)).await;
    assert_eq!(
        client::get(&srv.url("/nope")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = client::send(
        &client::h1(),
        http::Request::post(srv.url("/a"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    let r = client::send(
        &client::h1(),
        http::Request::delete(srv.url("/a"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.text(), "put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_chosen_by_host() {
    let cfg = r#"Config(
        listen: ["127.0.0.1:0"],
        log: (access: Off),
        servers: [
            (names: ["example.com"], routes: [(path: "/", handler: Return(body: "exact"))]),
            (names: ["*.example.com"], routes: [(path: "/", handler: Return(body: "wildcard"))]),
            (names: ["fallback.test"], default: true, routes: [(path: "/", handler: Return(body: "default"))]),
        ],
    )"#;
    let srv = TestServer::start(cfg).await;
    for (host, want) in [
        ("example.com", "exact"),
        ("EXAMPLE.com:8080", "exact"),
        ("api.example.com", "wildcard"),
        ("unknown.org", "default"),
    ] {
        let r = client::get_with(&srv.url("/"), &[("host", host)]).await;
        assert_eq!(r.text(), want, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_runs_in_order_and_can_short_circuit() {
    let routes = r#"
        (path: "/private",
         handler: Return(body: "secret"),
         middleware: [
            SetHeaders({ "x-frame-options": "DENY" }),
            RequireHeader(header: "x-api-key", value: "k1"),
         ]),
    "#;
    let srv = TestServer::start(&config_with_routes(routes)).await;
    let denied = client::get(&srv.url("/private")).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    // The outer middleware still wraps the short-circuited answer.
    assert_eq!(denied.header("x-frame-options"), Some("DENY"));
    let wrong = client::get_with(&srv.url("/private"), &[("x-api-key", "nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = client::get_with(&srv.url("/private"), &[("x-api-key", "k1")]).await;
    assert_eq!(ok.text(), "secret");
    assert_eq!(ok.header("x-frame-options"), Some("DENY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_fill_their_template() {
    let routes = r#"
        (regex: "^/old/(.*)$", handler: Redirect(to: "https://new.example$uri?was=$1", status: 308)),
        (path: "/go", handler: Redirect(to: "/there$request_uri")),
    "#;
    let srv = TestServer::start(&config_with_routes(routes)).await;
    let r = client::get(&srv.url("/old/a/b")).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.header("location"),
        Some("https://new.example/old/a/b?was=a/b")
    );
    let r = client::get(&srv.url("/go?x=1")).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.header("location"), Some("/there/go?x=1"));
}
