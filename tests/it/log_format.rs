//! issue 16: a server's own access-log format (nginx `log_format`) with
//! `$variables`, and the requests it leaves out (nginx `access_log … if=`).

use std::time::Duration;

use crate::support::{
    backend::{Behaviour, TestBackend},
    client, eventually,
    server::TestServer,
};

async fn lines(srv: &TestServer, at_least: usize) -> Vec<String> {
    let path = srv.dir.path().join("access.log");
    let found = eventually(Duration::from_secs(5), || {
        let path = path.clone();
        async move { std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() >= at_least) }
    })
    .await;
    assert!(found, "fewer than {at_least} access log lines");
    // Give a line that should not come the time to show up anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_format_with_variables_and_skipped_requests() {
    let backend = TestBackend::start("app", Behaviour::default()).await;
    let cfg = format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: File("access.log"), format: Combined),
    upstreams: {{ "app": (backends: [(addr: "{}")]) }},
    servers: [
        (names: ["a.test"], default: true,
         access_log: (
            format: "A $remote_addr \"$request\" $status $body_bytes_sent t=$request_time host=$host uri=$uri args=$args ua=\"$http_user_agent\" up=$upstream_addr/$upstream_response_time",
            skip: ["^/health$"],
         ),
         routes: [
            (path: "/health", handler: Return(body: "ok")),
            (path: "/hello", handler: Return(body: "Hello!")),
            (path: "/app/{{*p}}", handler: Proxy(upstream: "app")),
         ]),
        (names: ["b.test"], routes: [(path: "/b", handler: Return(body: "b"))]),
        (names: ["errors.test"], access_log: (skip_status: "200-399"),
         routes: [(path: "/fine", handler: Return(body: "fine"))]),
    ],
)"#,
        backend.addr
    );
    let srv = TestServer::start(&cfg).await;
    let host = |h: &'static str| [("host", h), ("user-agent", "probe/2 \"quoted\"")];
    client::get_with(&srv.url("/health"), &host("a.test")).await;
    client::get_with(&srv.url("/hello?x=1"), &host("a.test")).await;
    client::get_with(&srv.url("/app/x"), &host("a.test")).await;
    client::get_with(&srv.url("/b"), &host("b.test")).await;
    client::get_with(&srv.url("/fine"), &host("errors.test")).await;
    client::get_with(&srv.url("/missing"), &host("errors.test")).await;
    let lines = lines(&srv, 4).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    // /health is left out; the rest in order.
    let hello = &lines[0];
    assert!(
        hello.starts_with("A 127.0.0.1 \"GET /hello?x=1 HTTP/1.1\" 200 6 t=0."),
        "{hello}"
    );
    assert!(
        hello.ends_with(" host=a.test uri=/hello args=x=1 ua=\"probe/2 \"quoted\"\" up=-/-"),
        "{hello}"
    );
    let proxied = &lines[1];
    assert!(
        proxied.starts_with("A 127.0.0.1 \"GET /app/x HTTP/1.1\" 200 "),
        "{proxied}"
    );
    let up = proxied.rsplit_once(" up=").unwrap().1;
    let (addr, time) = up.split_once('/').unwrap();
    assert_eq!(addr, backend.addr.to_string(), "{proxied}");
    assert!(time.parse::<f64>().is_ok_and(|t| t >= 0.0), "{proxied}");
    // A server without its own format: the global one.
    assert!(
        lines[2].contains("\"GET /b HTTP/1.1\" 200 1 "),
        "{}",
        lines[2]
    );
    // Only the error of the server that skips 2xx and 3xx.
    assert!(
        lines[3].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{}",
        lines[3]
    );
}

#[test]
fn a_bad_skip_regex_names_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    let cfg = "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(\n        access_log: (skip: [\"^/(health\"]),\n        routes: [(path: \"/\", handler: Return(body: \"x\"))],\n    )],\n)\n";
    std::fs::write(&path, cfg).unwrap();
    let (code, stderr) = crate::support::daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:4:29: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");
    assert!(stderr.contains("invalid regex `^/(health`"), "{stderr}");
}
