//! WebAssembly modules (issue 4, P2.5): wasi:http components built from C
//! in `plugins/wasm/`, their limits under load, bad components, and the
//! host API shared with the other kinds.

use std::{process::Command, time::Duration};

use http::StatusCode;

use crate::support::{
    client,
    daemon::{self, Daemon, bin},
    eventually,
    load::misbehaves_alone,
    modules::{config, one_module, ready},
    modules::{lua, scripted_wasm, shipped_config, wasm},
    server::TestServer,
};

#[test]
fn the_wasm_example_serves_through_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&shipped_config(dir.path()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("http://{}/hello/wasm?name=Ann", d.addr);
        assert!(
            eventually(Duration::from_secs(10), || async {
                client::get(&url).await.status == StatusCode::OK
            })
            .await,
            "{}",
            d.logs()
        );
        let resp = client::get(&format!("http://{}/hello/wasm?name=Bob", d.addr)).await;
        assert_eq!(
            resp.text(),
            "Hello from WebAssembly, Bob! (previous: Ann)\n"
        );
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_loops_and_memory_bombs_fail_only_their_request() {
    // Fresh instances, and reused ones (which must be dropped once failed).
    for reuse in [1, 1000] {
        let srv = one_module(
            "bad",
            &format!(
                // `time` counts CPU, which a loop on the module pool gets
                // little of while the clients keep the server busy; the
                // wall-clock `timeout` bounds how long the client waits.
                r#"source: Wasm({}), timeout: "1s", sandbox: (memory: 4194304, time: "300ms", requests_per_instance: {reuse})"#,
                wasm("misbehave")
            ),
            "/bad",
        )
        .await;
        let cases = [
            ("trap", StatusCode::INTERNAL_SERVER_ERROR),
            ("loop", StatusCode::GATEWAY_TIMEOUT),
            ("memory", StatusCode::INTERNAL_SERVER_ERROR),
        ];
        misbehaves_alone(&srv, &cases, 2, Duration::from_secs(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_instances_at_once_answer_503() {
    let srv = one_module(
        "bad",
        &format!(
            r#"source: Wasm({}), sandbox: (time: "1s", instances: 1)"#,
            wasm("misbehave")
        ),
        "/bad",
    )
    .await;
    let looping = srv.url("/bad?do=loop");
    let busy = tokio::spawn(async move { client::get(&looping).await.status });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = client::get(&srv.url("/bad")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(busy.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(client::get(&srv.url("/bad")).await.status, StatusCode::OK);
}

/// `troupe -t` on a config whose module `w` is the file `component`.
fn check(component: &std::path::Path) -> (Option<i32>, String) {
    let cfg = component.with_extension("ron");
    std::fs::write(
        &cfg,
        config(
            &format!(
                r#"(name: "w", source: Wasm({:?}))"#,
                component.display().to_string()
            ),
            r#"(path: "/w", handler: Module("w"))"#,
        ),
    )
    .unwrap();
    daemon::check(&cfg)
}

#[test]
fn bad_components_are_refused_at_dash_t_and_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let (code, err) = check(&garbage);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("garbage.ron:4:"), "{err}");
    assert!(err.contains("module `w`"), "{err}");

    let foreign = dir.path().join("foreign.wat");
    std::fs::write(
        &foreign,
        r#"(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))"#,
    )
    .unwrap();
    let (code, err) = check(&foreign);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("acme:db/query@1.0.0"), "{err}");

    // Start-up refuses the same config, with the same message.
    let out = Command::new(bin())
        .arg("-c")
        .arg(foreign.with_extension("ron"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("acme:db/query@1.0.0"), "{err}");
}

#[test]
fn components_built_against_an_older_host_api_still_link() {
    // troupe:host/api 0.1.1 added `query-param`; a component importing
    // 0.1.0 links against it (semver-compatible). 0.2.0 made `kv-set`
    // return a result: a component of either track links, with the
    // `kv-set` of its own version (0.2.2, which added `pass` and
    // `set-upstream`, 0.2.3, which added the WebSocket interfaces, and
    // 0.2.4, which added `set-rate-key`, too); one importing 0.3.0 does not. These
    // import it and export nothing, so the only complaint left for those
    // that link is that they are no wasi:http handler.
    let old = r#"(export "kv-set" (func (param "key" string) (param "value" (list u8))))"#;
    let new = r#"(export "kv-set" (func (param "key" string) (param "value" (list u8)) (result (result (error string)))))"#;
    let dir = tempfile::tempdir().unwrap();
    for (version, kv_set, links) in [
        ("0.1.0", old, true),
        ("0.1.1", old, true),
        ("0.2.0", new, true),
        ("0.2.0", old, false),
        ("0.2.1", new, true),
        ("0.2.2", new, true),
        ("0.2.3", new, true),
        ("0.2.4", new, true),
        ("0.3.0", new, false),
    ] {
        let wat = dir.path().join(format!(
            "v{}_{}.wat",
            version.replace('.', "_"),
            kv_set.len()
        ));
        std::fs::write(
            &wat,
            format!(
                r#"(component (import "troupe:host/api@{version}" (instance (export "kv-delete" (func (param "key" string))) {kv_set})))"#
            ),
        )
        .unwrap();
        let (code, err) = check(&wat);
        assert_eq!(code, Some(1), "{err}");
        assert_eq!(
            err.contains("no exported instance named `wasi:http/incoming-handler"),
            links,
            "{version}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_api_is_shared_between_wasm_and_lua() {
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "hello_wasm", source: Wasm({})), (name: "kv", source: Lua({}))"#,
            wasm("hello"),
            lua("testing/misbehave.lua")
        ),
        r#"(path: "/hello/wasm", handler: Module("hello_wasm")),
           (path: "/kv", handler: Module("kv"))"#,
    ))
    .await;
    ready(&srv, "hello_wasm").await;
    ready(&srv, "kv").await;
    // WebAssembly writes, Lua reads.
    assert_eq!(
        client::get(&srv.url("/hello/wasm?name=Dee")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client::get(&srv.url("/kv?key=hello_wasm.last_name"))
            .await
            .text(),
        "Dee"
    );
    // Lua writes, WebAssembly reads.
    client::get(&srv.url("/kv?key=hello_wasm.last_name&set=FromLua")).await;
    let resp = client::get(&srv.url("/hello/wasm?name=Eve")).await;
    assert_eq!(
        resp.text(),
        "Hello from WebAssembly, Eve! (previous: FromLua)\n"
    );
    assert_eq!(
        srv.running().services().counter("hello_wasm", "greetings"),
        2
    );
}

#[test]
fn compiled_components_are_cached_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cfg = dir.path().join("c.ron");
    std::fs::write(
        &cfg,
        config(
            &format!(r#"(name: "w", source: Wasm({}))"#, wasm("hello")),
            r#"(path: "/w", handler: Module("w"))"#,
        ),
    )
    .unwrap();
    let run = || {
        let out = std::process::Command::new(crate::support::daemon::bin())
            .args(["-t", "-c"])
            .arg(&cfg)
            .env("TROUPE_CACHE_DIR", &cache)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let artifacts: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let first = artifacts[0].metadata().unwrap().modified().unwrap();
    // A second check loads the artifact instead of compiling again.
    run();
    let again: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].metadata().unwrap().modified().unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_reach_only_the_allowed_hosts() {
    // Two real upstreams; the module may reach only the first.
    let allowed = TestServer::start(&config("", "")).await;
    let other = TestServer::start(&config("", "")).await;
    let srv = one_module(
        "fetch",
        &format!(
            r#"source: Wasm({}), sandbox: (allow_hosts: ["{}"])"#,
            wasm("fetch"),
            allowed.addr
        ),
        "/fetch",
    )
    .await;

    let resp = client::get(&srv.url(&format!("/fetch?host={}&path=/hello", allowed.addr))).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.text(), "upstream 200: Hello, World!\n");

    // HttpRequestDenied is case 15 of wasi:http's error-code.
    let resp = client::get(&srv.url(&format!("/fetch?host={}&path=/hello", other.addr))).await;
    assert_eq!(resp.status, StatusCode::BAD_GATEWAY);
    assert_eq!(resp.text(), "refused: error code 15\n");

    // The same host on another port is another host.
    let host = allowed.addr.ip();
    let resp = client::get(&srv.url(&format!("/fetch?host={host}&path=/hello"))).await;
    assert_eq!(resp.text(), "refused: error code 15\n");

    // With no list, nothing goes out.
    let closed = one_module(
        "fetch",
        &format!(r#"source: Wasm({})"#, wasm("fetch")),
        "/fetch",
    )
    .await;
    let resp = client::get(&closed.url(&format!("/fetch?host={}&path=/hello", allowed.addr))).await;
    assert_eq!(resp.text(), "refused: error code 15\n");
}

#[test]
fn a_bad_allow_hosts_entry_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("egress.ron");
    let write = |module: &str| {
        std::fs::write(
            &cfg,
            config(module, r#"(path: "/w", handler: Module("w"))"#),
        )
        .unwrap()
    };
    write(&format!(
        r#"(name: "w", source: Wasm({}),
            sandbox: (allow_hosts: ["example.com", "user@example.com"]))"#,
        wasm("fetch")
    ));
    let (code, err) = daemon::check(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("egress.ron:5:"), "{err}");
    assert!(
        err.contains("`user@example.com` in `sandbox.allow_hosts`"),
        "{err}"
    );

    write(&format!(
        r#"(name: "w", source: Lua({}), sandbox: (allow_hosts: ["example.com"]))"#,
        lua("examples/hello.lua")
    ));
    let (code, err) = daemon::check(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("only WebAssembly modules make outbound requests"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_fresh_per_request_unless_reuse_is_asked_and_never_after_a_failure() {
    let served = |srv: &TestServer| {
        let url = srv.url("/m?do=count");
        async move { client::get(&url).await.text() }
    };
    let fresh = one_module(
        "m",
        &format!(r#"source: Wasm({})"#, wasm("misbehave")),
        "/m",
    )
    .await;
    for _ in 0..3 {
        assert_eq!(served(&fresh).await, "served 1\n");
    }

    let reused = one_module(
        "m",
        &format!(
            r#"source: Wasm({}), sandbox: (time: "200ms", requests_per_instance: 3)"#,
            wasm("misbehave")
        ),
        "/m",
    )
    .await;
    // One at a time, so one instance: it serves three, then is replaced.
    for n in ["1", "2", "3", "1", "2"] {
        assert_eq!(served(&reused).await, format!("served {n}\n"));
    }
    // A trap and a time-out each drop the instance they ran in.
    let trap = client::get(&reused.url("/m?do=trap")).await;
    assert_eq!(trap.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(served(&reused).await, "served 1\n");
    let slow = client::get(&reused.url("/m?do=loop")).await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(served(&reused).await, "served 1\n");
    assert_eq!(served(&reused).await, "served 2\n");
}

/// `troupe:host/api` `respond` answers in one call, by the rules of
/// wasi:http's `fields`: what they refuse is a 500 (the component's fault),
/// and the module goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_responses_follow_the_rules_of_wasi_http_fields() {
    let srv = one_module(
        "m",
        &format!(r#"source: Wasm({})"#, wasm("misbehave")),
        "/m",
    )
    .await;
    let ok = client::get(&srv.url("/m?do=respond&status=201&name=x-made-by&value=one-call")).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.header("x-made-by"), Some("one-call"));
    assert_eq!(ok.header("content-length"), Some("3"));
    assert_eq!(ok.text(), "ok\n");
    let sized = client::get(&srv.url("/m?do=respond&name=content-length&value=3")).await;
    assert_eq!(sized.status, StatusCode::OK);
    for refused in [
        "name=connection&value=close",
        "name=transfer-encoding&value=chunked",
        "name=bad%20name",
        "value=bad%0Avalue",
        "name=content-length&value=4",
        "status=42",
        "status=1000",
    ] {
        let reply = client::get(&srv.url(&format!("/m?do=respond&{refused}"))).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{refused}");
    }
    assert_eq!(client::get(&srv.url("/m")).await.text(), "ok\n");
}

/// P8.6: handlers in Python and JavaScript arrive as wasi:http components
/// built by their own toolchains (componentize-py, componentize-js), and
/// run unchanged, each a fresh instance per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_components_serve_unchanged() {
    let (py, js) = tokio::task::spawn_blocking(|| (scripted_wasm("py"), scripted_wasm("js")))
        .await
        .unwrap();
    // Their interpreters need more than the default 16 MiB.
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "py", source: Wasm({py}), sandbox: (memory: 134217728, time: "5s")),
               (name: "js", source: Wasm({js}), sandbox: (memory: 134217728, time: "5s"))"#
        ),
        r#"(path: "/hello/py", handler: Module("py")),
           (path: "/hello/js", handler: Module("js"))"#,
    ))
    .await;
    ready(&srv, "py").await;
    ready(&srv, "js").await;
    for (path, lang) in [("/hello/py", "python"), ("/hello/js", "javascript")] {
        // Twice: the second request gets a fresh instance too.
        for query in ["?n=1", "?n=2"] {
            let resp = client::get(&srv.url(&format!("{path}{query}"))).await;
            assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.text());
            assert_eq!(resp.text(), format!("hello from {lang} at {path}{query}\n"));
            assert_eq!(resp.header("content-type"), Some("text/plain"));
        }
        let post = client::send(
            &client::h1(),
            http::Request::post(srv.url(path))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
                .unwrap(),
        )
        .await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
}
