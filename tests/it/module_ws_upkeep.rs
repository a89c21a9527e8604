//! Module WebSockets' upkeep (issue 13), on the real binary with the C
//! probe module and real clients: a quiet socket is closed with 1001
//! after the route's `idle_timeout` (a client's pings keep it open, `"0s"`
//! never closes it), and `troupe_module_websockets{module}` on the admin
//! API's `/metrics` counts the open sockets.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::CloseFrame, protocol::frame::coding::CloseCode},
};

use crate::support::{client, daemon::Daemon, eventually, modules, ws};

const TOKEN: &str = "ws-upkeep-token";

/// The probe on `/probe` (idle after 1 s) and `/forever` (never idle),
/// with an admin API.
fn start(dir: &Path) -> Daemon {
    std::fs::write(dir.join("admin.token"), format!("{TOKEN}\n")).expect("token");
    let lib = modules::dir().join("libws_probe.so").display().to_string();
    let path = dir.join("config.ron");
    std::fs::write(
        &path,
        format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0", token_file: "admin.token"),
    modules: [ (name: "probe", source: Native({lib:?})) ],
    servers: [( routes: [
        (path: "/probe", handler: WebSocket(module: "probe", idle_timeout: "1s")),
        (path: "/forever", handler: WebSocket(module: "probe", idle_timeout: "0s")),
    ] )],
)"#
        ),
    )
    .expect("write");
    Daemon::start(&path)
}

/// Sends `text` and returns the text answer.
async fn ask<S>(ws: &mut WebSocketStream<S>, text: &str) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text(text.to_owned())).await.expect("send");
    match tokio::time::timeout(Duration::from_secs(10), ws::next_data(ws)).await {
        Ok(Some(Message::Text(t))) => t.to_string(),
        other => panic!("no answer to {text:?}: {other:?}"),
    }
}

/// Reads until the server's close frame: its code, and when it came.
async fn close_code<S>(ws: &mut WebSocketStream<S>, within: Duration) -> (Option<u16>, Instant)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    let at = Instant::now();
                    while let Some(Ok(_)) = ws.next().await {}
                    return (frame.map(|f| u16::from(f.code)), at);
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return (None, Instant::now()),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("no close frame in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_module_socket_is_closed_with_1001_after_its_idle_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let d = start(dir.path());
    let url = |path: &str| format!("ws://{}{path}", d.addr);
    let (mut quiet, _) = ws::handshake(url("/probe")).await.expect("quiet");
    let (mut pinged, _) = ws::handshake(url("/probe")).await.expect("pinged");
    let (mut forever, _) = ws::handshake(url("/forever")).await.expect("forever");
    let (mut h2_quiet, _) = ws::connect_h2(d.addr, "/probe").await.expect("h2");
    assert_eq!(ask(&mut quiet, "instance?").await, "instance 1");
    assert_eq!(ask(&mut h2_quiet, "instance?").await, "instance 1");
    assert_eq!(ask(&mut forever, "instance?").await, "instance 1");
    let last = Instant::now();
    let quiet_closed = tokio::spawn(async move {
        let h1 = close_code(&mut quiet, Duration::from_secs(10)).await;
        let h2 = close_code(&mut h2_quiet, Duration::from_secs(10)).await;
        (h1, h2)
    });
    // Pings every 300 ms for 3 s: each is a frame, so never idle.
    for _ in 0..10 {
        pinged
            .send(Message::Ping(b"still here".to_vec().into()))
            .await
            .expect("ping");
        let pong = tokio::time::timeout(Duration::from_secs(5), pinged.next()).await;
        assert!(
            matches!(pong, Ok(Some(Ok(Message::Pong(_))))),
            "{pong:?}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ((h1_code, h1_at), (h2_code, h2_at)) = quiet_closed.await.expect("quiet sockets");
    for (code, at) in [(h1_code, h1_at), (h2_code, h2_at)] {
        assert_eq!(code, Some(1001), "{}", d.logs());
        let after = at.duration_since(last);
        // One second of silence, found by a tick of 250 ms.
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(3),
            "closed {after:?} after its last message"
        );
    }
    assert!(last.elapsed() > Duration::from_millis(2500));
    assert_eq!(ask(&mut pinged, "instance?").await, "instance 1");
    assert_eq!(ask(&mut forever, "instance?").await, "instance 1");
    // The module heard why.
    assert!(
        d.wait_for_log("with 1001", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
}

/// `troupe_module_websockets{module="probe"}` on `/metrics`.
async fn open_sockets(admin: &str) -> Option<i64> {
    let auth = format!("Bearer {TOKEN}");
    let text = client::get_with(
        &format!("http://{admin}/metrics"),
        &[("authorization", &auth)],
    )
    .await
    .text();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"troupe_module_websockets{module="probe"} "#))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_module_sockets_are_counted_in_the_metrics() {
    let dir = tempfile::tempdir().expect("dir");
    let d = start(dir.path());
    let admin = d.admin_addr();
    assert_eq!(open_sockets(&admin).await.unwrap_or(0), 0);
    let (mut a, _) = ws::handshake(format!("ws://{}/forever", d.addr))
        .await
        .expect("a");
    let (b, _) = ws::handshake(format!("ws://{}/forever", d.addr))
        .await
        .expect("b");
    let (mut c, _) = ws::connect_h2(d.addr, "/forever").await.expect("c");
    assert_eq!(ask(&mut c, "instance?").await, "instance 1");
    assert_eq!(open_sockets(&admin).await, Some(3), "{}", d.logs());
    // A refused handshake is no socket.
    assert_eq!(
        ws::handshake(format!("ws://{}/forever?refuse", d.addr))
            .await
            .err()
            .as_deref(),
        Some("refused: 403")
    );
    assert_eq!(open_sockets(&admin).await, Some(3));
    // One closed by its client, one dropped without a word.
    a.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .expect("close");
    drop(b);
    let down = eventually(Duration::from_secs(10), || async {
        open_sockets(&admin).await == Some(1)
    })
    .await;
    assert!(down, "{:?}\n{}", open_sockets(&admin).await, d.logs());
    assert_eq!(ask(&mut c, "instance?").await, "instance 1");
}
