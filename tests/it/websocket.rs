//! WebSockets through the reverse proxy (issue 13), on the real binary,
//! to a real WebSocket backend (`support::ws`, tokio-tungstenite): over
//! HTTP/1.1 Upgrade and over HTTP/2 extended CONNECT (RFC 8441), refused
//! upgrades, upgrades a route does not pass, the tunnel idle timeout,
//! config reloads and the drain.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    backend::{Behaviour, TestBackend},
    daemon::Daemon,
    repo_root,
    ws::{self, AnyWs, EchoBackend},
};

/// A config with one upstream group `app` of `backend` (with `settings`,
/// RON fields) and `routes`; `limits` RON fields.
fn config(backend: std::net::SocketAddr, settings: &str, routes: &str, limits: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    limits: ({limits}),
    upstreams: {{ "app": (backends: [(addr: "{backend}")], {settings}) }},
    servers: [( routes: [ {routes} ] )],
)"#
    )
}

const ROUTES: &str = r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#;

fn start(
    backend: std::net::SocketAddr,
    settings: &str,
    routes: &str,
    limits: &str,
) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config(backend, settings, routes, limits)).expect("write config");
    let d = Daemon::start(&path);
    (dir, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echoes_through_the_proxy_over_http1() {
    let b = EchoBackend::start(false).await;
    let (_dir, d) = start(b.addr, "", ROUTES, "");
    let (mut sock, resp) = ws::connect(&format!("ws://{}/chat", d.addr))
        .await
        .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    ws::echo_n(&mut sock, "h1", 200).await;
    // A message larger than any buffer on the way.
    let big = Message::binary(vec![7u8; 1 << 20]);
    sock.send(big.clone()).await.expect("send");
    assert_eq!(ws::next_data(&mut sock).await, Some(big));
    sock.close(None).await.expect("close");
    let seen = b.handshake(0);
    assert!(seen.contains("upgrade: websocket"), "{seen}");
    assert!(seen.contains("sec-websocket-protocol: chat"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
    // The connection after the tunnel is gone, not kept: a second socket
    // is a second handshake.
    let (mut again, _) = ws::connect(&format!("ws://{}/chat", d.addr))
        .await
        .expect("again");
    ws::echo_n(&mut again, "again", 3).await;
    assert_eq!(b.accepted.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_extended_connect_reaches_an_http1_backend() {
    let b = EchoBackend::start(false).await;
    let (_dir, d) = start(b.addr, "", ROUTES, "");
    let (mut sock, headers) = ws::connect_h2(d.addr, "/chat")
        .await
        .unwrap_or_else(|status| panic!("extended CONNECT refused: {status}\n{}", d.logs()));
    assert_eq!(headers["sec-websocket-protocol"], "chat");
    assert!(headers.get("sec-websocket-accept").is_none(), "{headers:?}");
    ws::echo_n(&mut sock, "h2", 200).await;
    let big = Message::binary(vec![9u8; 1 << 20]);
    sock.send(big.clone()).await.expect("send");
    assert_eq!(ws::next_data(&mut sock).await, Some(big));
    // The backend got an HTTP/1.1 upgrade with a key of our making.
    let seen = b.handshake(0);
    for line in [
        "upgrade: websocket",
        "connection: upgrade",
        "sec-websocket-version: 13",
        "sec-websocket-key: ",
        "sec-websocket-protocol: chat",
    ] {
        assert!(seen.contains(line), "{line} missing from:\n{seen}");
    }
    // A route for GET only takes a WebSocket over HTTP/2 too: the
    // CONNECT stands for a GET.
    let (_dir2, d2) = start(
        b.addr,
        "",
        r#"(path: "/{*rest}", methods: ["GET"], handler: Proxy(upstream: "app"))"#,
        "",
    );
    let (mut get_only, _) = ws::connect_h2(d2.addr, "/chat")
        .await
        .unwrap_or_else(|status| panic!("GET-only route refused: {status}"));
    ws::echo_n(&mut get_only, "get only", 3).await;
    // Two sockets at once on one HTTP/2 connection would need the same
    // client; a second connection is enough to show the first was not
    // a fluke of state.
    let (mut two, _) = ws::connect_h2(d.addr, "/other").await.expect("second");
    ws::echo_n(&mut two, "two", 5).await;
    ws::echo_n(&mut sock, "h2 still", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_is_relayed() {
    let b = EchoBackend::start(true).await;
    let (_dir, d) = start(b.addr, "", ROUTES, "");
    let h1 = ws::connect(&format!("ws://{}/chat", d.addr)).await;
    assert_eq!(h1.err().as_deref(), Some("refused: 403"));
    let h2 = ws::connect_h2(d.addr, "/chat").await;
    assert_eq!(h2.err(), Some(403));
    assert_eq!(b.seen.lock().unwrap().len(), 2, "both reached the backend");
}

/// An upgrade cannot travel over HTTP/2 to the backend: a group that
/// speaks it answers 502 (with a log line) and the backend sees nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_an_http2_group_is_refused_with_502() {
    let b = EchoBackend::start(false).await;
    let (_dir, d) = start(b.addr, "protocol: Http2", ROUTES, "");
    let h1 = ws::connect(&format!("ws://{}/chat", d.addr)).await;
    assert_eq!(h1.err().as_deref(), Some("refused: 502"));
    assert!(b.seen.lock().unwrap().is_empty());
}

/// Sends `req` on `s` and reads one answer (head and a Content-Length
/// body); returns it as text.
fn exchange(s: &mut TcpStream, req: &str) -> String {
    s.write_all(req.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_a_route_does_not_pass_is_a_plain_request() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let routes = r#"
        (path: "/plain/{*rest}", handler: Proxy(upstream: "app", upgrades: [])),
        (path: "/{*rest}", handler: Proxy(upstream: "app")),
    "#;
    let (_dir, d) = start(a.addr, "", routes, "");
    let addr = d.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A WebSocket asked of a route without upgrades.
        let got = exchange(
            &mut s,
            "GET /plain/headers HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        let seen = got.to_ascii_lowercase();
        assert!(!seen.contains("\nupgrade:"), "{got}");
        assert!(!seen.contains("\nconnection:"), "{got}");
        // h2c, not among the protocols a route passes by default: the
        // backend sees a plain request, so it cannot switch its
        // connection behind the proxy.
        let got = exchange(
            &mut s,
            "GET /headers HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        let seen = got.to_ascii_lowercase();
        assert!(!seen.contains("\nupgrade:"), "{got}");
        assert!(!seen.contains("http2-settings"), "{got}");
        // The client's connection is still plain HTTP.
        let got = exchange(&mut s, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(got.ends_with("hello from a"), "{got}");
        // A forward-proxy CONNECT is refused.
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let got = exchange(&mut c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    })
    .await
    .expect("raw client");
    assert_eq!(a.hits(), 3, "the CONNECT never reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_idle_timeout_closes_an_idle_tunnel_but_not_a_busy_one() {
    let b = EchoBackend::start(false).await;
    // The read timeout is far shorter: it must not apply to tunnels.
    let (_dir, d) = start(
        b.addr,
        r#"read_timeout: "300ms", tunnel_idle_timeout: "1500ms""#,
        ROUTES,
        "",
    );
    let url = format!("ws://{}/chat", d.addr);
    let (mut busy, _) = ws::connect(&url).await.expect("busy");
    // Each tunnel's idle clock starts when it opens: timed from its own
    // handshake, not from the last one (which may come 100 ms later on a
    // loaded machine).
    let (mut idle, _) = ws::connect(&url).await.expect("idle");
    let opened = Instant::now();
    let (mut h2_idle, _) = ws::connect_h2(d.addr, "/chat").await.expect("h2 idle");
    let h2_opened = Instant::now();
    let busy_task = tokio::spawn(async move {
        // A message every 300 ms for 4 s: never idle for 1.5 s.
        for i in 0..13 {
            ws::echo_n(&mut busy, &format!("busy {i}"), 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        ws::echo_n(&mut busy, "busy at the end", 1).await;
    });
    let h2_task = tokio::spawn(async move {
        assert_eq!(ws::next_data(&mut h2_idle).await, None);
        Instant::now()
    });
    assert_eq!(
        ws::next_data(&mut idle).await,
        None,
        "an idle tunnel is closed"
    );
    let closed = opened.elapsed();
    assert!(
        closed >= Duration::from_millis(1400) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );
    let h2_closed = h2_task.await.expect("h2 idle").duration_since(h2_opened);
    assert!(
        h2_closed >= Duration::from_millis(1400) && h2_closed < Duration::from_secs(3),
        "HTTP/2 tunnel closed after {h2_closed:?}"
    );
    busy_task.await.expect("the busy tunnel stayed open");
}

/// The config of the reload test, in `variant` (each differs from the
/// last in the group's settings and in a route of its own).
fn reload_config(backend: std::net::SocketAddr, variant: usize) -> String {
    let routes = format!(r#"(path: "/v{variant}", handler: Proxy(upstream: "app")), {ROUTES}"#);
    config(
        backend,
        &format!("read_timeout: \"{}s\"", 30 + variant),
        &routes,
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_100_websockets_exchange_messages_closes_none_and_loses_none() {
    const SOCKETS: usize = 100;
    const MESSAGES: usize = 200;
    const RELOADS: usize = 3;
    let b = EchoBackend::start(false).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, reload_config(b.addr, 0)).expect("write");
    let d = Arc::new(Daemon::start(&path));
    let mut socks = Vec::new();
    for i in 0..SOCKETS {
        // Half over HTTP/1.1, half over HTTP/2.
        let s = if i % 2 == 0 {
            AnyWs::H1(
                ws::connect(&format!("ws://{}/s{i}", d.addr))
                    .await
                    .expect("open")
                    .0,
            )
        } else {
            AnyWs::H2(
                ws::connect_h2(d.addr, &format!("/s{i}"))
                    .await
                    .expect("open")
                    .0,
            )
        };
        socks.push(s);
    }
    let reloaded = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for (i, mut s) in socks.into_iter().enumerate() {
        let (reloaded, sent) = (reloaded.clone(), sent.clone());
        clients.push(tokio::spawn(async move {
            // Until every reload is done, and at least MESSAGES.
            let mut n = 0;
            while n < MESSAGES || !reloaded.load(Ordering::Relaxed) {
                s.echo(&format!("socket {i} message {n}")).await;
                n += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            n
        }));
    }
    let reloader = {
        let (d, sent, backend) = (d.clone(), sent.clone(), b.addr);
        tokio::task::spawn_blocking(move || {
            for r in 1..=RELOADS {
                // Reload while messages flow.
                let before = sent.load(Ordering::Relaxed);
                while sent.load(Ordering::Relaxed) < before + 500 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                std::fs::write(&path, reload_config(backend, r)).expect("rewrite");
                d.signal(libc::SIGHUP);
                let done = crate::support::eventually_sync(Duration::from_secs(20), || {
                    d.logs().matches("upstreams changed").count() >= r
                });
                assert!(done, "reload {r} not done:\n{}", d.logs());
            }
        })
    };
    reloader.await.expect("reloads");
    reloaded.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        total += c.await.expect("a socket closed or lost a message");
    }
    assert!(total >= SOCKETS * MESSAGES);
    assert_eq!(
        b.accepted.load(Ordering::Relaxed),
        SOCKETS as u64,
        "no socket was reopened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_tunnels_up_to_its_deadline() {
    let b = EchoBackend::start(false).await;
    let (_dir, mut d) = start(b.addr, "", ROUTES, r#"drain_timeout: "2s""#);
    let (mut h1, _) = ws::connect(&format!("ws://{}/chat", d.addr))
        .await
        .expect("h1");
    let (mut h2, _) = ws::connect_h2(d.addr, "/chat").await.expect("h2");
    let started = Instant::now();
    d.signal(libc::SIGTERM);
    // Draining: the tunnels still carry messages.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws::echo_n(&mut h1, "draining", 3).await;
    ws::echo_n(&mut h2, "draining h2", 3).await;
    // Then the deadline closes them.
    assert_eq!(ws::next_data(&mut h1).await, None);
    assert_eq!(ws::next_data(&mut h2).await, None);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = d
            .wait(Duration::from_secs(10))
            .expect("troupe did not exit");
        (status, d.logs())
    })
    .await
    .expect("wait");
    assert_eq!(status.0.code(), Some(0));
    assert!(status.1.contains("connections cut"), "{}", status.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_that_closes_during_the_drain_lets_it_end_early() {
    let b = EchoBackend::start(false).await;
    let (_dir, mut d) = start(b.addr, "", ROUTES, r#"drain_timeout: "30s""#);
    let (mut sock, _) = ws::connect(&format!("ws://{}/chat", d.addr))
        .await
        .expect("open");
    let started = Instant::now();
    d.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws::echo_n(&mut sock, "draining", 3).await;
    // The drain is still waiting for this socket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(d.pid()), "exited with a tunnel open:\n{}", d.logs());
    sock.close(None).await.expect("close");
    drop(sock);
    let status = tokio::task::spawn_blocking(move || d.wait(Duration::from_secs(10)))
        .await
        .expect("wait")
        .expect("troupe did not exit once the tunnel closed");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// Whether `pid` still runs (a process that exited is a zombie until
/// reaped: state `Z`).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// The Autobahn suite's `wstest`, installed by `tests/ws/autobahn.sh`
/// when missing; `None` (the test skips, saying why) where there is no
/// Python 2.7 to run it.
pub(crate) fn wstest() -> Option<String> {
    let out = Command::new(repo_root().join("tests/ws/autobahn.sh"))
        .output()
        .expect("run tests/ws/autobahn.sh");
    if !out.status.success() {
        // Straight to stderr, past the harness's capture, so the skip
        // shows in the CI log although the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the Autobahn test suite (PyPI autobahntestsuite, Python 2.7 only) \
             could not be installed (tests/ws/autobahn.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Outcomes of an Autobahn case that are not failures: `NON-STRICT` (a
/// legal choice, such as closing on bad UTF-8 only once the message is
/// whole), `INFORMATIONAL`, and `UNIMPLEMENTED` (an optional extension).
fn passed_case(outcome: &str) -> bool {
    matches!(
        outcome,
        "OK" | "NON-STRICT" | "INFORMATIONAL" | "UNIMPLEMENTED"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autobahn_fuzzing_client_through_the_proxy_fails_no_case() {
    let Some(wstest) = tokio::task::spawn_blocking(wstest).await.expect("set-up") else {
        return;
    };
    let b = EchoBackend::start(false).await;
    let (dir, d) = start(b.addr, "", ROUTES, "");
    let url = format!("ws://{}/autobahn", d.addr);
    let cases = autobahn(&wstest, dir.path(), &url).await;
    println!("Autobahn: {cases} cases through the proxy");
}

/// Runs Autobahn's fuzzing client against the WebSocket at `url`, with
/// its spec and reports under `dir`: panics on any failed case, returns
/// how many ran.
pub(crate) async fn autobahn(wstest: &str, dir: &std::path::Path, url: &str) -> usize {
    let reports = dir.join("reports");
    let spec = dir.join("fuzzingclient.json");
    // Every case group but the performance ones (9.*: up to 16 MiB
    // messages, minutes in Python 2) and compression (12.*, 13.*: no
    // permessage-deflate, so all UNIMPLEMENTED).
    std::fs::write(
        &spec,
        serde_json::json!({
            "outdir": reports,
            "servers": [{"agent": "troupe", "url": url}],
            "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"],
            "exclude-cases": [],
            "exclude-agent-cases": {}
        })
        .to_string(),
    )
    .expect("spec");
    let out = tokio::task::spawn_blocking({
        let (dir, spec, wstest) = (dir.to_owned(), spec.clone(), wstest.to_owned());
        move || {
            run_within(
                Command::new(&wstest)
                    .args(["-m", "fuzzingclient", "-s"])
                    .arg(&spec)
                    .current_dir(&dir),
                Duration::from_secs(900),
            )
        }
    })
    .await
    .expect("wstest");
    let index = std::fs::read_to_string(reports.join("index.json"))
        .unwrap_or_else(|e| panic!("no report ({e}); wstest said:\n{out}"));
    let index: serde_json::Value = serde_json::from_str(&index).expect("index.json");
    let cases = index["troupe"].as_object().expect("the agent's cases");
    let failed: Vec<String> = cases
        .iter()
        .filter(|(_, r)| {
            !passed_case(r["behavior"].as_str().unwrap_or("?"))
                || !passed_case(r["behaviorClose"].as_str().unwrap_or("?"))
        })
        .map(|(case, r)| format!("{case}: {} / {}", r["behavior"], r["behaviorClose"]))
        .collect();
    assert!(cases.len() >= 240, "only {} cases ran:\n{out}", cases.len());
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    cases.len()
}

/// Runs `cmd` to its end (output captured), or kills it after `within`.
fn run_within(cmd: &mut Command, within: Duration) -> String {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wstest");
    let deadline = Instant::now() + within;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).to_string();
        s.chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    format!("{}{}", tail(&out.stdout), tail(&out.stderr))
}
