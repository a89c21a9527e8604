//! Issue 16: running under systemd. The readiness protocol on the real
//! binary, against a `NOTIFY_SOCKET` datagram socket the test owns
//! (READY=1 once the port accepts; RELOADING=1 and READY=1 around a
//! SIGHUP reload; STOPPING=1 on SIGTERM), and `systemd-analyze verify` on
//! the shipped unit `dist/troupe.service` where systemd-analyze exists.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::{daemon, repo_root};

/// The next datagram, as text (fails the test after 20 s).
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect right after READY=1");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// `troupe -c cfg`, told to notify the datagram socket at `sock`.
fn spawn(cfg: &std::path::Path, sock: &std::path::Path) -> std::process::Child {
    Command::new(daemon::bin())
        .arg("-c")
        .arg(cfg)
        .env("NOTIFY_SOCKET", sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn ready_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A port known before start, so the test can connect the moment
    // READY=1 arrives without reading the log.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = dir.path().join("config.ron");
    let config = |body: &str| {
        format!(
            r#"Config(listen: ["{addr}"], log: (access: Off), watch: false,
                servers: [(routes: [(path: "/", handler: Return(body: "{body}"))])])"#
        )
    };
    std::fs::write(&cfg, config("one")).unwrap();
    let mut child = spawn(&cfg, &sock_path);
    let pid = child.id() as i32;

    let first = next(&sock);
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // Ready means serving: the very next connect gets an answer.
    let answer = get(addr);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("one"),
        "{answer}"
    );

    std::fs::write(&cfg, config("two")).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloading = next(&sock);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1")
            && reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready = next(&sock);
    assert!(
        ready.lines().any(|l| l == "READY=1") && ready.contains("reload applied"),
        "{ready:?}"
    );
    // The reload is in force by the time READY=1 comes.
    assert!(get(addr).ends_with("two"));

    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let stopping = next(&sock);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_refused_reload_still_ends_with_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(listen: ["127.0.0.1:0"], log: (access: Off), watch: false,
            servers: [(routes: [(path: "/", handler: Return(body: "ok"))])])"#,
    )
    .unwrap();
    let mut child = spawn(&cfg, &sock_path);
    assert!(next(&sock).contains("READY=1"));
    std::fs::write(&cfg, "Config(listen: [").unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert!(next(&sock).contains("RELOADING=1"));
    // systemctl reload must not hang on a refused config.
    let ready = next(&sock);
    assert!(
        ready.contains("READY=1") && ready.contains("reload refused"),
        "{ready:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo_root().join("dist/troupe.service")).unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed (Debian: apt-get install systemd); skipped");
        return;
    };
    assert!(version.status.success());
    // verify checks that the binaries exist: point them at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("troupe.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/troupe", daemon::bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings: none may name the unit.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("troupe.service"))
        .collect();
    assert!(about_unit.is_empty(), "{stderr}");
}
