//! Rate-limit zones keyed by a module's choice (issue 14): a request
//! filter of each runtime (C in-process and in a child process, Rust
//! through the SDK, Lua, WebAssembly) sets the key (`set_rate_key`), and
//! the zone (`key: Module`) is checked once the route's filters ran.
//! Requests with one key share a bucket, other keys have their own, and a
//! request no filter keyed is not limited.

use http::StatusCode;

use crate::support::{
    client,
    modules::{self, lib, lua, wasm},
    server::TestServer,
};

/// How one runtime's test module is declared and keys a request.
struct Kind {
    /// The module's entry, after its name.
    entry: String,
    /// The header whose value becomes the key.
    header: &'static str,
    /// The headers of a request the filter lets through without a key.
    unkeyed: &'static [(&'static str, &'static str)],
    /// Whether the filter also keys by the path (`/u/NAME/...`).
    by_path: bool,
}

/// `plugins/c/testing/rate_key.c`, in the server or a child process.
fn c(isolation: &str) -> Kind {
    Kind {
        entry: format!("source: Native({}){isolation}", lib("rate_key")),
        header: "x-user",
        unkeyed: &[],
        by_path: true,
    }
}

const STATUS: StatusCode = StatusCode::TOO_MANY_REQUESTS;

impl Kind {
    fn config(&self) -> String {
        config(self)
    }
}

fn config(kind: &Kind) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [(name: "key", {})],
    rate_zones: {{ "users": (rate: "1r/m", key: Module), "all": (rate: "1r/m", key: Module) }},
    servers: [( rate_limits: [(zone: "all")], routes: [
        (path: "/plain", handler: Return(body: "plain\n")),
        (path: "/{{*rest}}", handler: Return(body: "ok\n"), middleware: [Module("key")],
         rate_limits: [(zone: "users")]),
    ] )],
)"#,
        kind.entry
    )
}

/// The status of `GET path` with `headers`, and its `Retry-After`.
async fn get(
    srv: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>) {
    let r = client::get_with(&srv.url(path), headers).await;
    (r.status, r.header("retry-after").map(str::to_owned))
}

async fn statuses(srv: &TestServer, n: usize, path: &str, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get(srv, path, headers).await.0.as_u16());
    }
    out
}

/// The whole story for one runtime.
async fn keys(kind: Kind) {
    let srv = TestServer::start(&config(&kind)).await;
    modules::ready(&srv, "key").await;
    let h = kind.header;
    // One key: the server's zone and the route's (both keyed by the
    // module, at 1r/m) let the first through, then 429 with Retry-After.
    let (first, _) = get(&srv, "/a", &[(h, "alice")]).await;
    assert_eq!(first, StatusCode::OK);
    let (second, retry) = get(&srv, "/a", &[(h, "alice")]).await;
    assert_eq!(second, STATUS);
    assert!(
        retry
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{retry:?}"
    );
    // Another key has its own buckets, on any path of the route.
    assert_eq!(statuses(&srv, 2, "/b", &[(h, "bob")]).await, [200, 429]);
    assert_eq!(statuses(&srv, 1, "/a", &[(h, "alice")]).await, [429]);
    // No key: neither zone limits it.
    assert_eq!(statuses(&srv, 4, "/a", kind.unkeyed).await, [200; 4]);
    // A route without the module is not limited by the server's zone
    // keyed by `Module`: nothing could key its requests.
    assert_eq!(statuses(&srv, 3, "/plain", &[(h, "alice")]).await, [200; 3]);
    if kind.by_path {
        assert_eq!(statuses(&srv, 2, "/u/carol/x", &[]).await, [200, 429]);
        assert_eq!(statuses(&srv, 1, "/u/carol/y", &[]).await, [429]);
        assert_eq!(statuses(&srv, 1, "/u/dave", &[]).await, [200]);
        // The header wins over the path in these modules: its own key.
        assert_eq!(statuses(&srv, 1, "/u/carol", &[(h, "erin")]).await, [200]);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_module_in_process_keys_a_zone() {
    keys(c("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_module_in_a_child_process_keys_a_zone() {
    keys(c(", isolation: Process")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_module_keys_a_zone() {
    // `panicky`'s filter answers 401 without `x-token`, and keys by its
    // value when it has one; an empty one goes on unkeyed.
    keys(Kind {
        entry: format!("source: Native({})", lib("panicky")),
        header: "x-token",
        unkeyed: &[("x-token", "")],
        by_path: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lua_module_keys_a_zone() {
    keys(Kind {
        entry: format!("source: Lua({})", lua("testing/rate_key.lua")),
        header: "x-user",
        unkeyed: &[],
        by_path: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webassembly_module_keys_a_zone() {
    keys(Kind {
        entry: format!("source: Wasm({})", wasm("rate_key")),
        header: "x-user",
        unkeyed: &[],
        by_path: true,
    })
    .await;
}

/// The zones keyed by a module run after every middleware of the route:
/// a request a later middleware answers (here a 401 for a missing
/// `x-key`, after the module keyed it) is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_runs_after_every_middleware_of_the_route() {
    let srv = TestServer::start(&c("").config().replace(
        r#"middleware: [Module("key")]"#,
        r#"middleware: [Module("key"), RequireHeader(header: "x-key")]"#,
    ))
    .await;
    modules::ready(&srv, "key").await;
    let user = ("x-user", "frank");
    assert_eq!(statuses(&srv, 3, "/a", &[user]).await, [401; 3]);
    assert_eq!(
        statuses(&srv, 2, "/a", &[user, ("x-key", "1")]).await,
        [200, 429]
    );
    srv.stop().await;
}

/// A route's own limit on a zone keyed by `Module` needs a module to key
/// it: without one, the config is refused with the route's position.
#[test]
fn a_module_keyed_zone_on_a_route_without_a_module_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ron");
    let text = r#"Config(
    listen: ["127.0.0.1:0"],
    rate_zones: { "users": (rate: "1r/s", key: Module) },
    servers: [( routes: [
        (path: "/nobody", handler: Return(body: "ok\n"), rate_limits: [(zone: "users")]),
    ] )],
)"#;
    let Err(err) = troupe::config::load_str(text, &path) else {
        panic!("accepted");
    };
    let err = err.to_string();
    assert!(
        err.starts_with(&format!("{}:5:16:", path.display())),
        "{err}"
    );
    assert!(err.contains("keyed by `Module`"), "{err}");
    assert!(err.contains("set_rate_key"), "{err}");
}
