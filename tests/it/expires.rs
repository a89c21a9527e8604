//! issue 16: `Expires`/`Cache-Control` by route and by file type (nginx
//! `expires 30d | epoch | max | off`), and `AddHeaders` with and without
//! `always` (nginx `add_header … always`).

use std::time::SystemTime;

use http::StatusCode;
use tempfile::TempDir;

use crate::support::{client, server::TestServer};

fn site() -> TempDir {
    let dir = TempDir::new().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    for (name, body) in [
        ("index.html", "<h1>home</h1>"),
        ("logo.png", "png"),
        ("site.css", "body{}"),
        ("data.json", "{}"),
        ("icon.svg", "<svg/>"),
    ] {
        std::fs::write(www.join(name), body).unwrap();
    }
    dir
}

fn config(server: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [({server})],
)"#
    )
}

/// Seconds from now to the `Expires` date.
fn expires_in(r: &client::Resp) -> i64 {
    let at = httpdate::parse_http_date(r.header("expires").expect("Expires")).expect("a date");
    match at.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_type_by_extension_and_a_default() {
    let server = r#"
        expires: (default: "1d"),
        routes: [
            (path: "/{*p}", handler: Static(root: "www"),
             expires: (default: "1h", by_type: {"text/html": "epoch", "image/": "30d", "image/svg+xml": "off", ".css": "max"})),
            (path: "/plain", handler: Return(body: "x")),
            (path: "/own", handler: Return(body: "x"), expires: (default: "off")),
        ],
    "#;
    let srv = TestServer::start_in(site(), &config(server)).await;
    let html = client::get(&srv.url("/index.html")).await;
    assert_eq!(html.header("cache-control"), Some("no-cache"));
    assert_eq!(
        html.header("expires"),
        Some("Thu, 01 Jan 1970 00:00:01 GMT")
    );
    let png = client::get(&srv.url("/logo.png")).await;
    assert_eq!(png.header("cache-control"), Some("max-age=2592000"));
    let ahead = expires_in(&png);
    assert!((2_592_000 - 60..=2_592_000 + 1).contains(&ahead), "{ahead}");
    // The longer key wins over `image/`; `off` leaves the answer alone.
    let svg = client::get(&srv.url("/icon.svg")).await;
    assert_eq!(
        (svg.header("cache-control"), svg.header("expires")),
        (None, None)
    );
    let css = client::get(&srv.url("/site.css")).await;
    assert_eq!(css.header("cache-control"), Some("max-age=315360000"));
    let json = client::get(&srv.url("/data.json")).await;
    assert_eq!(json.header("cache-control"), Some("max-age=3600"));
    // A 304 gets them too (it has no type: the extension or the default).
    let etag = json.header("etag").expect("etag").to_owned();
    let not_modified = client::get_with(&srv.url("/data.json"), &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("cache-control"), Some("max-age=3600"));
    // An error does not.
    let missing = client::get(&srv.url("/missing.png")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("cache-control"), None);
    // The server's for a route without its own; a route's `off` replaces it.
    let plain = client::get(&srv.url("/plain")).await;
    assert_eq!(plain.header("cache-control"), Some("max-age=86400"));
    assert_eq!(
        client::get(&srv.url("/own")).await.header("cache-control"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_headers_reach_errors_only_with_always() {
    let server = r#"
        routes: [
            (path: "/a/{*p}", handler: Static(root: "www"),
             middleware: [AddHeaders(headers: {"x-frame-options": "DENY"})]),
            (path: "/b/{*p}", handler: Static(root: "www"),
             middleware: [AddHeaders(headers: {"x-frame-options": "DENY"}, always: true)]),
            (path: "/twice", handler: Return(headers: {"link": "</a>"}, body: "x"),
             middleware: [AddHeaders(headers: {"link": "</b>"})]),
        ],
    "#;
    let srv = TestServer::start_in(site(), &config(server)).await;
    for prefix in ["/a", "/b"] {
        let ok = client::get(&srv.url(&format!("{prefix}/index.html"))).await;
        assert_eq!(ok.header("x-frame-options"), Some("DENY"), "{prefix}");
    }
    let a = client::get(&srv.url("/a/missing")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.header("x-frame-options"), None);
    let b = client::get(&srv.url("/b/missing")).await;
    assert_eq!(b.status, StatusCode::NOT_FOUND);
    assert_eq!(b.header("x-frame-options"), Some("DENY"));
    // Added, not replaced: both values go out.
    let twice = client::get(&srv.url("/twice")).await;
    let all: Vec<_> = twice
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, ["</a>", "</b>"]);
}

#[test]
fn a_bad_expiry_names_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    let cfg = "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(routes: [\n        (path: \"/\", handler: Return(body: \"x\"), expires: (default: \"soon\")),\n    ])],\n)\n";
    std::fs::write(&path, cfg).unwrap();
    let (code, stderr) = crate::support::daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:4:68: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");
    assert!(stderr.contains("invalid expiry `soon`"), "{stderr}");
}
