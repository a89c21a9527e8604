//! Lua modules (issue 4, P2.6): the examples, the sandbox's limits under
//! load, syntax errors at `troupe -t`, and the host API shared across kinds.

use std::time::Duration;

use http::StatusCode;

use crate::support::{
    client,
    daemon::{self, Daemon},
    load::misbehaves_alone,
    modules::{config, one_module, ready},
    modules::{lib, lua, shipped_config},
    server::TestServer,
};

#[test]
fn the_lua_examples_serve_through_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&shipped_config(dir.path()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = format!("http://{}", d.addr);
        let hello = format!("{base}/hello/lua?name=Ann");
        assert!(
            crate::support::eventually(Duration::from_secs(10), || async {
                client::get(&hello).await.status == StatusCode::OK
            })
            .await,
            "{}",
            d.logs()
        );
        let again = client::get(&hello).await;
        assert_eq!(again.text(), "Hello, Ann, from Lua! (visit 2)\n");
        assert_eq!(
            again.header("content-type"),
            Some("text/plain; charset=utf-8")
        );

        let private = format!("{base}/private");
        let refused = client::get(&private).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refused.text(), "missing or wrong API key\n");
        assert!(refused.header("www-authenticate").is_some());
        let wrong = client::get_with(&private, &[("x-api-key", "guess")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let allowed = client::get_with(&private, &[("x-api-key", "let-me-in")]).await;
        assert_eq!(allowed.status, StatusCode::OK);
        assert_eq!(allowed.text(), "the secret is 42\n");
        assert_eq!(allowed.header("x-checked-by"), Some("api_key.lua"));
    });
}

/// One server with the misbehaving script, plus `/hello`.
async fn misbehave(sandbox: &str) -> TestServer {
    one_module(
        "bad",
        &format!(
            // Under load a long call waits on the module pool; `timeout`
            // bounds that wait (504).
            r#"source: Lua({}), timeout: "1s", sandbox: {sandbox}"#,
            lua("testing/misbehave.lua")
        ),
        "/bad",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_loops_and_memory_bombs_fail_only_their_request() {
    let srv = misbehave(r#"(memory: 4194304, instructions: 2000000)"#).await;
    let cases = [
        ("error", StatusCode::INTERNAL_SERVER_ERROR),
        ("loop", StatusCode::GATEWAY_TIMEOUT),
        ("memory", StatusCode::INTERNAL_SERVER_ERROR),
        ("os", StatusCode::INTERNAL_SERVER_ERROR),
    ];
    // A budget of 2 M instructions is milliseconds, not seconds; under
    // load, the module's timeout (1 s) bounds the wait.
    misbehaves_alone(&srv, &cases, 3, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_libraries_are_available() {
    let srv = misbehave(r#"(grant: ["os"])"#).await;
    let resp = client::get(&srv.url("/bad?do=os")).await;
    assert_eq!(resp.status, StatusCode::OK);
}

#[test]
fn a_lua_syntax_error_names_the_script_and_line_at_dash_t() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.lua");
    std::fs::write(
        &script,
        "function handle(req)\n  return {status = 200\nend\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.ron");
    std::fs::write(
        &cfg,
        config(
            &format!(
                r#"(name: "broken", source: Lua({:?}))"#,
                script.display().to_string()
            ),
            r#"(path: "/b", handler: Module("broken"))"#,
        ),
    )
    .unwrap();
    let (code, err) = daemon::check(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("c.ron:4:"), "{err}");
    assert!(err.contains("broken.lua:3:"), "{err}");
    assert!(err.contains("'}' expected"), "{err}");

    std::fs::write(
        &cfg,
        config(
            &format!(
                r#"(name: "broken", source: Lua({}), sandbox: (grant: ["net"]))"#,
                lua("testing/misbehave.lua")
            ),
            r#"(path: "/b", handler: Module("broken"))"#,
        ),
    )
    .unwrap();
    let (code, err) = daemon::check(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown grant `net`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_api_is_shared_between_rust_in_a_child_process_and_lua() {
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "kv", source: Lua({})),
               (name: "hello_rust", source: Native({}), isolation: Process)"#,
            lua("testing/misbehave.lua"),
            lib("hello_rust")
        ),
        r#"(path: "/kv", handler: Module("kv")),
           (path: "/hello/rust/{name}", handler: Module("hello_rust"))"#,
    ))
    .await;
    ready(&srv, "kv").await;
    ready(&srv, "hello_rust").await;
    // Rust (in its own process) writes; Lua reads.
    assert_eq!(
        client::get(&srv.url("/hello/rust/Bea")).await.status,
        StatusCode::OK
    );
    let read = client::get(&srv.url("/kv?key=hello_rust.last_name")).await;
    assert_eq!(read.text(), "Bea");
    // Lua writes; Rust reads it as the previous name.
    let set = client::get(&srv.url("/kv?key=hello_rust.last_name&set=FromLua")).await;
    assert_eq!(set.text(), "FromLua");
    let rust = client::get(&srv.url("/hello/rust/Cy")).await;
    let json: serde_json::Value = serde_json::from_slice(&rust.body).unwrap();
    assert_eq!(json["previous"], "FromLua");
    // Both count into the same metric family (the child's counts through
    // the metrics actor).
    let counted = crate::support::eventually(Duration::from_secs(5), || async {
        srv.running().services().counter("hello_rust", "greetings") == 2
    })
    .await;
    assert!(counted);
}

/// Answers of every shape a handler may return. The common one (an
/// integer status, string headers, a string body) is read straight off the
/// Lua stack; the others go through mlua's conversions: both must answer
/// as `plugins/README.md` says, and a refused answer must not break the VM.
const SHAPES_LUA: &str = r#"
local shapes = {
  plain = function() return { status = 201, headers = { ["x-a"] = "1" }, body = "plain" } end,
  bare = function() return { body = "bare" } end,
  text = function() return "just text" end,
  float = function() return { status = 202.0, body = "float" } end,
  numbers = function() return { headers = { ["x-n"] = 5 }, body = 42 } end,
  list = function() return { headers = { ["set-cookie"] = { "a=1", "b=2" } }, body = "list" } end,
  range = function() return { status = 1000 } end,
  badname = function() return { headers = { ["bad name"] = "x" } } end,
  none = function() return nil end,
  thrown = function() error({ code = 7 }) end,
}

function handle(req)
  return shapes[req:arg("s")]()
end
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_of_answer_reads_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shapes.lua");
    std::fs::write(&script, SHAPES_LUA).unwrap();
    let srv = one_module(
        "shapes",
        &format!(r#"source: Lua({:?})"#, script.display().to_string()),
        "/shapes",
    )
    .await;
    let get = |s: &str| {
        let url = srv.url(&format!("/shapes?s={s}"));
        async move { client::get(&url).await }
    };

    let plain = get("plain").await;
    assert_eq!(plain.status, StatusCode::CREATED);
    assert_eq!(plain.header("x-a"), Some("1"));
    assert_eq!(plain.text(), "plain");
    let bare = get("bare").await;
    assert_eq!((bare.status, bare.text()), (StatusCode::OK, "bare".into()));
    let text = get("text").await;
    assert_eq!(
        (text.status, text.text()),
        (StatusCode::OK, "just text".into())
    );
    let float = get("float").await;
    assert_eq!(
        (float.status, float.text()),
        (StatusCode::ACCEPTED, "float".into())
    );
    let numbers = get("numbers").await;
    assert_eq!(numbers.header("x-n"), Some("5"));
    assert_eq!(numbers.text(), "42");
    let list = get("list").await;
    let cookies: Vec<_> = list.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    for refused in ["range", "badname", "none", "thrown"] {
        let resp = get(refused).await;
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR, "{refused}");
        // The VM that refused it still answers.
        assert_eq!(get("plain").await.text(), "plain", "after {refused}");
    }
}
