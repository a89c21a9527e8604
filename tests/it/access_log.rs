//! P6.1: the access log, in nginx `combined` format and as JSON lines.

use std::time::Duration;

use crate::support::{client, eventually, server::TestServer};

fn config(format: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: File("access.log"), format: {format}),
    servers: [(routes: [(path: "/hello", handler: Return(body: "Hello, World!\n"))])],
)"#
    )
}

async fn first_line(srv: &TestServer) -> String {
    let path = srv.dir.path().join("access.log");
    let found = eventually(Duration::from_secs(5), || {
        let path = path.clone();
        async move { std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() >= 2) }
    })
    .await;
    assert!(found, "no access log lines written");
    std::fs::read_to_string(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_lines_have_nginx_fields() {
    let srv = TestServer::start(&config("Combined")).await;
    client::get_with(
        &srv.url("/hello?x=1"),
        &[("referer", "http://ref/"), ("user-agent", "probe/1.0")],
    )
    .await;
    client::get(&srv.url("/missing")).await;
    let text = first_line(&srv).await;
    let lines: Vec<&str> = text.lines().collect();
    // 127.0.0.1 - - [27/Nov/2026:01:02:03 +0000] "GET /hello?x=1 HTTP/1.1" 200 14 "http://ref/" "probe/1.0"
    let l = lines[0];
    assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
    let time = &l[l.find('[').unwrap() + 1..l.find(']').unwrap()];
    assert!(time.ends_with(" +0000") && time.len() == 26, "{time}");
    assert!(
        l.contains("] \"GET /hello?x=1 HTTP/1.1\" 200 14 \"http://ref/\" \"probe/1.0\""),
        "{l}"
    );
    assert!(
        lines[1].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{}",
        lines[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse() {
    let srv = TestServer::start(&config("Json")).await;
    client::get(&srv.url("/hello")).await;
    client::get(&srv.url("/missing")).await;
    let text = first_line(&srv).await;
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["uri"], "/hello");
    assert_eq!(v["body_bytes_sent"], 14);
    assert_eq!(v["remote_addr"], "127.0.0.1");
    let v: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(v["status"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_logged() {
    let trusted =
        config("Combined").replacen("Config(", r#"Config(trusted_proxies: ["127.0.0.1"],"#, 1);
    let srv = TestServer::start(&trusted).await;
    let xff = [("x-forwarded-for", "6.6.6.6, 198.51.100.7")];
    client::get_with(&srv.url("/hello"), &xff).await;
    client::get_with(&srv.url("/missing"), &xff).await;
    let text = first_line(&srv).await;
    // As nginx's realip does: the right-most address the proxy did not
    // add itself, not the one the client wrote first.
    assert!(text.starts_with("198.51.100.7 - - ["), "{text}");
    // Without trust, the peer, whatever it claims.
    let srv = TestServer::start(&config("Combined")).await;
    client::get_with(&srv.url("/hello"), &xff).await;
    client::get_with(&srv.url("/missing"), &xff).await;
    let text = first_line(&srv).await;
    assert!(text.starts_with("127.0.0.1 - - ["), "{text}");
}
