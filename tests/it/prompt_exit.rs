//! Issue 16: an idle server exits promptly once a graceful stop is
//! handled, with the parts that own threads and timers running (the
//! access-log writer thread, the config watcher, an upstream's health
//! checks, a Lua module, the admin API).

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::support::{daemon::Daemon, modules};

/// Well under the 1.8 s the issue saw, and well over a healthy exit
/// (tens of milliseconds on a debug build).
const BOUND: Duration = Duration::from_millis(500);

fn config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: File("access.log")),
    admin: (listen: "127.0.0.1:0"),
    watch: true,
    modules: [(name: "hello", source: Lua({}))],
    upstreams: {{ "app": (backends: [(addr: "127.0.0.1:9")],
        health: (check: (probe: Tcp, interval: "100ms", timeout: "500ms"))) }},
    servers: [(routes: [
        (path: "/lua", handler: Module("hello")),
        (path: "/app", handler: Proxy(upstream: "app")),
        (path: "/", handler: Return(body: "ok")),
    ])],
)"#,
            modules::lua("examples/hello.lua")
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// Starts the server, serves one request on each kind of route, waits
/// until it is idle, then times the stop from the signal to the exit.
fn stop_with(sig: i32, name: &str) {
    let (_dir, cfg) = config();
    let mut d = Daemon::start(&cfg);
    for path in ["/", "/lua", "/app"] {
        let mut s = TcpStream::connect(d.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 "), "{path}: {answer}");
    }
    // Idle: the requests are done and the health checks have run.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    d.signal(sig);
    assert!(
        d.wait_for_log(
            &format!("{name}: graceful shutdown"),
            Duration::from_secs(5)
        ),
        "{}",
        d.logs()
    );
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    let took = start.elapsed();
    assert_eq!(status.code(), Some(0), "{}", d.logs());
    assert!(
        took < BOUND,
        "{name}: exited {took:?} after the signal\n{}",
        d.logs()
    );
}

#[test]
fn an_idle_server_exits_promptly_on_sigterm() {
    stop_with(libc::SIGTERM, "SIGTERM");
}

#[test]
fn an_idle_server_exits_promptly_on_sigquit() {
    stop_with(libc::SIGQUIT, "SIGQUIT");
}
