//! P1: HTTP/1.0, HTTP/1.1 keep-alive and pipelining, h2c on one port, the
//! request API as handlers see it, and the worker count.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{
    client::{self, raw, status_of},
    daemon::Daemon,
    repo_root,
    server::{TestServer, config_with_routes},
};

const HELLO: &str = r#"(path: "/hello", handler: Return(body: "Hello, World!\n"))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_serves_hello_and_index() {
    let srv = TestServer::start_file(&repo_root().join("config.ron")).await;
    let hello = client::get(&srv.url("/hello")).await;
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(hello.text(), "Hello, World!\n");
    assert_eq!(hello.header("content-type"), Some("text/plain"));
    assert_eq!(hello.header("server"), Some("troupe"));
    assert!(hello.header("date").is_some());

    let index = client::get(&srv.url("/")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(index.header("content-type"), Some("text/html"));
    let on_disk = std::fs::read(repo_root().join("www/index.html")).unwrap();
    assert_eq!(index.body, on_disk);

    // The proxied app's backends are absent on a fresh machine: 502, and
    // the server started all the same.
    let absent = ["127.0.0.1:9001", "127.0.0.1:9002"]
        .iter()
        .all(|a| std::net::TcpStream::connect(a).is_err());
    if absent {
        let app = client::get(&srv.url("/app/")).await;
        assert_eq!(app.status, StatusCode::BAD_GATEWAY);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_gets_an_answer_and_a_close() {
    let srv = TestServer::start(&config_with_routes(HELLO)).await;
    let out = raw(
        srv.addr,
        b"GET /hello HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
    assert!(out.ends_with("Hello, World!\n"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_keepalive_and_pipelining() {
    let srv = TestServer::start(&config_with_routes(HELLO)).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Three pipelined requests in one write; the last asks to close.
    s.write_all(
        b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let out = client::read_until_close(&mut s, Duration::from_secs(5)).await;
    let statuses: Vec<_> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"], "{out}");

    // Keep-alive: two requests, one after the other, on one connection.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(status_of(&text), Some(200), "{text}");
        assert!(text.ends_with("Hello, World!\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_on_the_same_port() {
    let srv = TestServer::start(&config_with_routes(HELLO)).await;
    let h2 = client::h2();
    let req = || {
        Request::get(srv.url("/hello"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    // Several concurrent streams on one connection.
    let (a, b) = tokio::join!(client::send(&h2, req()), client::send(&h2, req()));
    for r in [a, b] {
        assert_eq!(r.version, Version::HTTP_2);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "Hello, World!\n");
    }
    // And HTTP/1.1 still works on that port.
    assert_eq!(
        client::get(&srv.url("/hello")).await.version,
        Version::HTTP_11
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_method_path_query_headers_and_params() {
    let routes = r#"
        (path: "/users/{id}/{*rest}",
         handler: Return(body: "$request_method $uri id=$param_id rest=$param_rest q=$arg_q ua=$http_x_agent")),
        (regex: "^/re/([a-z]+)-(\\d+)$", handler: Return(body: "$1:$2")),
    "#;
    let srv = TestServer::start(&config_with_routes(routes)).await;
    let r = client::get_with(
        &srv.url("/users/42/a/b%20c?q=x+y%26z"),
        &[("x-agent", "probe")],
    )
    .await;
    assert_eq!(
        r.text(),
        "GET /users/42/a/b c id=42 rest=a/b c q=x y&z ua=probe"
    );
    let r = client::get(&srv.url("/re/abc-123")).await;
    assert_eq!(r.text(), "abc:123");
}

#[test]
fn worker_count_comes_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.ron");
    std::fs::write(
        &cfg,
        r#"Config(listen: ["127.0.0.1:0"], workers: 3, log: (access: Off),
             servers: [(routes: [(path: "/", handler: Return(body: "x"))])])"#,
    )
    .unwrap();
    let d = Daemon::start(&cfg);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap();
    let workers = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "troupe-worker")
        .count();
    assert_eq!(workers, 3, "{}", d.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_mixes_ready_and_waiting_streams_on_one_connection() {
    // Ready answers (hello, cache hits) are answered in the connection's
    // own task; waiting ones (a cache miss, a streamed file) are spawned.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(dir.path().join("www/big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("www/small.txt"), "small\n").unwrap();
    let routes = format!("{HELLO}, (path: \"/f/{{*p}}\", handler: Static(root: \"www\"))");
    let srv = TestServer::start_in(dir, &config_with_routes(&routes)).await;
    let h2 = client::h2();
    let get = |path: &str| {
        let req = Request::get(srv.url(path))
            .body(Full::<Bytes>::default())
            .unwrap();
        client::send(&h2, req)
    };
    let mut hellos = Vec::new();
    for _ in 0..20 {
        hellos.push(get("/hello"));
    }
    let (big_resp, small, hellos) = tokio::join!(
        get("/f/big.bin"),
        get("/f/small.txt"),
        futures_util::future::join_all(hellos)
    );
    assert_eq!(big_resp.version, Version::HTTP_2);
    assert!(big_resp.body == big, "streamed body differs over h2");
    assert_eq!(small.text(), "small\n");
    assert!(hellos.iter().all(|r| r.text() == "Hello, World!\n"));
    // Cache hits are ready answers now; they must still be right.
    assert_eq!(get("/f/small.txt").await.text(), "small\n");
}

/// `printf 'GET / …' | nc -N host port`: a client that closes its sending
/// side once its request is out still gets the answer, as from nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let srv = TestServer::start(&config_with_routes(
        r#"(path: "/", handler: Return(body: "half\n"))"#,
    ))
    .await;
    for req in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let text = client::read_until_close(&mut s, Duration::from_secs(5)).await;
        let answers = text.matches(" 200 OK\r\n").count();
        assert_eq!(answers, req.matches("GET").count(), "{req:?} → {text:?}");
        assert!(text.ends_with("half\n"), "{text:?}");
    }
}
