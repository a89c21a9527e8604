//! The admin API (issue 5, P7.5): its own listener, bearer token, JSON,
//! Prometheus metrics and the live supervision tree; bad input gets a
//! clear 4xx; bad admin config is refused with its position.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::support::{
    client, daemon,
    modules::config,
    modules::{lua, shipped_config},
    server::TestServer,
};

const TOKEN: &str = "s3cret-admin-token";

/// A config serving the Lua hello example on /hello/lua, with `admin`.
fn hello_lua_with_admin(admin: &str) -> String {
    config(
        &format!(
            r#"(name: "hello_lua", source: Lua({}))"#,
            lua("examples/hello.lua")
        ),
        r#"(path: "/hello/lua", handler: Module("hello_lua"))"#,
    )
    .replacen("Config(", &format!("Config(admin: {admin},"), 1)
}

/// A server with the Lua hello example and an admin API whose token is in
/// a file; returns it and the admin base URL.
async fn server() -> (TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let ron = hello_lua_with_admin(r#"(listen: "127.0.0.1:0", token_file: "admin.token")"#);
    let srv = TestServer::start_in(dir, &ron).await;
    let admin = srv.running().admin_addr().expect("admin listener");
    (srv, format!("http://{admin}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_the_token() {
    let (_srv, admin) = server().await;
    let none = client::get(&format!("{admin}/health")).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = client::get_with(
        &format!("{admin}/health"),
        &[("authorization", &bearer("guess"))],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = client::get_with(
        &format!("{admin}/health"),
        &[("authorization", &bearer(TOKEN))],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_tree_reflect_the_running_server() {
    let (srv, admin) = server().await;
    let auth = [("authorization", bearer(TOKEN))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::support::modules::ready(&srv, "hello_lua").await;
    // The Lua example counts its greetings through the host API.
    for _ in 0..3 {
        let resp = client::get(&srv.url("/hello/lua?name=Ann")).await;
        assert_eq!(resp.status, StatusCode::OK);
    }
    let metrics = client::get_with(&format!("{admin}/metrics"), &auth).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        metrics.header("content-type")
    );
    let text = metrics.text();
    assert!(
        text.contains(r#"troupe_module_counter_total{module="hello_lua",name="greetings"} 3"#),
        "{text}"
    );
    // The request series, by server, route and status class.
    assert!(
        text.contains(
            r#"troupe_http_requests_total{route="/hello/lua",server="_",status="2xx"} 3"#
        ),
        "{text}"
    );
    assert_eq!(
        client::get(&srv.url("/no/such/page")).await.status,
        StatusCode::NOT_FOUND
    );
    let text = client::get_with(&format!("{admin}/metrics"), &auth)
        .await
        .text();
    assert!(
        text.contains(r#"troupe_http_requests_total{route="",server="",status="4xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"troupe_http_request_duration_seconds_count{route="/hello/lua",server="_"} 3"#
        ),
        "{text}"
    );
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    // Each request above came on a connection of its own; bytes are added
    // when a connection closes, which the server sees a moment later.
    let url = format!("{admin}/metrics");
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            let (url, auth) = (url.clone(), auth.clone());
            async move {
                let text = client::get_with(&url, &auth).await.text();
                value(&text, "troupe_http_connections_total ") >= 4.0
                    && value(&text, "troupe_http_received_bytes_total ") > 0.0
                    && value(&text, "troupe_http_sent_bytes_total ") > 0.0
            }
        })
        .await,
        "{}",
        client::get_with(&url, &auth).await.text()
    );

    let tree = client::get_with(&format!("{admin}/tree"), &auth).await;
    assert_eq!(tree.status, StatusCode::OK);
    let tree: Value = serde_json::from_slice(&tree.body).unwrap();
    assert!(
        tree["name"].as_str().unwrap().starts_with("troupe"),
        "{tree}"
    );
    assert_eq!(tree["status"], "Running");
    let names = |node: &Value| -> Vec<String> {
        node["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let top = names(&tree);
    assert_eq!(
        top,
        [
            "acme",
            "cache",
            "certs",
            "config",
            "limits",
            "listeners",
            "metrics",
            "modules",
            "router",
            "upstreams"
        ],
        "{tree}"
    );
    let child = |node: &Value, name: &str| -> Value {
        node["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let listeners = child(&tree, "listeners");
    assert_eq!(listeners["kind"], "supervisor");
    for base in ["listener.", "admin."] {
        assert!(
            names(&listeners).iter().any(|n| n.starts_with(base)),
            "{base} missing: {listeners}"
        );
    }
    let modules = child(&tree, "modules");
    assert!(
        names(&modules)
            .iter()
            .any(|n| n.starts_with("plugin.hello_lua")),
        "{modules}"
    );
    assert_eq!(modules["kind"], "supervisor");
    let host = &modules["children"][0];
    assert_eq!(host["kind"], "plugin-host");
    assert_eq!(host["module"]["generation"], 1);
    assert_eq!(host["module"]["restarts"], 0);
    assert_eq!(host["module"]["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_4xx() {
    let (_srv, admin) = server().await;
    let auth = bearer(TOKEN);
    let missing = client::get_with(&format!("{admin}/nope"), &[("authorization", &auth)]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&missing.body).unwrap();
    assert!(body["error"].as_str().unwrap().contains("/nope"), "{body}");

    let post = client::send(
        &client::h1(),
        http::Request::post(format!("{admin}/health"))
            .header("authorization", &auth)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{")))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn bad_admin_config_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("admin.ron");
    let check = |admin: &str| {
        std::fs::write(
            &cfg,
            config("", "").replacen("Config(", &format!("Config(\n    admin: {admin},\n"), 1),
        )
        .unwrap();
        daemon::check(&cfg)
    };
    let (code, err) = check(r#"(listen: "0.0.0.0:9901")"#);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("admin.ron:2:"), "{err}");
    assert!(err.contains("needs a token"), "{err}");

    let (code, err) = check(r#"(token_file: "missing.token")"#);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("missing.token"), "{err}");

    let (code, err) = check(r#"(token_file: "a", token_env: "B")"#);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not both"), "{err}");

    let (code, err) = check(r#"(listen: "127.0.0.1:9901", tokn: "x")"#);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("tokn"), "{err}");
}

#[test]
fn the_shipped_config_serves_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(&shipped_config(dir.path()));
    let addr = d.admin_addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(client::get(&format!("http://{addr}/health")));
    assert_eq!(health.status, StatusCode::OK, "{}", d.logs());
}

fn post(url: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post(url)
        .header("authorization", bearer(TOKEN))
        .header("content-type", "application/json")
        .body(http_body_util::Full::default())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_are_listed_reloaded_disabled_and_enabled() {
    let (srv, admin) = server().await;
    crate::support::modules::ready(&srv, "hello_lua").await;
    let auth = bearer(TOKEN);
    let auth = [("authorization", auth.as_str())];
    let list = client::get_with(&format!("{admin}/modules"), &auth).await;
    assert_eq!(list.status, StatusCode::OK);
    let list: Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(list[0]["name"], "hello_lua");
    assert_eq!(list[0]["kind"], "lua");
    assert_eq!(list[0]["status"], "ready");
    assert_eq!(list[0]["loads"], 1);

    let h1 = client::h1();
    let reloaded = client::send(&h1, post(&format!("{admin}/modules/hello_lua/reload"))).await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    let body: Value = serde_json::from_slice(&reloaded.body).unwrap();
    assert_eq!(body["loads"], 2);
    assert_eq!(
        client::get(&srv.url("/hello/lua")).await.status,
        StatusCode::OK
    );

    let off = client::send(&h1, post(&format!("{admin}/modules/hello_lua/disable"))).await;
    assert_eq!(off.status, StatusCode::OK);
    let refused = client::get(&srv.url("/hello/lua")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let list: Value = serde_json::from_slice(
        &client::get_with(&format!("{admin}/modules"), &auth)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(list[0]["status"], "disabled");
    // A reload while disabled keeps it disabled.
    let reloaded = client::send(&h1, post(&format!("{admin}/modules/hello_lua/reload"))).await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    assert_eq!(
        client::get(&srv.url("/hello/lua")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let on = client::send(&h1, post(&format!("{admin}/modules/hello_lua/enable"))).await;
    assert_eq!(on.status, StatusCode::OK);
    assert_eq!(
        client::get(&srv.url("/hello/lua")).await.status,
        StatusCode::OK
    );

    for (path, status) in [
        ("/modules/nope/reload", StatusCode::NOT_FOUND),
        ("/modules/hello_lua/explode", StatusCode::NOT_FOUND),
    ] {
        let resp = client::send(&h1, post(&format!("{admin}{path}"))).await;
        assert_eq!(resp.status, status, "{path}");
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    // A body, if any, must be a JSON object; {} is fine.
    for (body, status) in [
        (&b"{\"unclosed"[..], StatusCode::BAD_REQUEST),
        (b"[1, 2]", StatusCode::BAD_REQUEST),
        (b"{}", StatusCode::OK),
    ] {
        let req = http::Request::post(format!("{admin}/modules/hello_lua/reload"))
            .header("authorization", bearer(TOKEN))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
                body,
            )))
            .unwrap();
        let resp = client::send(&h1, req).await;
        assert_eq!(resp.status, status, "{}", String::from_utf8_lossy(body));
        let answer: Value = serde_json::from_slice(&resp.body).unwrap();
        if status == StatusCode::BAD_REQUEST {
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("the body must be empty or a JSON object"),
                "{answer}"
            );
        }
    }
    let huge = http::Request::post(format!("{admin}/config/reload"))
        .header("authorization", bearer(TOKEN))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b' ';
            100_000
        ])))
        .unwrap();
    assert_eq!(
        client::send(&h1, huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let get = client::get_with(&format!("{admin}/modules/hello_lua/reload"), &auth).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_keeps_the_old_instance_serving() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("greet.lua");
    std::fs::write(&script, "function handle(req) return 'v1' end\n").unwrap();
    let ron = config(
        &format!(
            r#"(name: "greet", source: Lua({:?}))"#,
            script.display().to_string()
        ),
        r#"(path: "/greet", handler: Module("greet"))"#,
    )
    .replacen("Config(", r#"Config(admin: (listen: "127.0.0.1:0"),"#, 1);
    let srv = TestServer::start_in(dir, &ron).await;
    crate::support::modules::ready(&srv, "greet").await;
    let admin = format!("http://{}", srv.running().admin_addr().unwrap());
    // No token configured on loopback: none needed.
    std::fs::write(&script, "function handle(req) return 'v2' end\n").unwrap();
    let h1 = client::h1();
    let ok = client::send(&h1, post(&format!("{admin}/modules/greet/reload"))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(client::get(&srv.url("/greet")).await.text(), "v2");

    std::fs::write(&script, "function handle(req) return 'v3' \n").unwrap();
    let refused = client::send(&h1, post(&format!("{admin}/modules/greet/reload"))).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(body["error"].as_str().unwrap().contains("greet"), "{body}");
    assert_eq!(client::get(&srv.url("/greet")).await.text(), "v2");
}

/// `troupe module reload|enable|disable NAME` against the real binary.
#[test]
fn the_module_command_talks_to_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    // The command reads the port from the config, so it must be fixed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        hello_lua_with_admin(&format!(
            r#"(listen: "127.0.0.1:{port}", token_file: "admin.token")"#
        )),
    )
    .unwrap();
    let d = daemon::Daemon::start(&cfg);
    assert!(
        d.wait_for_log("admin API started", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    let module = |action: &str, name: &str| {
        std::process::Command::new(daemon::bin())
            .arg("-c")
            .arg(&cfg)
            .args(["module", action, name])
            .output()
            .unwrap()
    };
    let status = |path: &str| {
        let url = format!("http://{}{path}", d.addr);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client::get(&url))
            .status
    };

    let out = module("reload", "hello_lua");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["reloaded"], true);
    assert!(d.wait_for_log("admin API: module reloaded", Duration::from_secs(5)));

    assert!(module("disable", "hello_lua").status.success());
    assert_eq!(status("/hello/lua"), StatusCode::SERVICE_UNAVAILABLE);
    assert!(module("enable", "hello_lua").status.success());
    assert_eq!(status("/hello/lua"), StatusCode::OK);

    let out = module("reload", "nope");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("404") && err.contains("no module named `nope`"),
        "{err}"
    );

    // A config without an admin API says so.
    let bare = dir.path().join("bare.ron");
    std::fs::write(&bare, config("", "")).unwrap();
    let out = std::process::Command::new(daemon::bin())
        .arg("-c")
        .arg(&bare)
        .args(["module", "reload", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `admin` section"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_the_config_are_shown_with_secrets_redacted() {
    let ron = config(
        &format!(
            r#"(name: "hello_lua", source: Lua({}), config: "module-secret")"#,
            lua("examples/hello.lua")
        ),
        r#"(path: "/hello/lua", handler: Module("hello_lua"),
            middleware: [RequireHeader(header: "x-key", value: "header-secret")])"#,
    )
    .replacen("Config(", r#"Config(admin: (listen: "127.0.0.1:0"),"#, 1);
    let srv = TestServer::start(&ron).await;
    let admin = format!("http://{}", srv.running().admin_addr().unwrap());

    let routes = client::get(&format!("{admin}/routes")).await;
    assert_eq!(routes.status, StatusCode::OK);
    let routes: Value = serde_json::from_slice(&routes.body).unwrap();
    assert_eq!(routes[0]["default"], true);
    let list = routes[0]["routes"].as_array().unwrap();
    let lua_route = list.iter().find(|r| r["pattern"] == "/hello/lua").unwrap();
    assert_eq!(lua_route["handler"], "Module(hello_lua)");
    assert_eq!(lua_route["middleware"], 1);
    let hello = list.iter().find(|r| r["pattern"] == "/hello").unwrap();
    assert_eq!(hello["handler"], "Return");

    let cfg = client::get(&format!("{admin}/config")).await;
    assert_eq!(cfg.status, StatusCode::OK);
    let text = cfg.text();
    assert!(!text.contains("module-secret"), "{text}");
    assert!(!text.contains("header-secret"), "{text}");
    let cfg: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cfg["modules"][0]["name"], "hello_lua");
    assert_eq!(cfg["modules"][0]["config"], "<redacted>");
    assert!(text.contains("x-key"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_series_count_calls_errors_restarts_and_generations() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.log");
    let ron = config(
        &format!(
            r#"(name: "hello_lua", source: Lua({})),
               (name: "crashy", source: Native({})),
               (name: "gate", source: Lua({}), config: "k"),
               (name: "rl", source: Native({}), config: {:?})"#,
            lua("examples/hello.lua"),
            crate::support::modules::lib("crashy"),
            lua("examples/api_key.lua"),
            crate::support::modules::lib("request_logger"),
            log.display().to_string(),
        ),
        r#"(path: "/hello/lua", handler: Module("hello_lua")),
           (path: "/crashy", handler: Module("crashy")),
           (path: "/private", handler: Return(body: "in"), middleware: [Module("gate")])"#,
    )
    .replacen("Config(", r#"Config(admin: (listen: "127.0.0.1:0"),"#, 1)
    .replacen(
        "servers: [( routes:",
        r#"servers: [( loggers: ["rl"], routes:"#,
        1,
    );
    let srv = TestServer::start_in(dir, &ron).await;
    for m in ["hello_lua", "crashy", "gate", "rl"] {
        crate::support::modules::ready(&srv, m).await;
    }
    // As middleware: two requests filtered, one refused (a 401 is the
    // module's answer, not its error).
    let refused = client::get(&srv.url("/private")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let allowed = client::get_with(&srv.url("/private"), &[("x-api-key", "k")]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let admin = format!("http://{}", srv.running().admin_addr().unwrap());
    for _ in 0..3 {
        assert_eq!(
            client::get(&srv.url("/hello/lua")).await.status,
            StatusCode::OK
        );
    }
    let failed = client::get(&srv.url("/crashy?crash=error")).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let h1 = client::h1();
    let reloaded = client::send(&h1, post(&format!("{admin}/modules/hello_lua/reload"))).await;
    assert_eq!(reloaded.status, StatusCode::OK);

    let url = format!("{admin}/metrics");
    let want = [
        r#"troupe_module_calls_total{module="hello_lua"} 3"#,
        r#"troupe_module_errors_total{module="hello_lua"} 0"#,
        r#"troupe_module_generation{module="hello_lua"} 2"#,
        r#"troupe_module_restarts_total{module="hello_lua"} 0"#,
        r#"troupe_module_calls_total{module="crashy"} 1"#,
        r#"troupe_module_errors_total{module="crashy"} 1"#,
        // The failure restarts it (with backoff): a second instance.
        r#"troupe_module_restarts_total{module="crashy"} 1"#,
        r#"troupe_module_generation{module="crashy"} 2"#,
        r#"troupe_module_calls_total{module="gate"} 2"#,
        r#"troupe_module_errors_total{module="gate"} 0"#,
        // The log hook saw every request of the server: 2 + 3 + 1.
        r#"troupe_module_calls_total{module="rl"} 6"#,
    ];
    let ok = crate::support::eventually(Duration::from_secs(5), || {
        let url = url.clone();
        async move {
            let text = client::get(&url).await.text();
            want.iter().all(|w| text.contains(w))
        }
    })
    .await;
    let text = client::get(&url).await.text();
    assert!(ok, "missing one of {want:?} in:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_head_is_dropped() {
    let (_srv, admin) = server().await;
    let addr: std::net::SocketAddr = admin.trim_start_matches("http://").parse().unwrap();
    let start = std::time::Instant::now();
    // Half a request head, then silence.
    let got = client::raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(20),
    )
    .await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "closed after {waited:?}: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_body_never_arrives_gets_408_and_is_closed() {
    let (_srv, admin) = server().await;
    let addr: std::net::SocketAddr = admin.trim_start_matches("http://").parse().unwrap();
    let start = std::time::Instant::now();
    // A whole head announcing 100 bytes, then 2 of them and silence.
    let head = format!(
        "POST /config/reload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{}}",
        bearer(TOKEN)
    );
    let got = client::raw(addr, head.as_bytes(), Duration::from_secs(30)).await;
    let waited = start.elapsed();
    assert_eq!(client::status_of(&got), Some(408), "{got}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "answered after {waited:?}: {got:?}"
    );
}
