//! `cors`: the Fetch standard's CORS protocol per server and route:
//! exact and wildcard origins, preflights answered without reaching the
//! handler, credentials never with `*`, `Vary: Origin`.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;

use crate::support::{
    backend::{Behaviour, TestBackend},
    client::{Resp, get_with, h1, send},
    server::TestServer,
};

fn config(backend: std::net::SocketAddr) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    upstreams: {{ "app": (backends: [(addr: "{backend}")]) }},
    servers: [(
        cors: (
            origins: ["https://app.example.com", "https://*.example.org"],
            methods: ["GET", "POST", "PUT"],
            headers: ["Content-Type", "X-Request-Id"],
            credentials: true,
            max_age: "10m",
            expose: ["X-Backend"],
        ),
        routes: [
            (path: "/api/{{*p}}", handler: Proxy(upstream: "app")),
            (path: "/public", handler: Return(body: "public\n"),
             cors: (origins: ["*"], methods: ["*"], headers: ["*"])),
            (path: "/plain", handler: Return(body: "plain\n"), cors: (enabled: false)),
            (path: "/get-only", methods: ["GET"], handler: Return(body: "get\n")),
            (path: "/files/{{*p}}", handler: Static(root: "www")),
        ],
    )],
)"#
    )
}

async fn preflight(url: &str, origin: &str, method: &str, headers: Option<&str>) -> Resp {
    let mut req = Request::builder()
        .method(Method::OPTIONS)
        .uri(url)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(h) = headers {
        req = req.header("access-control-request-headers", h);
    }
    send(&h1(), req.body(Full::<Bytes>::default()).expect("request")).await
}

fn vary_lists(r: &Resp, name: &str) -> bool {
    r.headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(name))
}

#[tokio::test]
async fn preflights_are_answered_here_and_grant_only_what_is_allowed() {
    let app = TestBackend::start("app", Behaviour::default()).await;
    let s = start(&config(app.addr)).await;
    let url = s.url("/api/headers");

    let r = preflight(
        &url,
        "https://app.example.com",
        "PUT",
        Some("x-request-id, content-type"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("x-request-id, content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(vary_lists(&r, "origin") && vary_lists(&r, "access-control-request-headers"));

    // A subdomain at any depth of the wildcard; not the bare domain, nor a
    // look-alike.
    let r = preflight(&url, "https://a.b.example.org", "GET", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.b.example.org")
    );
    for origin in [
        "https://example.org",
        "https://evilexample.org",
        "http://a.example.org",
        "https://app.example.com.evil.net",
    ] {
        let r = preflight(&url, origin, "GET", None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
    }
    // A method or a header not allowed: refused whole.
    let r = preflight(&url, "https://app.example.com", "DELETE", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = preflight(&url, "https://app.example.com", "POST", Some("x-secret")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Malformed asks are refused, not granted.
    let r = preflight(&url, "https://app.example.com", "P UT", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    assert_eq!(app.hits(), 0, "no preflight reached the handler");

    // An OPTIONS that is not a preflight goes to the handler.
    let r = send(
        &h1(),
        Request::builder()
            .method(Method::OPTIONS)
            .uri(&url)
            .header("origin", "https://app.example.com")
            .body(Full::<Bytes>::default())
            .expect("request"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.hits(), 1);
    s.stop().await;
}

#[tokio::test]
async fn answers_carry_grants_for_allowed_origins_only_and_always_vary() {
    let app = TestBackend::start("app", Behaviour::default()).await;
    let s = start(&config(app.addr)).await;
    let url = s.url("/api/headers");

    let r = get_with(&url, &[("origin", "https://x.example.org")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://x.example.org")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-backend"));
    assert!(vary_lists(&r, "origin"));

    // Another origin: answered (CORS is the browser's to enforce), without
    // any grant.
    let r = get_with(&url, &[("origin", "https://evil.example.net")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert!(vary_lists(&r, "origin"));
    // No Origin: same-origin or not a browser; still varies.
    let r = get_with(&url, &[]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert!(vary_lists(&r, "origin"));

    // Any origin without credentials is `*` and needs no Vary; with
    // methods and headers `*`, a preflight gets what it asked for.
    let public = s.url("/public");
    let r = get_with(&public, &[("origin", "https://anyone.test")]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let r = preflight(&public, "null", "PATCH", Some("authorization")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-methods"), Some("PATCH"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization")
    );

    // `enabled: false` on a route: nothing added.
    let r = get_with(&s.url("/plain"), &[("origin", "https://app.example.com")]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert!(!vary_lists(&r, "origin"));
    s.stop().await;
}

#[test]
fn any_origin_with_credentials_and_bad_origins_are_config_errors() {
    for (cors, words) in [
        (
            r#"cors: (origins: ["*"], credentials: true)"#,
            "credentials",
        ),
        (
            r#"cors: (origins: ["app.example.com"])"#,
            "invalid origin `app.example.com`",
        ),
        (
            r#"cors: (origins: ["https://a.*.example.com"])"#,
            "invalid origin",
        ),
        (
            r#"cors: (origins: ["https://a.example.com"], headers: ["bad header"])"#,
            "`bad header`",
        ),
    ] {
        let config = format!(
            "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(routes: [\n        (path: \"/\", handler: Return(status: 200),\n         {cors}),\n    ])],\n)\n"
        );
        let (_dir, path, stderr) = crate::access::refused(&config);
        assert!(stderr.contains(&format!("{path}:5:")), "{stderr}");
        assert!(stderr.contains(words), "expected {words} in {stderr}");
    }
}

#[tokio::test]
async fn routes_that_name_their_methods_still_answer_preflights() {
    let s = start(&config(closed().await)).await;
    for path in ["/get-only", "/files/a.txt"] {
        let url = s.url(path);
        let r = preflight(&url, "https://app.example.com", "GET", Some("x-request-id")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}");
        let r = get_with(&url, &[("origin", "https://app.example.com")]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        // An OPTIONS that is no preflight is still not allowed here.
        let r = send(
            &h1(),
            Request::builder()
                .method(Method::OPTIONS)
                .uri(&url)
                .body(Full::<Bytes>::default())
                .expect("request"),
        )
        .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{path}");
        // Nor is a method the route does not take.
        let r = send(
            &h1(),
            Request::builder()
                .method(Method::DELETE)
                .uri(&url)
                .body(Full::<Bytes>::default())
                .expect("request"),
        )
        .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    s.stop().await;
}

/// The server, in a directory whose `www/` has `a.txt`.
async fn start(config: &str) -> TestServer {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("www")).expect("www");
    std::fs::write(dir.path().join("www/a.txt"), "file\n").expect("file");
    TestServer::start_in(dir, config).await
}

/// An address nothing listens on.
async fn closed() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}
