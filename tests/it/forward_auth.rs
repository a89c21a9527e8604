//! `forward_auth`: a small real auth service (hyper, written here) decides
//! each request: 2xx lets it through with the headers it names copied,
//! 401/403/redirects go back to the client as they are, its errors are
//! 500s without its body, and an auth service that cannot be reached is a
//! 5xx, never a pass.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::support::{
    backend::{Behaviour, TestBackend},
    client::{get_with, h1, send},
    server::TestServer,
};

/// What the auth service saw of the last request it was asked.
#[derive(Default, Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The auth service: decides by the bearer token.
async fn start_auth() -> (SocketAddr, Arc<Mutex<Seen>>, Arc<Mutex<u64>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let asked = Arc::new(Mutex::new(0u64));
    let (s, n) = (seen.clone(), asked.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (s, n) = (s.clone(), n.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (s, n) = (s.clone(), n.clone());
                    async move { Ok::<_, Infallible>(decide(req, &s, &n)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen, asked)
}

fn decide(req: Request<Incoming>, seen: &Mutex<Seen>, asked: &Mutex<u64>) -> Response<Full<Bytes>> {
    *asked.lock().expect("asked") += 1;
    *seen.lock().expect("seen") = Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect(),
    };
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let r = Response::builder();
    match token {
        "good" => r
            .header("x-user", "alice")
            .header("x-role", "admin")
            .body(Full::from("ok")),
        "no-role" => r.header("x-user", "bob").body(Full::default()),
        "redirect" => r
            .status(302)
            .header("location", "https://login.example.com/?next=x")
            .body(Full::default()),
        "bad" => r
            .status(403)
            .body(Full::from("forbidden by the auth service\n")),
        "boom" => r.status(500).body(Full::from("secret stack trace\n")),
        "teapot" => r.status(418).body(Full::from("secret teapot\n")),
        _ => r
            .status(401)
            .header("www-authenticate", "Bearer realm=\"auth\"")
            .body(Full::from("who are you?\n")),
    }
    .expect("response")
}

fn config(auth: SocketAddr, app: SocketAddr, down: SocketAddr) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    upstreams: {{
        "auth": (backends: [(addr: "{auth}")]),
        "down": (backends: [(addr: "{down}")], retry: (tries: 1)),
        "app": (backends: [(addr: "{app}")]),
    }},
    servers: [(
        forward_auth: (upstream: "auth", uri: "/verify?from=troupe", copy_headers: ["X-User", "X-Role"]),
        routes: [
            (path: "/api/{{*p}}", handler: Proxy(upstream: "app")),
            (path: "/down", handler: Proxy(upstream: "app"),
             forward_auth: (upstream: "down", uri: "/verify")),
            (path: "/open", handler: Return(body: "open\n"), forward_auth: (enabled: false)),
        ],
    )],
)"#
    )
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test]
async fn a_2xx_lets_the_request_through_with_the_named_headers_copied() {
    let (auth, seen, _) = start_auth().await;
    let app = TestBackend::start("app", Behaviour::default()).await;
    let s = TestServer::start(&config(auth, app.addr, closed_port().await)).await;

    let r = get_with(
        &s.url("/api/headers?q=1"),
        &[
            ("authorization", "Bearer good"),
            ("cookie", "session=abc"),
            ("x-user", "mallory"),
            ("x-forwarded-method", "DELETE"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let echoed = r.text();
    assert!(echoed.contains("x-user: alice\n"), "{echoed}");
    assert!(echoed.contains("x-role: admin\n"), "{echoed}");
    assert!(!echoed.contains("mallory"), "{echoed}");

    let asked = seen.lock().expect("seen").clone();
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.uri, "/verify?from=troupe");
    assert_eq!(asked.header("x-forwarded-method"), Some("GET"));
    assert_eq!(asked.header("x-forwarded-uri"), Some("/api/headers?q=1"));
    assert_eq!(asked.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(asked.header("x-forwarded-proto"), Some("http"));
    assert_eq!(asked.header("cookie"), Some("session=abc"));
    assert_eq!(asked.header("authorization"), Some("Bearer good"));

    // A POST: the auth service gets a GET without the body, the app the
    // body whole; a header the auth answer lacks is still taken from
    // the client.
    let r = send(
        &h1(),
        Request::post(s.url("/api/upload"))
            .header("authorization", "Bearer no-role")
            .header("x-role", "root")
            .body(Full::from("12345"))
            .expect("request"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "5");
    let asked = seen.lock().expect("seen").clone();
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.header("x-forwarded-method"), Some("POST"));
    assert_eq!(asked.header("content-length"), None);
    let r = get_with(
        &s.url("/api/headers"),
        &[("authorization", "Bearer no-role"), ("x-role", "root")],
    )
    .await;
    assert!(
        r.text().contains("x-user: bob\n") && !r.text().contains("root"),
        "{}",
        r.text()
    );

    // `enabled: false`: not asked.
    let before = app.hits();
    assert_eq!(get_with(&s.url("/open"), &[]).await.text(), "open\n");
    assert_eq!(app.hits(), before);
    s.stop().await;
}

#[tokio::test]
async fn refusals_go_back_as_they_are_and_errors_never_let_through() {
    let (auth, _, asked) = start_auth().await;
    let app = TestBackend::start("app", Behaviour::default()).await;
    let s = TestServer::start(&config(auth, app.addr, closed_port().await)).await;
    let url = s.url("/api/headers");

    let r = get_with(&url, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"auth\""));
    assert_eq!(r.text(), "who are you?\n");

    let r = get_with(&url, &[("authorization", "Bearer bad")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.text(), "forbidden by the auth service\n");

    let r = get_with(&url, &[("authorization", "Bearer redirect")]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location"),
        Some("https://login.example.com/?next=x")
    );

    for (token, status) in [("boom", 500), ("teapot", 500)] {
        let r = get_with(&url, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(r.status.as_u16(), status, "{token}");
        assert!(!r.text().contains("secret"), "{token}: {}", r.text());
    }
    assert_eq!(app.hits(), 0, "nothing refused reached the app");
    assert_eq!(*asked.lock().expect("asked"), 5);

    // The auth service cannot be reached: fail closed.
    let r = get_with(&s.url("/down"), &[("authorization", "Bearer good")]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(app.hits(), 0);
    s.stop().await;
}

#[test]
fn an_unknown_group_or_a_bad_uri_is_a_config_error() {
    for (fa, words) in [
        (
            r#"forward_auth: (upstream: "nope")"#,
            "no upstream named `nope`",
        ),
        (
            r#"forward_auth: (upstream: "auth", uri: "verify")"#,
            "invalid `uri` `verify`",
        ),
        (
            r#"forward_auth: (upstream: "auth", copy_headers: ["x user"])"#,
            "`x user`",
        ),
        (r#"forward_auth: (uri: "/verify")"#, "has no `upstream`"),
    ] {
        let config = format!(
            "Config(\n    listen: [\"127.0.0.1:0\"],\n    upstreams: {{ \"auth\": (backends: [(addr: \"127.0.0.1:9\")]) }},\n    servers: [(routes: [\n        (path: \"/\", handler: Return(status: 200),\n         {fa}),\n    ])],\n)\n"
        );
        let (_dir, path, stderr) = crate::access::refused(&config);
        assert!(stderr.contains(&format!("{path}:6:")), "{stderr}");
        assert!(stderr.contains(words), "expected {words} in {stderr}");
    }
}
