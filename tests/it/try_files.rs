//! issue 16: `try_files` on a static route — files, a directory's index,
//! the single-page-app fallback, a status fallback, a fallback to another
//! route, and hostile paths that must stay inside the root.

use http::StatusCode;
use tempfile::TempDir;

use crate::support::{
    client::{self, raw, status_of},
    server::TestServer,
};

/// An app root (`dist/`) with an index, an asset and a docs directory,
/// and a secret beside it.
fn site() -> TempDir {
    let dir = TempDir::new().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("docs")).unwrap();
    std::fs::create_dir_all(dist.join("nodex")).unwrap();
    std::fs::write(dist.join("index.html"), "<app shell>").unwrap();
    std::fs::write(dist.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(dist.join("docs/index.html"), "docs home").unwrap();
    std::fs::write(dist.join("page.html"), "a page").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), dist.join("out.txt")).unwrap();
    dir
}

fn config(routes: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(routes: [{routes}])],
)"#
    )
}

const SPA: &str = r#"
    (path: "/api/{*rest}", handler: Return(body: "api $uri")),
    (path: "/{*path}", handler: Static(root: "dist", try_files: ["$uri", "$uri/", "/index.html"])),
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_page_app_fallback_is_one_line() {
    let srv = TestServer::start_in(site(), &config(SPA)).await;
    let asset = client::get(&srv.url("/app.js")).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.text(), "console.log(1)");
    assert_eq!(asset.header("content-type"), Some("text/javascript"));
    // A directory by `$uri/`: its index.
    let docs = client::get(&srv.url("/docs/")).await;
    assert_eq!(
        (docs.status, docs.text().as_str()),
        (StatusCode::OK, "docs home")
    );
    let docs = client::get(&srv.url("/docs")).await;
    assert_eq!(
        (docs.status, docs.text().as_str()),
        (StatusCode::OK, "docs home")
    );
    // A client-side route: the app shell, 200, for any depth.
    for path in ["/", "/users/42/settings", "/nodex", "/nodex/", "/a%20b?x=1"] {
        let r = client::get(&srv.url(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.text(), "<app shell>", "{path}");
        assert_eq!(r.header("content-type"), Some("text/html"), "{path}");
    }
    // Other routes still answer theirs.
    assert_eq!(client::get(&srv.url("/api/x")).await.text(), "api /api/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_route_fallbacks() {
    let routes = r#"
        (path: "/strict/{*p}", handler: Static(root: "dist", try_files: ["/$param_p", "=404"])),
        (path: "/gone/{*p}", handler: Static(root: "dist", try_files: ["/$param_p.html", "=410"])),
        (path: "/pretty/{*p}", handler: Static(root: "dist", try_files: ["/$param_p.html", "/fallback?from=$param_p"])),
        (path: "/fallback", handler: Return(status: 200, body: "fallback from=$arg_from")),
    "#;
    let srv = TestServer::start_in(site(), &config(routes)).await;
    assert_eq!(
        client::get(&srv.url("/strict/app.js")).await.text(),
        "console.log(1)"
    );
    assert_eq!(
        client::get(&srv.url("/strict/nope.js")).await.status,
        StatusCode::NOT_FOUND
    );
    // `$param_p.html`: the pretty URL finds page.html.
    assert_eq!(client::get(&srv.url("/gone/page")).await.text(), "a page");
    assert_eq!(
        client::get(&srv.url("/gone/none")).await.status,
        StatusCode::GONE
    );
    assert_eq!(client::get(&srv.url("/pretty/page")).await.text(), "a page");
    let r = client::get(&srv.url("/pretty/missing")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "fallback from=missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_stay_inside_the_root() {
    let routes = r#"
        (path: "/q", handler: Static(root: "dist", try_files: ["/$arg_f", "=404"])),
        (path: "/{*path}", handler: Static(root: "dist", try_files: ["$uri", "=404"])),
    "#;
    let srv = TestServer::start_in(site(), &config(routes)).await;
    // A query parameter is not normalized by the pipeline: try_files must.
    for q in [
        "../secret.txt",
        "..%2Fsecret.txt",
        "docs/../../secret.txt",
        "%2e%2e/secret.txt",
        "..\\secret.txt",
        "out.txt",
    ] {
        let r = client::get(&srv.url(&format!("/q?f={q}"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{q}");
        assert!(!r.text().contains("SECRET"), "{q}");
    }
    assert_eq!(
        client::get(&srv.url("/q?f=docs/../app.js")).await.text(),
        "console.log(1)"
    );
    // In the path, the pipeline refuses a climb before try_files runs.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/%2E%2E/%2e%2e/secret.txt",
    ] {
        let resp = raw(
            srv.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            std::time::Duration::from_secs(5),
        )
        .await;
        let status = status_of(&resp);
        assert!(matches!(status, Some(400 | 404)), "{path}: {resp}");
        assert!(!resp.contains("SECRET"), "{path}");
    }
    assert_eq!(
        client::get(&srv.url("/out.txt")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_that_loops_answers_500() {
    // `/index.html` is missing here, so the fallback finds the same route
    // again: nginx stops after 10 hops with 500, and so do we.
    let routes = r#"
        (path: "/{*path}", handler: Static(root: "dist/docs/none", try_files: ["$uri", "/loop$uri"])),
    "#;
    let dir = site();
    std::fs::create_dir_all(dir.path().join("dist/docs/none")).unwrap();
    let srv = TestServer::start_in(dir, &config(routes)).await;
    let r = client::get(&srv.url("/x")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_tours_it() {
    let srv = TestServer::start_file(&crate::support::repo_root().join("config.ron")).await;
    let app = [("host", "app.localhost")];
    let index =
        std::fs::read_to_string(crate::support::repo_root().join("www/index.html")).unwrap();
    let r = client::get_with(&srv.url("/some/client/route"), &app).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), index);
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let css = client::get_with(&srv.url("/style.css"), &app).await;
    assert_eq!(css.header("cache-control"), Some("max-age=2592000"));
    assert_eq!(
        client::get_with(&srv.url("/health"), &app).await.text(),
        "ok\n"
    );
}
