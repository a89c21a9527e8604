//! WebSockets handled by modules (issue 13), on the real binary with the
//! C modules of `plugins/` and a real client (tokio-tungstenite): the echo
//! and broadcast examples over HTTP/1.1 Upgrade and HTTP/2 extended
//! CONNECT, the handshake the module refuses or completes, close codes
//! (the module's, 1011 on its failure, 1001 at the drain deadline, 1012
//! after a module reload's drain), sockets kept across a config reload
//! and on their instance across a module reload, `isolation: Process`
//! refused, and the Autobahn fuzzing client against the echo module.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use futures_util::SinkExt;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

use crate::support::{
    daemon::{self, Daemon},
    eventually, modules,
    ws::{self, AnyWs},
};

/// A config with the modules (RON entries), routes and limits given.
fn config(modules: &str, routes: &str, limits: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    limits: ({limits}),
    modules: [ {modules} ],
    servers: [( routes: [ {routes} ] )],
)"#
    )
}

/// A native module entry for `lib<file>.so` at `dir`.
fn native(name: &str, dir: &Path, file: &str) -> String {
    format!(
        r#"(name: "{name}", source: Native({:?}))"#,
        dir.join(format!("lib{file}.so")).display().to_string()
    )
}

const ROUTES: &str = r#"
    (path: "/echo", handler: WebSocket(module: "echo")),
    (path: "/room", handler: WebSocket(module: "room")),
    (path: "/probe", handler: WebSocket(module: "probe", reload_drain: "2s")),
"#;

fn modules_line(probe_dir: &Path) -> String {
    let dir = modules::dir();
    [
        native("echo", dir, "ws_echo"),
        native("room", dir, "ws_broadcast"),
        native("probe", probe_dir, "ws_probe"),
    ]
    .join(", ")
}

/// Starts the binary with the three modules (the probe from a copy in a
/// directory of its own, so a test may touch it), and `limits`.
fn start(limits: &str) -> (tempfile::TempDir, PathBuf, Daemon) {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(
        modules::dir().join("libws_probe.so"),
        dir.path().join("libws_probe.so"),
    )
    .expect("copy the probe");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config(&modules_line(dir.path()), ROUTES, limits)).expect("write");
    let d = Daemon::start(&path);
    (dir, path, d)
}

type Ws = ws::Ws;

/// Opens a WebSocket over HTTP/1.1 without offering a subprotocol.
async fn open(d: &Daemon, path: &str) -> Result<(Ws, http::Response<Option<Vec<u8>>>), String> {
    ws::handshake(format!("ws://{}{path}", d.addr)).await
}

/// Sends `text` and returns the text answer.
pub(crate) async fn ask<S>(ws: &mut WebSocketStream<S>, text: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text.to_owned())).await.expect("send");
    match tokio::time::timeout(Duration::from_secs(10), ws::next_data(ws)).await {
        Ok(Some(Message::Text(t))) => t.to_string(),
        other => panic!("no answer to {text:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_echo_module_echoes_over_http1_and_http2() {
    let (_dir, _path, d) = start("");
    let (mut h1, resp) = open(&d, "/echo").await.expect("handshake");
    assert_eq!(resp.status(), 101);
    ws::echo_n(&mut h1, "h1", 100).await;
    // Bigger than the read buffer, under the 1 MiB default cap.
    let big = Message::binary(vec![5u8; 512 * 1024]);
    h1.send(big.clone()).await.expect("send");
    assert_eq!(ws::next_data(&mut h1).await, Some(big));
    let (mut h2, _) = ws::connect_h2(d.addr, "/echo")
        .await
        .unwrap_or_else(|status| panic!("extended CONNECT refused: {status}\n{}", d.logs()));
    ws::echo_n(&mut h2, "h2", 100).await;
    // Over the cap: closed with 1009 (message too big).
    h1.send(Message::binary(vec![1u8; 2 << 20]))
        .await
        .expect("send");
    assert_eq!(
        ws::close_code(&mut h1, Duration::from_secs(10)).await,
        Some(1009)
    );
    // A plain request to a WebSocket route: 426.
    let plain = crate::support::client::get(&format!("http://{}/echo", d.addr)).await;
    assert_eq!(plain.status, 426, "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_refuses_accepts_and_closes_sockets() {
    let (_dir, _path, d) = start("");
    assert_eq!(
        open(&d, "/probe?refuse").await.err().as_deref(),
        Some("refused: 403")
    );
    assert_eq!(
        ws::connect_h2(d.addr, "/probe?refuse").await.err(),
        Some(403)
    );
    // Headers the module sets in ws_open go with the 101.
    // `ws::connect` offers the `chat` subprotocol.
    let (mut s, resp) = ws::connect(&format!("ws://{}/probe?protocol=chat", d.addr))
        .await
        .expect("open");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    assert_eq!(ask(&mut s, "instance?").await, "instance 1");
    // The module closes with its own code.
    s.send(Message::text("bye")).await.expect("send");
    assert_eq!(
        ws::close_code(&mut s, Duration::from_secs(10)).await,
        Some(4000)
    );
    // A failing ws_message: 1011, and the module is not restarted.
    let (mut f, _) = open(&d, "/probe").await.expect("open");
    f.send(Message::text("fail")).await.expect("send");
    assert_eq!(
        ws::close_code(&mut f, Duration::from_secs(10)).await,
        Some(1011)
    );
    let (mut again, _) = open(&d, "/probe").await.expect("open");
    assert_eq!(ask(&mut again, "instance?").await, "instance 1");
    // A client's close reaches ws_close with its code.
    again
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Library(4321),
            reason: "done".into(),
        }))
        .await
        .expect("close");
    assert!(
        d.wait_for_log("with 4321", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    for code in ["with 4000", "with 1011"] {
        assert!(
            d.wait_for_log(code, Duration::from_secs(10)),
            "{code}:\n{}",
            d.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_module_sends_every_message_to_every_socket() {
    let (_dir, _path, d) = start("");
    let mut socks = Vec::new();
    for i in 0..6 {
        socks.push(if i % 2 == 0 {
            AnyWs::H1(open(&d, "/room").await.expect("open").0)
        } else {
            AnyWs::H2(ws::connect_h2(d.addr, "/room").await.expect("open").0)
        });
    }
    // Each says one thing; each hears all six, in some order.
    let mut heard = vec![Vec::new(); socks.len()];
    for (i, s) in socks.iter_mut().enumerate() {
        s.send(&format!("from {i}")).await;
    }
    for (i, s) in socks.iter_mut().enumerate() {
        for _ in 0..6 {
            heard[i].push(
                s.next_text()
                    .await
                    .unwrap_or_else(|| panic!("socket {i} heard too little")),
            );
        }
        heard[i].sort();
    }
    let all: Vec<String> = (0..6).map(|i| format!("from {i}")).collect();
    for h in heard {
        assert_eq!(h, all);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_module_sockets_then_closes_them_with_1001() {
    let (_dir, _path, mut d) = start(r#"drain_timeout: "2s""#);
    let (mut h1, _) = open(&d, "/echo").await.expect("h1");
    let (mut h2, _) = ws::connect_h2(d.addr, "/echo").await.expect("h2");
    let started = Instant::now();
    d.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws::echo_n(&mut h1, "draining", 3).await;
    ws::echo_n(&mut h2, "draining h2", 3).await;
    assert_eq!(
        ws::close_code(&mut h1, Duration::from_secs(10)).await,
        Some(1001)
    );
    assert_eq!(
        ws::close_code(&mut h2, Duration::from_secs(10)).await,
        Some(1001)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    let status = tokio::task::spawn_blocking(move || d.wait(Duration::from_secs(10)))
        .await
        .expect("wait")
        .expect("troupe did not exit");
    assert_eq!(status.code(), Some(0));
}

/// Makes the file look changed to SIGUSR2 (same code, a later mtime).
fn touch(file: &Path) {
    let f = std::fs::File::options()
        .write(true)
        .open(file)
        .expect("open");
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_reload_keeps_old_sockets_on_their_instance_until_the_drain_then_1012() {
    let (dir, _path, d) = start("");
    let (mut old_h1, _) = open(&d, "/probe").await.expect("open");
    let (mut old_h2, _) = ws::connect_h2(d.addr, "/probe").await.expect("open h2");
    assert_eq!(ask(&mut old_h1, "instance?").await, "instance 1");
    assert_eq!(ask(&mut old_h2, "instance?").await, "instance 1");
    touch(&dir.path().join("libws_probe.so"));
    d.signal(libc::SIGUSR2);
    assert!(
        d.wait_for_log("module reloaded", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    let reloaded = Instant::now();
    // New sockets get the new instance; old ones keep theirs.
    let (mut new, _) = open(&d, "/probe").await.expect("open new");
    assert_eq!(ask(&mut new, "instance?").await, "instance 2");
    assert_eq!(ask(&mut old_h1, "instance?").await, "instance 1");
    assert_eq!(ask(&mut old_h2, "instance?").await, "instance 1");
    // The route's reload_drain (2 s), then 1012 (service restart).
    assert_eq!(
        ws::close_code(&mut old_h1, Duration::from_secs(10)).await,
        Some(1012)
    );
    assert_eq!(
        ws::close_code(&mut old_h2, Duration::from_secs(10)).await,
        Some(1012)
    );
    let took = reloaded.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    // The old instance goes once its last socket has; the new one stays.
    assert!(
        d.wait_for_log("ws_probe instance 1 shut down", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    assert_eq!(ask(&mut new, "instance?").await, "instance 2");
    assert!(!d.logs().contains("instance 2 shut down"), "{}", d.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_that_keeps_the_route_keeps_the_sockets() {
    let (dir, path, d) = start("");
    let (mut echo, _) = open(&d, "/echo").await.expect("open");
    let (mut probe, _) = ws::connect_h2(d.addr, "/probe").await.expect("open h2");
    assert_eq!(ask(&mut probe, "instance?").await, "instance 1");
    for r in 1..=2 {
        let routes = format!(r#"(path: "/v{r}", handler: Return(body: "v{r}")), {ROUTES}"#);
        std::fs::write(&path, config(&modules_line(dir.path()), &routes, "")).expect("rewrite");
        d.signal(libc::SIGHUP);
        let url = format!("http://{}/v{r}", d.addr);
        let done = eventually(Duration::from_secs(20), || async {
            crate::support::client::get(&url).await.body == format!("v{r}").as_bytes()
        })
        .await;
        assert!(done, "reload {r} not in force:\n{}", d.logs());
        ws::echo_n(&mut echo, &format!("after reload {r}"), 5).await;
        assert_eq!(ask(&mut probe, "instance?").await, "instance 1");
    }
    // Past the probe's reload_drain: still open (nothing was reloaded).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ask(&mut probe, "instance?").await, "instance 1");
    ws::echo_n(&mut echo, "at the end", 3).await;
}

#[test]
fn a_process_isolated_module_is_refused_for_websockets_with_its_place() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    let lib = modules::dir().join("libws_echo.so");
    std::fs::write(
        &path,
        format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    modules: [(name: "echo", source: Native({:?}), isolation: Process)],
    servers: [(routes: [
        (path: "/echo", handler: WebSocket(module: "echo")),
    ])],
)"#,
            lib.display().to_string()
        ),
    )
    .expect("write");
    let (code, err) = daemon::check(&path);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("config.ron:5:"), "the route's line:\n{err}");
    assert!(
        err.contains("module `echo` cannot be used as a WebSocket handler"),
        "{err}"
    );
    assert!(err.contains("isolation: Process"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autobahn_fuzzing_client_against_the_echo_module_fails_no_case() {
    let Some(wstest) = tokio::task::spawn_blocking(crate::websocket::wstest)
        .await
        .expect("set-up")
    else {
        return;
    };
    let (dir, _path, d) = start("");
    let url = format!("ws://{}/echo", d.addr);
    let cases = crate::websocket::autobahn(&wstest, dir.path(), &url).await;
    println!("Autobahn: {cases} cases against the echo module");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_serves_the_echo_and_the_room() {
    let dir = tempfile::tempdir().expect("dir");
    let d = Daemon::start(&modules::shipped_config(dir.path()));
    let (mut echo, _) = open(&d, "/ws/echo").await.expect("echo");
    ws::echo_n(&mut echo, "shipped", 3).await;
    let (mut a, _) = open(&d, "/ws/room").await.expect("room a");
    let (mut b, _) = ws::connect_h2(d.addr, "/ws/room").await.expect("room b");
    // One message at a time: the two sockets' messages reach the module
    // on two tasks, in either order, so `b` speaks once `a`'s was heard.
    a.send(Message::text("hi all")).await.expect("send");
    assert_eq!(ws::next_data(&mut a).await, Some(Message::text("hi all")));
    assert_eq!(ws::next_data(&mut b).await, Some(Message::text("hi all")));
    assert_eq!(ask(&mut b, "and you").await, "and you");
    assert_eq!(ws::next_data(&mut a).await, Some(Message::text("and you")));
}
