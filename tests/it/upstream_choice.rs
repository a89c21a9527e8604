//! Modules choose the upstream group of a request (issue 13): a request
//! filter of each runtime (C in-process, C in a child process, Lua,
//! WebAssembly) steers a `Proxy(..)` route's request to another group,
//! with real backends on loopback.

use std::time::Duration;

use http::StatusCode;

use crate::{
    proxy::group,
    support::{
        backend::{Behaviour, TestBackend},
        client,
        daemon::Daemon,
        modules::{self, lib, lua, wasm},
        server::TestServer,
    },
};

/// How one runtime's test module is declared and told to steer.
struct Kind {
    /// The `steer` module's entry, after its name (its config makes it
    /// choose `canary`).
    entry: String,
    /// The `lost` module's entry: it chooses a group the config has not.
    lost: String,
    /// Headers that make `steer` choose `canary`.
    steer: &'static [(&'static str, &'static str)],
    /// Headers that make the module on `/lost/` choose `missing`.
    unknown: &'static [(&'static str, &'static str)],
}

fn native(isolation: &str) -> Kind {
    Kind {
        entry: format!("source: Native({}){isolation}", lib("canary")),
        lost: format!(
            r#"source: Native({}), config: "missing"{isolation}"#,
            lib("canary")
        ),
        steer: &[("x-canary", "1")],
        unknown: &[("x-canary", "1")],
    }
}

fn lua_kind() -> Kind {
    Kind {
        entry: format!("source: Lua({})", lua("examples/canary.lua")),
        lost: format!(
            r#"source: Lua({}), config: "missing""#,
            lua("examples/canary.lua")
        ),
        steer: &[("x-canary", "1")],
        unknown: &[("x-canary", "1")],
    }
}

fn wasm_kind() -> Kind {
    // One component reads the group from a header, so `lost` is the same.
    Kind {
        entry: format!("source: Wasm({})", wasm("steer")),
        lost: format!("source: Wasm({})", wasm("steer")),
        steer: &[("x-upstream", "canary")],
        unknown: &[("x-upstream", "missing")],
    }
}

fn config(kind: &Kind, app: &TestBackend, canary: &TestBackend) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [
        (name: "steer", {}),
        (name: "lost", {}),
    ],
    upstreams: {{ {} {} }},
    servers: [( routes: [
        (path: "/lost/{{*rest}}", handler: Proxy(upstream: "app"), middleware: [Module("lost")]),
        (path: "/local", handler: Return(body: "local\n"), middleware: [Module("steer")]),
        (path: "/{{*rest}}", handler: Proxy(upstream: "app"), middleware: [Module("steer")]),
    ] )],
)"#,
        kind.entry,
        kind.lost,
        group("app", &[app], ""),
        group("canary", &[canary], ""),
    )
}

/// What a request to `path` with `headers` got: its status and body.
async fn fetch(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let r = client::get_with(&srv.url(path), headers).await;
    (r.status, r.text())
}

/// The whole story for one runtime: steered and not, an unknown group,
/// a route that is no proxy, and module reloads while steering.
async fn steers(kind: Kind) {
    let app = TestBackend::start("app", Behaviour::default()).await;
    let canary = TestBackend::start("canary", Behaviour::default()).await;
    let srv = TestServer::start(&config(&kind, &app, &canary)).await;
    modules::ready(&srv, "steer").await;
    modules::ready(&srv, "lost").await;

    let ok = |body: &str| (StatusCode::OK, body.to_owned());
    assert_eq!(fetch(&srv, "/x", &[]).await, ok("hello from app"));
    assert_eq!(fetch(&srv, "/x", kind.steer).await, ok("hello from canary"));
    assert_eq!((app.hits(), canary.hits()), (1, 1));

    // A group no config has: 502, nothing sent anywhere, and the server
    // goes on serving.
    let (status, _) = fetch(&srv, "/lost/x", kind.unknown).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!((app.hits(), canary.hits()), (1, 1));
    assert_eq!(fetch(&srv, "/lost/x", &[]).await, ok("hello from app"));
    assert_eq!(fetch(&srv, "/x", kind.steer).await, ok("hello from canary"));

    // A route whose handler is not a proxy ignores the choice.
    assert_eq!(fetch(&srv, "/local", kind.steer).await, ok("local\n"));

    // Reloads while steered requests run: every one reaches the canary.
    let before = canary.hits();
    let url = srv.url("/x");
    let steer = kind.steer;
    let load = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..60 {
            let r = client::get_with(&url, steer).await;
            seen.push((r.status, r.text()));
        }
        seen
    });
    for _ in 0..3 {
        srv.running()
            .reload_module("steer")
            .await
            .expect("reload the module");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = load.await.expect("load");
    assert!(
        seen.iter().all(|s| *s == ok("hello from canary")),
        "{seen:?}"
    );
    assert_eq!(canary.hits() - before, 60);
    assert_eq!(fetch(&srv, "/x", &[]).await, ok("hello from app"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_module_in_process_chooses_the_upstream() {
    steers(native("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_module_in_a_child_process_chooses_the_upstream() {
    steers(native(", isolation: Process")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lua_module_chooses_the_upstream() {
    steers(lua_kind()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webassembly_module_chooses_the_upstream() {
    steers(wasm_kind()).await;
}

/// A component used as middleware that does not call `pass` answers the
/// request itself; one that is a handler and calls `pass` answers 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webassembly_filter_may_answer_and_a_handler_may_not_pass() {
    let app = TestBackend::start("app", Behaviour::default()).await;
    let srv = TestServer::start(&format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [(name: "steer", source: Wasm({}))],
    upstreams: {{ {} }},
    servers: [( routes: [
        (path: "/handler", handler: Module("steer")),
        (path: "/{{*rest}}", handler: Proxy(upstream: "app"), middleware: [Module("steer")]),
    ] )],
)"#,
        wasm("steer"),
        group("app", &[&app], ""),
    ))
    .await;
    modules::ready(&srv, "steer").await;
    let (status, body) = fetch(&srv, "/x", &[("x-deny", "1")]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "denied by steer.c\n")
    );
    assert_eq!(app.hits(), 0);
    let (status, _) = fetch(&srv, "/handler", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fetch(&srv, "/x", &[]).await.1, "hello from app");
    srv.stop().await;
}

/// The real binary logs an unknown choice with the module, the name it
/// chose and the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_choice_is_logged_with_the_module_and_the_route() {
    let app = TestBackend::start("app", Behaviour::default()).await;
    let canary = TestBackend::start("canary", Behaviour::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config(&native(""), &app, &canary)).expect("write config");
    let d = Daemon::start(&path);
    let url = format!("http://{}/lost/x", d.addr);
    let r = client::get_with(&url, &[("x-canary", "1")]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        d.wait_for_log(
            "a module chose an upstream group that does not exist",
            Duration::from_secs(5)
        ),
        "{}",
        d.logs()
    );
    let line = d
        .logs()
        .lines()
        .find(|l| l.contains("does not exist"))
        .map(str::to_owned)
        .unwrap_or_default();
    for part in [
        r#"module="lost""#,
        "chosen=missing",
        r#"route="/lost/{*rest}""#,
        r#"upstream="app""#,
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert_eq!(
        client::get(&format!("http://{}/x", d.addr)).await.text(),
        "hello from app"
    );
}

/// A config reload that drops the chosen group: the next steered request
/// answers 502 (the new generation's groups are looked up), the others
/// still reach the route's group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_drops_the_chosen_group_makes_the_choice_unknown() {
    let app = TestBackend::start("app", Behaviour::default()).await;
    let canary = TestBackend::start("canary", Behaviour::default()).await;
    let kind = native("");
    let srv = TestServer::start(&config(&kind, &app, &canary)).await;
    modules::ready(&srv, "steer").await;
    assert_eq!(fetch(&srv, "/x", kind.steer).await.1, "hello from canary");

    // The same config without the canary group.
    let without = config(&kind, &app, &canary).replace(&group("canary", &[&canary], ""), "");
    std::fs::write(srv.dir.path().join("config.ron"), without).expect("write config");
    srv.running()
        .reload_config(troupe::Trigger::Admin)
        .await
        .expect("reload the config");
    assert_eq!(
        fetch(&srv, "/x", kind.steer).await.0,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(fetch(&srv, "/x", &[]).await.1, "hello from app");
    assert_eq!(canary.hits(), 1);
    srv.stop().await;
}
