//! The actor tree around a real server: a child that dies is restarted with
//! backoff, and traffic never notices.

use std::time::Duration;

use ractor::ActorCell;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    client, eventually,
    server::{TestServer, config_with_routes},
};

/// Every actor of the tree whose name starts with `prefix`.
fn actors(srv: &TestServer, prefix: &str) -> Vec<ActorCell> {
    let tree = srv.running().tree();
    let (mut found, mut todo) = (Vec::new(), vec![tree.root()]);
    while let Some(cell) = todo.pop() {
        if tree.name_of(&cell).is_some_and(|n| n.starts_with(prefix)) {
            found.push(cell.clone());
        }
        todo.extend(cell.get_children());
    }
    found
}

fn child(srv: &TestServer, prefix: &str) -> ActorCell {
    actors(srv, prefix)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no child {prefix}"))
}

async fn restarted(srv: &TestServer, prefix: &str, old: ractor::ActorId) -> bool {
    eventually(Duration::from_secs(5), || async {
        actors(srv, prefix)
            .iter()
            .any(|c| c.get_id() != old && c.get_status() == ractor::ActorStatus::Running)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_router_is_restarted_and_requests_keep_flowing() {
    let srv = TestServer::start(&config_with_routes(
        r#"(path: "/hello", handler: Return(body: "hi"))"#,
    ))
    .await;
    let router = child(&srv, "router");
    let old = router.get_id();
    router.kill();
    assert!(
        restarted(&srv, "router", old).await,
        "router was not restarted"
    );
    assert_eq!(client::get(&srv.url("/hello")).await.text(), "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_comes_back_on_the_same_port_without_dropping_connections() {
    let srv = TestServer::start(&config_with_routes(
        r#"(path: "/hello", handler: Return(body: "hi"))"#,
    ))
    .await;
    // A keep-alive connection opened before the failure.
    let mut kept = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let ask = b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
    kept.write_all(ask).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(kept.read(&mut buf).await.unwrap() > 0);

    let listener = child(&srv, "listener.");
    let old = listener.get_id();
    listener.kill();
    assert!(
        restarted(&srv, "listener.", old).await,
        "listener was not restarted"
    );

    // The old connection still works, and new ones are accepted.
    kept.write_all(ask).await.unwrap();
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hi"));
    for _ in 0..5 {
        assert_eq!(client::get(&srv.url("/hello")).await.text(), "hi");
    }

    // A shutdown still drains the connection accepted before the restart.
    let stopped = tokio::time::timeout(Duration::from_secs(5), srv.stop()).await;
    assert_eq!(stopped.ok(), Some(0), "shutdown did not drain in time");
    let n = tokio::time::timeout(Duration::from_secs(2), kept.read(&mut buf))
        .await
        .expect("the old connection was left open")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_renders_every_actor() {
    let srv = TestServer::start(&config_with_routes(
        r#"(path: "/", handler: Return(body: "x"))"#,
    ))
    .await;
    let text = srv.running().tree().render();
    for name in [
        "acme",
        "cache",
        "certs",
        "config",
        "limits",
        "metrics",
        "router",
        "modules",
        "listeners",
        "│   └── listener.127.0.0.1:",
        "upstreams",
    ] {
        assert!(text.contains(name), "{text}");
    }
    assert_eq!(text.lines().count(), 12, "{text}");
    srv.stop().await;
}
