//! Native modules (issue 3): the C and Rust examples, the host API, the
//! middleware and log hooks, failures in and out of process, reloads.
//! Every module here is built from `plugins/` by `plugins/build.sh`.

use std::time::Duration;

use http::StatusCode;

use crate::support::{
    client,
    daemon::Daemon,
    eventually,
    modules::{config, lib, one_module, ready, shipped_config},
    server::TestServer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_greets_with_a_query_param_and_a_header() {
    let srv = one_module(
        "hello_c",
        &format!(r#"source: Native({}), config: "Howdy""#, lib("hello_c")),
        "/hello/c",
    )
    .await;
    let url = srv.url("/hello/c?name=Ann");
    assert!(
        eventually(Duration::from_secs(5), || async {
            client::get(&url).await.status == StatusCode::OK
        })
        .await
    );
    let resp = client::get_with(&url, &[("user-agent", "probe/1.0")]).await;
    assert_eq!(resp.text(), "Howdy, Ann! (via probe/1.0)\n");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.header("server"), Some("troupe"));
    let plain = client::get_with(&srv.url("/hello/c"), &[("user-agent", "x")]).await;
    assert_eq!(plain.text(), "Howdy, world! (via x)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_example_answers_json_with_a_param_the_store_and_a_metric() {
    for isolation in ["InProcess", "Process"] {
        let srv = TestServer::start(&config(
            &format!(
                r#"(name: "hello_rust", source: Native({}), isolation: {isolation},
                    config: {{ "greeting": "Hi" }})"#,
                lib("hello_rust")
            ),
            r#"(path: "/hello/rust/{name}", handler: Module("hello_rust"))"#,
        ))
        .await;
        ready(&srv, "hello_rust").await;
        let first = client::get(&srv.url("/hello/rust/Bob")).await;
        assert_eq!(first.status, StatusCode::OK, "{isolation}");
        assert_eq!(first.header("content-type"), Some("application/json"));
        let json: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(json["greeting"], "Hi, Bob!", "{isolation}");
        assert_eq!(json["previous"], serde_json::Value::Null);
        // The store keeps what the last request set.
        let second = client::get(&srv.url("/hello/rust/Cy")).await;
        let json: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
        assert_eq!(json["previous"], "Bob", "{isolation}");
        // A child's counts reach the family through the metrics actor.
        let counted = eventually(Duration::from_secs(5), || async {
            srv.running().services().counter("hello_rust", "greetings") == 2
        })
        .await;
        assert!(counted, "{isolation}");
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_logger_writes_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.log");
    let ron = format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [(name: "logger", source: Native({}), config: {:?})],
    servers: [(
        loggers: ["logger"],
        routes: [(path: "/hello", handler: Return(body: "Hello, World!\n"))],
    )],
)"#,
        lib("request_logger"),
        log.display().to_string()
    );
    let srv = TestServer::start_in(dir, &ron).await;
    ready(&srv, "logger").await;
    assert_eq!(
        client::get(&srv.url("/hello?x=1")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client::get(&srv.url("/missing")).await.status,
        StatusCode::NOT_FOUND
    );
    let post = client::send(
        &client::h1(),
        http::Request::post(srv.url("/hello"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("127.0.0.1:"), "{text}");
    assert!(lines[0].contains(r#""GET /hello?x=1" 200 14 "#), "{text}");
    assert!(lines[1].contains(r#""GET /missing" 404 "#), "{text}");
    assert!(lines[2].contains(r#""POST /hello" 200 14 "#), "{text}");
    assert!(lines.iter().all(|l| l.ends_with("us")), "{text}");
}

#[test]
fn every_example_serves_through_the_real_binary_on_the_shipped_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&shipped_config(dir.path()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = format!("http://{}", d.addr);
        let rust = format!("{base}/hello/rust/Zoe");
        assert!(
            eventually(Duration::from_secs(10), || async {
                client::get(&rust).await.status == StatusCode::OK
            })
            .await,
            "{}",
            d.logs()
        );
        let c = client::get_with(&format!("{base}/hello/c?name=Ann"), &[("user-agent", "t")]).await;
        assert_eq!(c.status, StatusCode::OK);
        assert_eq!(c.text(), "Hello from C, Ann! (via t)\n");
        let r = client::get(&rust).await;
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(json["greeting"], "Hello from Rust, Zoe!");
        assert_eq!(json["previous"], "Zoe");
        assert_eq!(
            client::get(&format!("{base}/hello")).await.status,
            StatusCode::OK
        );
    });
    let log = std::fs::read_to_string(dir.path().join("requests.log")).unwrap();
    assert!(log.contains(r#""GET /hello/c?name=Ann" 200"#), "{log}");
    assert!(log.contains(r#""GET /hello/rust/Zoe" 200"#), "{log}");
    assert!(
        log.lines()
            .last()
            .unwrap()
            .contains(r#""GET /hello" 200 14 "#),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_middleware_can_refuse_a_request_and_tag_a_response() {
    for isolation in ["InProcess", "Process"] {
        let srv = TestServer::start(&config(
            &format!(
                r#"(name: "gate", source: Native({}), isolation: {isolation})"#,
                lib("panicky")
            ),
            r#"(path: "/guarded", handler: Return(body: "inside\n"),
                middleware: [Module("gate")])"#,
        ))
        .await;
        ready(&srv, "gate").await;
        let refused = client::get(&srv.url("/guarded")).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{isolation}");
        assert_eq!(refused.text(), "token required\n");
        let allowed = client::get_with(&srv.url("/guarded"), &[("x-token", "t")]).await;
        assert_eq!(allowed.status, StatusCode::OK, "{isolation}");
        assert_eq!(allowed.text(), "inside\n");
        assert_eq!(
            allowed.header("x-filtered-by"),
            Some("panicky"),
            "{isolation}"
        );
        // A panic inside the filter fails only that request.
        let panicked = client::get(&srv.url("/guarded?panic=filter")).await;
        assert_eq!(
            panicked.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{isolation}"
        );
        assert_eq!(client::get(&srv.url("/hello")).await.status, StatusCode::OK);
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_modules_and_missing_libraries_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ron");
    let text = config("", r#"(path: "/x", handler: Module("nope"))"#);
    let err = troupe::config::load_str(&text, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.ron:7:"), "{err}");
    assert!(err.contains("no module named `nope`"), "{err}");
    let text = config(
        r#"(name: "m", source: Native("no/such/libm.so"))"#,
        r#"(path: "/x", handler: Module("m"))"#,
    );
    let err = troupe::config::load_str(&text, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.ron:4:"), "{err}");
    assert!(
        err.contains("module library `no/such/libm.so` does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_runs_each_modules_shutdown_hook() {
    for isolation in ["InProcess", "Process"] {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("shutdown.txt");
        let ron = config(
            &format!(
                r#"(name: "crashy", source: Native({}), isolation: {isolation}, config: {:?})"#,
                lib("crashy"),
                marker.display().to_string()
            ),
            r#"(path: "/crash", handler: Module("crashy"))"#,
        );
        let srv = TestServer::start(&ron).await;
        ready(&srv, "crashy").await;
        assert_eq!(client::get(&srv.url("/crash")).await.status, StatusCode::OK);
        assert!(!marker.exists());
        srv.stop().await;
        // Under `Process` isolation the spare child ran `init` too, so it
        // runs `shutdown` too: once per child.
        let expected = match isolation {
            "Process" => "shutdown\nshutdown\n",
            _ => "shutdown\n",
        };
        assert!(
            eventually(Duration::from_secs(5), || async {
                std::fs::read_to_string(&marker).unwrap_or_default() == expected
            })
            .await,
            "{isolation}: shutdown did not run once per instance: {:?}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
    }
}
