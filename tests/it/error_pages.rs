//! issue 16: error pages (nginx `error_page`) per server and per route:
//! a URI routed again or a file, the original status kept or replaced
//! (`=200`), ranges, errors of modules and of the proxy, and no loops.

use http::StatusCode;
use tempfile::TempDir;

use crate::support::{
    backend::{Behaviour, TestBackend},
    client,
    server::TestServer,
};

fn site() -> TempDir {
    let dir = TempDir::new().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("404.html"), "<h1>custom 404</h1>").unwrap();
    std::fs::write(www.join("hello.txt"), "hello").unwrap();
    std::fs::write(dir.path().join("50x.html"), "<h1>we are on it</h1>").unwrap();
    std::fs::write(
        dir.path().join("boom.lua"),
        "function handle(req)\n  if req.path == '/lua/fail' then error('boom') end\n  return { status = 404, body = 'lua says no' }\nend\n",
    )
    .unwrap();
    dir
}

fn config(upstreams: &str, server: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [(name: "boom", source: Lua("boom.lua"))],
    upstreams: {{ {upstreams} }},
    servers: [({server})],
)"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_page_keeps_the_status() {
    let server = r#"
        error_pages: [
            (on: "404", uri: "/404.html"),
            (on: "500-599", file: "50x.html"),
        ],
        routes: [
            (path: "/{*p}", handler: Static(root: "www")),
            (path: "/only-get", methods: ["GET"], handler: Return(body: "got")),
            (path: "/lua/{*p}", handler: Module("boom")),
            (path: "/fail", handler: Return(status: 503, body: "plain 503")),
        ],
    "#;
    let srv = TestServer::start_in(site(), &config("", server)).await;
    assert_eq!(client::get(&srv.url("/hello.txt")).await.text(), "hello");
    // A static 404: the page, with 404.
    let r = client::get(&srv.url("/nope.txt")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), "<h1>custom 404</h1>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    // A module's own 404 and a module that fails (500): pages too.
    let r = client::get(&srv.url("/lua/x")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::NOT_FOUND, "<h1>custom 404</h1>")
    );
    let r = client::get(&srv.url("/lua/fail")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text(), "<h1>we are on it</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // A range: 503 from a handler.
    let r = client::get(&srv.url("/fail")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "<h1>we are on it</h1>")
    );
    // A status no page stands for stays plain, with its headers.
    let r = client::send(
        &client::h1(),
        http::Request::post(srv.url("/only-get"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_a_replaced_status_and_a_route_of_its_own() {
    let server = r#"
        error_pages: [(on: "404 405", uri: "/404.html")],
        routes: [
            (path: "/404.html", handler: Static(root: "www")),
            (path: "/get", methods: ["GET"], handler: Return(body: "got")),
            (path: "/api/{*p}", handler: Static(root: "www"),
             error_pages: [(on: "404", uri: "/empty", status: 200)]),
            (path: "/empty", handler: Return(status: 204)),
        ],
    "#;
    let srv = TestServer::start_in(site(), &config("", server)).await;
    // No route at all: the server's page.
    let r = client::get(&srv.url("/no/route")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::NOT_FOUND, "<h1>custom 404</h1>")
    );
    // 405 keeps its Allow under the page.
    let r = client::send(
        &client::h1(),
        http::Request::delete(srv.url("/get"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.text(), "<h1>custom 404</h1>");
    // The route's own page replaces the server's, and `=200` its status.
    let r = client::get(&srv.url("/api/missing")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_fails_gives_the_plain_error() {
    let server = r#"
        error_pages: [(on: "404", uri: "/missing-page.html"), (on: "500", uri: "/loop")],
        routes: [
            (path: "/{*p}", handler: Static(root: "www")),
            (path: "/loop", handler: Return(status: 500, body: "x")),
        ],
    "#;
    let srv = TestServer::start_in(site(), &config("", server)).await;
    let r = client::get(&srv.url("/nope")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::NOT_FOUND, "404 Not Found\n")
    );
    // A page whose own answer is the error it stands for: no loop.
    let r = client::get(&srv.url("/loop")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_errors_get_pages_a_backends_own_answer_does_not() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let live = TestBackend::start("live", Behaviour::default()).await;
    let upstreams = format!(
        r#""gone": (backends: [(addr: "{closed}")]), "live": (backends: [(addr: "{}")]),"#,
        live.addr
    );
    let server = r#"
        error_pages: [(on: "502 503 504", file: "50x.html")],
        routes: [
            (path: "/gone", handler: Proxy(upstream: "gone")),
            (path: "/live/{*p}", handler: Proxy(upstream: "live")),
        ],
    "#;
    let srv = TestServer::start_in(site(), &config(&upstreams, server)).await;
    let r = client::get(&srv.url("/gone")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::BAD_GATEWAY, "<h1>we are on it</h1>")
    );
    assert_eq!(
        client::get(&srv.url("/live/x")).await.text(),
        "hello from live"
    );
    // nginx's proxy_intercept_errors off: the backend's own 503 passes.
    let r = client::get(&srv.url("/live/status?n=503")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "the backend's own page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_page_file_is_served_once_the_watcher_reloads() {
    let ron = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    watch: true,
    servers: [(
        error_pages: [(on: "503", file: "50x.html")],
        routes: [(path: "/fail", handler: Return(status: 503, body: "plain"))],
    )],
)"#;
    let srv = TestServer::start_in(site(), ron).await;
    let url = srv.url("/fail");
    assert_eq!(client::get(&url).await.text(), "<h1>we are on it</h1>");
    // The file is read when the config loads: an edit reloads it.
    std::fs::write(srv.dir.path().join("50x.html"), "<h1>back soon</h1>").unwrap();
    let edited = crate::support::eventually(std::time::Duration::from_secs(10), || {
        let url = url.clone();
        async move { client::get(&url).await.text() == "<h1>back soon</h1>" }
    })
    .await;
    assert!(edited, "the old page: {}", client::get(&url).await.text());
}
