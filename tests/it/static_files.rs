//! P4.3: static files — MIME, index, validators and 304, ranges, HEAD,
//! listing off, large files, cache freshness, and no escape from the root.

use std::time::Duration;

use http::{Request, StatusCode};
use tempfile::TempDir;

use crate::support::{
    client::{self, raw, status_of},
    eventually, repo_root,
    server::TestServer,
};

/// A docroot with a few files, a subdirectory without index, and a secret
/// file beside (outside) the root.
fn docroot() -> TempDir {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub/empty")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("data.json"), "{}").unwrap();
    std::fs::write(root.join("sub/index.html"), "sub home").unwrap();
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    std::fs::write(root.join("empty.txt"), "").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink(root.join("digits.txt"), root.join("link-in.txt")).unwrap();
    dir
}

fn config(follow_outside: bool) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(routes: [
        (path: "/files/{{*path}}", handler: Static(root: "root", follow_symlinks_outside_root: {follow_outside})),
        (path: "/{{*path}}", handler: Static(root: "root", cache_max_file_bytes: 1024)),
    ])],
)"#
    )
}

async fn server() -> TestServer {
    TestServer::start_in(docroot(), &config(false)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mime_types_and_index_files() {
    let srv = server().await;
    for (path, mime, body) in [
        ("/", "text/html", "<h1>home</h1>"),
        ("/app.js", "text/javascript", "console.log(1)"),
        ("/data.json", "application/json", "{}"),
        ("/sub/", "text/html", "sub home"),
        ("/files/digits.txt", "text/plain", "0123456789"),
    ] {
        let r = client::get(&srv.url(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
        assert_eq!(r.text(), body, "{path}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    // A directory without its slash is redirected, like nginx.
    let r = client::get(&srv.url("/sub")).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("location"), Some("/sub/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_listing_is_off() {
    let srv = server().await;
    assert_eq!(
        client::get(&srv.url("/sub/empty/")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        client::get(&srv.url("/missing.txt")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_last_modified_answer_304() {
    let srv = server().await;
    let first = client::get(&srv.url("/app.js")).await;
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    assert_eq!(first.header("accept-ranges"), Some("bytes"));

    let r = client::get_with(&srv.url("/app.js"), &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let weak = format!("\"other\", W/{etag}");
    let r = client::get_with(&srv.url("/app.js"), &[("if-none-match", &weak)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    let r = client::get_with(&srv.url("/app.js"), &[("if-modified-since", &modified)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    let r = client::get_with(
        &srv.url("/app.js"),
        &[("if-modified-since", "Thu, 01 Jan 1998 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // If-None-Match wins over If-Modified-Since.
    let r = client::get_with(
        &srv.url("/app.js"),
        &[
            ("if-none-match", "\"stale\""),
            ("if-modified-since", &modified),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_206_416_and_multi_range() {
    let srv = server().await;
    let r = client::get_with(&srv.url("/digits.txt"), &[("range", "bytes=2-5")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.text(), "2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));

    let r = client::get_with(&srv.url("/digits.txt"), &[("range", "bytes=-3")]).await;
    assert_eq!(r.text(), "789");

    let r = client::get_with(&srv.url("/digits.txt"), &[("range", "bytes=50-60")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */10"));

    let r = client::get_with(&srv.url("/digits.txt"), &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "0123456789");

    // A range of a large, streamed file.
    let r = client::get_with(&srv.url("/big.bin"), &[("range", "bytes=1000000-1000009")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let want: Vec<u8> = (1_000_000..1_000_010u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(r.body, want);

    // A stale If-Range gets the whole file.
    let r = client::get_with(
        &srv.url("/digits.txt"),
        &[("range", "bytes=2-5"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_has_the_headers_and_no_body() {
    let srv = server().await;
    for path in ["/digits.txt", "/big.bin"] {
        let get = client::get(&srv.url(path)).await;
        let head = client::send(
            &client::h1(),
            Request::head(srv.url(path))
                .body(Default::default())
                .unwrap(),
        )
        .await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        for h in ["content-length", "content-type", "etag", "last-modified"] {
            assert_eq!(head.header(h), get.header(h), "{path} {h}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_stream_intact() {
    let srv = server().await;
    let r = client::get(&srv.url("/big.bin")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), Some("3000000"));
    let want: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert!(r.body == want, "streamed body differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_files_are_served_fresh() {
    let srv = server().await;
    assert_eq!(client::get(&srv.url("/data.json")).await.text(), "{}");
    std::fs::write(srv.dir.path().join("root/data.json"), "{\"v\":2}").unwrap();
    let url = srv.url("/data.json");
    let fresh = eventually(Duration::from_secs(5), || {
        let url = url.clone();
        async move { client::get(&url).await.text() == "{\"v\":2}" }
    })
    .await;
    assert!(fresh, "the cache kept serving the old file");
}

const HOSTILE: &[&str] = &[
    "/../Cargo.toml",
    "/%2e%2e/Cargo.toml",
    "/..%2fCargo.toml",
    "/%252e%252e/Cargo.toml",
    "/.%2e/Cargo.toml",
    "/..\\Cargo.toml",
    "/%2e%2e%5cCargo.toml",
    "/index.html%00.txt",
    "/%c0%ae%c0%ae/Cargo.toml",
    "/%c0%2e%c0%2e/Cargo.toml",
    "/files/../../secret.txt",
    "/files/%2e%2e/secret.txt",
    "/..%2f..%2fsecret.txt",
];

/// Sends each hostile path on its own raw connection (clients would
/// normalize them) and checks the answer is 400 or 404 without the secret.
async fn assert_refused(srv: &TestServer, secret: &str) {
    for path in HOSTILE {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let out = raw(srv.addr, req.as_bytes(), Duration::from_secs(5)).await;
        let status = status_of(&out);
        assert!(
            matches!(status, Some(400) | Some(404)),
            "{path} answered {status:?}:\n{out}"
        );
        assert!(!out.contains(secret), "{path} leaked the file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_never_escape_a_temp_root() {
    let srv = server().await;
    assert_refused(&srv, "TOP SECRET").await;
    assert_refused(&srv, "[package]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_never_escape_the_shipped_root() {
    let srv = TestServer::start_file(&repo_root().join("config.ron")).await;
    assert_refused(&srv, "[package]").await;
    // The server is still fine afterwards.
    assert_eq!(client::get(&srv.url("/hello")).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_the_root_are_refused_unless_allowed() {
    let srv = server().await;
    let out = client::get(&srv.url("/link-out.txt")).await;
    assert_eq!(out.status, StatusCode::NOT_FOUND);
    assert!(!out.text().contains("TOP SECRET"));
    // A link that stays inside the root is fine.
    assert_eq!(
        client::get(&srv.url("/link-in.txt")).await.text(),
        "0123456789"
    );

    let allowed = TestServer::start_in(docroot(), &config(true)).await;
    let r = client::get(&allowed.url("/files/link-out.txt")).await;
    assert_eq!(r.text(), "TOP SECRET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_an_empty_file_is_unsatisfiable() {
    let srv = server().await;
    for range in ["bytes=0-", "bytes=0-0", "bytes=-1"] {
        let r = client::get_with(&srv.url("/empty.txt"), &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */0"));
    }
    let r = client::get(&srv.url("/empty.txt")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_redirects_never_point_off_site() {
    let srv = server().await;
    let out = raw(
        srv.addr,
        b"GET //evil.com/x%2F..%2F..%2Fsub HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&out), Some(301), "{out}");
    let location = out
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("a Location header");
    assert_eq!(location.trim(), "/sub/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_all_prefix_serves_the_root_of_its_alias() {
    let srv = server().await;
    let r = client::get(&srv.url("/files/")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "<h1>home</h1>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_while_it_is_asked_for_is_404_never_500() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("root")).unwrap();
    // Bodies are not cached (over 1 byte): each answer opens the file,
    // between the entry's stat and that open it may be gone.
    let ron = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(routes: [(path: "/{*path}", handler: Static(root: "root", cache_max_file_bytes: 1))])],
)"#;
    let srv = TestServer::start_in(dir, ron).await;
    let file = srv.dir.path().join("root/flicker.txt");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flicker = {
        let (file, stop) = (file.clone(), stop.clone());
        let aside = file.with_extension("tmp");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Whole or absent: written aside, then renamed in.
                let _ = std::fs::write(&aside, "0123456789");
                let _ = std::fs::rename(&aside, &file);
                std::thread::sleep(Duration::from_micros(300));
                let _ = std::fs::remove_file(&file);
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let h1 = client::h1();
    let (mut served, mut gone) = (0, 0);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let req = Request::get(srv.url("/flicker.txt"))
            .body(http_body_util::Full::default())
            .unwrap();
        let r = client::send(&h1, req).await;
        match r.status {
            StatusCode::OK => {
                assert_eq!(r.text(), "0123456789");
                served += 1;
            }
            StatusCode::NOT_FOUND => gone += 1,
            other => panic!(
                "{other} after {served} served and {gone} gone: {}",
                r.text()
            ),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flicker.join().unwrap();
    assert!(served > 0 && gone > 0, "{served} served, {gone} gone");
}
