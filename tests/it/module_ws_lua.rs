//! WebSockets handled by Lua scripts (issue 13), on the real binary with
//! the scripts of `plugins/lua/` and real clients: the echo example over
//! HTTP/1.1 and HTTP/2, text and binary; the room example's broadcast
//! across three clients; `ws_open` accepting with headers, refusing with
//! its answer, failing (500); a looping, failing or memory-hungry
//! `ws_message` closing only its socket (1011) while another socket and a
//! plain route go on; a long `ws_open` finishing on the module pool, a
//! looping one answering 504, and one whose client left closing the
//! socket it accepted (1006); a call that moves to the module pool
//! keeping the socket's order, and a client that outruns it closed
//! (1011); the shipped config's Lua routes; `troupe -t` refusing a script
//! without `ws_message`; and the Autobahn fuzzing client against the Lua
//! echo (247 cases, about 11 s).

use std::{path::PathBuf, time::Duration};

use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    module_ws::ask,
    support::{
        client,
        daemon::{self, Daemon},
        modules::{lua, shipped_config},
        ws,
    },
};

const ROUTES: &str = r#"
    (path: "/hello", handler: Return(body: "hello\n")),
    (path: "/echo", handler: WebSocket(module: "echo")),
    (path: "/room", handler: WebSocket(module: "room")),
    (path: "/probe", handler: WebSocket(module: "probe")),
    (path: "/patient", handler: WebSocket(module: "patient")),
"#;

/// Starts the binary with the echo and room examples and the test probe
/// (a small instruction budget, so a loop ends in milliseconds).
fn start() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    let modules = format!(
        r#"(name: "echo", source: Lua({})),
           (name: "room", source: Lua({})),
           (name: "probe", source: Lua({}), timeout: "5s",
            sandbox: (memory: 8388608, instructions: 2000000)),
           (name: "patient", source: Lua({}), sandbox: (instructions: 200000000))"#,
        lua("examples/ws_echo.lua"),
        lua("examples/ws_room.lua"),
        lua("testing/ws_probe.lua"),
        lua("testing/ws_probe.lua"),
    );
    std::fs::write(&path, config(&modules, ROUTES)).expect("write");
    let d = Daemon::start(&path);
    (dir, d)
}

fn config(modules: &str, routes: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    modules: [ {modules} ],
    servers: [( routes: [ {routes} ] )],
)"#
    )
}

async fn open(d: &Daemon, path: &str) -> Result<ws::Ws, String> {
    ws::handshake(format!("ws://{}{path}", d.addr))
        .await
        .map(|(s, _)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_echo_echoes_text_and_binary_over_http1_and_http2() {
    let (_dir, d) = start();
    let mut h1 = open(&d, "/echo").await.expect("handshake");
    ws::echo_n(&mut h1, "lua h1", 50).await;
    for size in [0, 7, 300 * 1024] {
        let bin = Message::binary(vec![0xa5u8; size]);
        h1.send(bin.clone()).await.expect("send");
        assert_eq!(ws::next_data(&mut h1).await, Some(bin), "{size} bytes");
    }
    // Not UTF-8: comes back binary, as it came.
    let odd = Message::binary(vec![0xff, 0xfe, 0x00]);
    h1.send(odd.clone()).await.expect("send");
    assert_eq!(ws::next_data(&mut h1).await, Some(odd));
    let (mut h2, _) = ws::connect_h2(d.addr, "/echo")
        .await
        .unwrap_or_else(|status| panic!("extended CONNECT refused: {status}\n{}", d.logs()));
    ws::echo_n(&mut h2, "lua h2", 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_room_sends_every_message_to_all_three_clients() {
    let (_dir, d) = start();
    let mut socks = [
        ws::AnyWs::H1(open(&d, "/room?name=ann").await.expect("ann")),
        ws::AnyWs::H2(
            ws::connect_h2(d.addr, "/room?name=bob")
                .await
                .expect("bob")
                .0,
        ),
        ws::AnyWs::H1(open(&d, "/room").await.expect("guest")),
    ];
    // One at a time: each line is heard by all three before the next.
    for (who, text, line) in [(0, "hi", "ann: hi"), (1, "hello", "bob: hello")] {
        socks[who].send(text).await;
        for (i, s) in socks.iter_mut().enumerate() {
            assert_eq!(s.next_text().await.as_deref(), Some(line), "socket {i}");
        }
    }
    // No name: "guest<socket id>", kept in the shared store whichever VM
    // runs the socket's hooks.
    socks[2].send("hey").await;
    let mut heard = Vec::new();
    for s in socks.iter_mut() {
        heard.push(s.next_text().await.expect("heard"));
    }
    assert!(heard.iter().all(|h| *h == heard[0]), "{heard:?}");
    assert!(
        heard[0].starts_with("guest") && heard[0].ends_with(": hey"),
        "{heard:?}"
    );
    // Binary is refused with the room's own close code; the others stay.
    let ws::AnyWs::H1(ann) = &mut socks[0] else {
        unreachable!()
    };
    ann.send(Message::binary(vec![1u8, 2])).await.expect("send");
    assert_eq!(
        ws::close_code(ann, Duration::from_secs(10)).await,
        Some(1003)
    );
    socks[1].send("still here").await;
    for s in &mut socks[1..] {
        assert_eq!(s.next_text().await.as_deref(), Some("bob: still here"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_open_accepts_with_headers_refuses_with_its_answer_and_fails_with_500() {
    let (_dir, d) = start();
    assert_eq!(
        open(&d, "/probe?refuse=1").await.err().as_deref(),
        Some("refused: 403")
    );
    assert_eq!(
        ws::connect_h2(d.addr, "/probe?refuse=1").await.err(),
        Some(403)
    );
    // The refusal is the script's whole answer: body and headers.
    let plain = client::get_with(
        &format!("http://{}/probe?refuse=1", d.addr),
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(plain.status, 403);
    assert_eq!(plain.text(), "go away\n");
    assert_eq!(plain.header("x-why"), Some("refused"));
    assert_eq!(
        open(&d, "/probe?fail=1").await.err().as_deref(),
        Some("refused: 500")
    );
    // `ws::connect` offers the `chat` subprotocol.
    let (mut s, resp) = ws::connect(&format!("ws://{}/probe?protocol=chat", d.addr))
        .await
        .expect("open");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    assert_eq!(ask(&mut s, "hi").await, "text:hi");
    s.send(Message::text("bye")).await.expect("send");
    assert_eq!(
        ws::close_code(&mut s, Duration::from_secs(10)).await,
        Some(4000)
    );
    assert!(
        d.wait_for_log("with 4000", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_failing_or_greedy_ws_message_closes_only_its_socket_with_1011() {
    let (_dir, d) = start();
    let mut other = open(&d, "/probe").await.expect("other");
    let mut h2 = ws::connect_h2(d.addr, "/echo").await.expect("h2").0;
    for bad in ["loop", "fail", "memory"] {
        let mut s = open(&d, "/probe").await.expect("open");
        s.send(Message::text(bad)).await.expect("send");
        // Meanwhile: another socket of the module, another module's, and
        // a plain route answer.
        assert_eq!(ask(&mut other, "ping").await, "text:ping");
        ws::echo_n(&mut h2, bad, 3).await;
        let hello = client::get(&format!("http://{}/hello", d.addr)).await;
        assert_eq!(hello.status, 200, "{bad}");
        assert_eq!(
            ws::close_code(&mut s, Duration::from_secs(10)).await,
            Some(1011),
            "{bad}:\n{}",
            d.logs()
        );
    }
    // Each failed socket heard its ws_close; the module was not restarted
    // and serves new sockets.
    let heard = crate::support::eventually_sync(Duration::from_secs(10), || {
        d.logs().matches(" with 1011").count() >= 3
    });
    assert!(heard, "{}", d.logs());
    let mut again = open(&d, "/probe").await.expect("again");
    assert_eq!(ask(&mut again, "after").await, "text:after");
    assert_eq!(ask(&mut other, "still").await, "text:still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_moves_to_the_module_pool_keeps_the_sockets_order() {
    let (_dir, d) = start();
    let mut s = open(&d, "/probe").await.expect("open");
    // "slow" outruns its first slice and goes on on the module pool; the
    // messages after it wait for it, then run in order.
    for round in 0..3 {
        s.send(Message::text("slow")).await.expect("send");
        for i in 0..5 {
            s.send(Message::text(format!("{round}.{i}")))
                .await
                .expect("send");
        }
        let mut heard = Vec::new();
        for _ in 0..6 {
            match tokio::time::timeout(Duration::from_secs(10), ws::next_data(&mut s)).await {
                Ok(Some(Message::Text(t))) => heard.push(t.to_string()),
                other => panic!("round {round}: {other:?} after {heard:?}\n{}", d.logs()),
            }
        }
        let mut want = vec!["slow done".to_owned()];
        want.extend((0..5).map(|i| format!("text:{round}.{i}")));
        assert_eq!(heard, want);
    }
    // Each "slow" did move (and the short ones ran where they came).
    assert_eq!(moved(&d, "probe").await, 3);
    // The socket's close waits behind its calls too, and is heard once.
    s.close(None).await.expect("close");
    assert!(
        d.wait_for_log(" with 1005", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
}

/// The module's calls that moved to the module pool so far.
async fn moved(d: &Daemon, module: &str) -> u64 {
    let metrics = client::get(&format!("http://{}/metrics", d.admin_addr())).await;
    let series = format!(r#"troupe_module_calls_moved_total{{module="{module}"}} "#);
    metrics
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no moved series for {module}:\n{}", metrics.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_ws_open_finishes_on_the_module_pool_and_a_looping_one_answers_504() {
    let (_dir, d) = start();
    // Past its first slice, the handshake's ws_open goes on on the module
    // pool (the connection's thread is free) and its answer still opens
    // the socket.
    let mut s = open(&d, "/probe?slow=1").await.expect("a slow ws_open");
    assert_eq!(ask(&mut s, "hi").await, "text:hi");
    assert_eq!(moved(&d, "probe").await, 1);
    // One that never ends is stopped by its budget there: 504, no socket.
    assert_eq!(
        open(&d, "/probe?loop=1").await.err().as_deref(),
        Some("refused: 504")
    );
    assert_eq!(moved(&d, "probe").await, 2);
    // A client that leaves while its ws_open runs: the call finishes, and
    // the socket it accepted is heard closed (1006), so the script can let
    // go of what it keeps for it.
    let mut raw = tokio::net::TcpStream::connect(d.addr)
        .await
        .expect("connect");
    raw.write_all(
        b"GET /probe?slow=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    drop(raw);
    // The same over HTTP/2, where the stream's reset drops the handshake
    // while its ws_open still runs.
    let _kept = ws::cancel_h2(d.addr, "/probe?slow=1").await;
    let heard = crate::support::eventually_sync(Duration::from_secs(10), || {
        d.logs().matches(" with 1006").count() == 2
    });
    assert!(heard, "{}", d.logs());
    // The open socket was never disturbed.
    assert_eq!(ask(&mut s, "still").await, "text:still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_outruns_a_moved_call_is_closed_with_1011() {
    let (_dir, d) = start();
    let mut s = open(&d, "/patient").await.expect("open");
    // Tens of milliseconds on the module pool; the 40 messages behind it
    // arrive at once, past the 32 a socket may have waiting.
    s.send(Message::text("crawl")).await.expect("send");
    for i in 0..40 {
        s.send(Message::text(format!("m{i}"))).await.expect("send");
    }
    assert_eq!(
        ws::close_code(&mut s, Duration::from_secs(10)).await,
        Some(1011),
        "{}",
        d.logs()
    );
    assert!(
        d.wait_for_log("messages wait for the script", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    // ws_close still ran, after the calls that waited.
    assert!(
        d.wait_for_log(" with 1011", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    // The module serves the next socket.
    let mut next = open(&d, "/patient").await.expect("next");
    assert_eq!(ask(&mut next, "hi").await, "text:hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_serves_the_lua_echo_and_room() {
    let dir = tempfile::tempdir().expect("dir");
    let d = Daemon::start(&shipped_config(dir.path()));
    let mut echo = open(&d, "/ws/lua/echo").await.expect("echo");
    ws::echo_n(&mut echo, "shipped lua", 3).await;
    let mut a = open(&d, "/ws/lua/room?name=a").await.expect("room a");
    let (mut b, _) = ws::connect_h2(d.addr, "/ws/lua/room?name=b")
        .await
        .expect("room b");
    a.send(Message::text("hi all")).await.expect("send");
    assert_eq!(
        ws::next_data(&mut a).await,
        Some(Message::text("a: hi all"))
    );
    assert_eq!(
        ws::next_data(&mut b).await,
        Some(Message::text("a: hi all"))
    );
    assert_eq!(ask(&mut b, "and you").await, "b: and you");
    assert_eq!(
        ws::next_data(&mut a).await,
        Some(Message::text("b: and you"))
    );
}

#[test]
fn troupe_t_refuses_a_script_without_ws_message_naming_the_module() {
    let dir = tempfile::tempdir().expect("dir");
    let path: PathBuf = dir.path().join("config.ron");
    let modules = format!(
        r#"(name: "plain", source: Lua({}))"#,
        lua("examples/hello.lua")
    );
    std::fs::write(
        &path,
        config(
            &modules,
            r#"
        (path: "/ws", handler: WebSocket(module: "plain")),
"#,
        ),
    )
    .expect("write");
    let (code, err) = daemon::check(&path);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("config.ron:7:"), "the route's line:\n{err}");
    assert!(err.contains("module `plain`"), "{err}");
    assert!(err.contains("ws_message"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autobahn_fuzzing_client_against_the_lua_echo_fails_no_case() {
    let Some(wstest) = tokio::task::spawn_blocking(crate::websocket::wstest)
        .await
        .expect("set-up")
    else {
        return;
    };
    let (dir, d) = start();
    let url = format!("ws://{}/echo", d.addr);
    let started = std::time::Instant::now();
    let cases = crate::websocket::autobahn(&wstest, dir.path(), &url).await;
    println!(
        "Autobahn: {cases} cases against the Lua echo in {:?}",
        started.elapsed()
    );
}
