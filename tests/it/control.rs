//! `troupe -s quit|stop|reopen` (issue 5): the pid file, graceful and fast
//! shutdown by signal, and reopening the access log after logrotate moved
//! it. Errors name what is missing.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use crate::support::{
    daemon::{Daemon, bin},
    downloads::{setup, start_download},
    eventually_sync,
};

fn ctl(config: &Path, what: &str) -> Output {
    Command::new(bin())
        .arg("-c")
        .arg(config)
        .arg("-s")
        .arg(what)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config with a pid file and an access log file in `dir`.
fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(listen: ["127.0.0.1:0"], pid_file: "run/troupe.pid",
                 log: (access: File("access.log")),
                 servers: [(routes: [(path: "/{*p}", handler: Return(body: "hi"))])])"#,
    )
    .unwrap();
    std::fs::create_dir(dir.join("run")).unwrap();
    cfg
}

/// One request over a fresh connection; the raw response.
fn fetch(d: &Daemon, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

/// One request that must succeed.
fn get(d: &Daemon, path: &str) {
    let resp = fetch(d, path);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[test]
fn reopen_moves_the_access_log_and_quit_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut d = Daemon::start(&cfg);
    let pid_file = dir.path().join("run/troupe.pid");
    // Written once start-up is done, just after the port opens.
    assert!(eventually_sync(Duration::from_secs(5), || pid_file.exists()));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), d.pid().to_string());

    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    get(&d, "/before");
    assert!(eventually_sync(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/before"))
    }));
    // What logrotate does: move the file, then signal.
    std::fs::rename(&log, &rotated).unwrap();
    let out = ctl(&cfg, "reopen");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        d.wait_for_log("log files reopened", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
    get(&d, "/after");
    assert!(eventually_sync(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/after"))
    }));
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("/before") && !old.contains("/after"), "{old}");
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(!new.contains("/before"), "{new}");

    let out = ctl(&cfg, "quit");
    assert!(out.status.success(), "{}", stderr(&out));
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    assert_eq!(status.code(), Some(0));
    assert!(
        d.logs().contains("SIGQUIT: graceful shutdown"),
        "{}",
        d.logs()
    );
    assert!(!pid_file.exists(), "the pid file outlived the server");

    // Nothing runs now: the pid file is gone.
    let out = ctl(&cfg, "quit");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the pid file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stop_skips_the_drain() {
    let (dir, cfg) = setup("60s");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "Config(",
        r#"Config(pid_file: "troupe.pid", "#,
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let mut d = Daemon::start(&cfg);
    // A stalled download would hold a graceful shutdown for 60 s.
    let _stalled = start_download(&d);
    let start = Instant::now();
    let out = ctl(&cfg, "stop");
    assert!(out.status.success(), "{}", stderr(&out));
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    assert!(d.logs().contains("fast shutdown"), "{}", d.logs());
    assert!(!dir.path().join("troupe.pid").exists());
}

#[test]
fn signalling_without_a_server_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(listen: ["127.0.0.1:0"], servers: [(routes: [])])"#,
    )
    .unwrap();
    let out = ctl(&cfg, "reopen");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no `pid_file` is set"),
        "{}",
        stderr(&out)
    );

    let cfg = config(dir.path());
    let pid_file = dir.path().join("run/troupe.pid");
    std::fs::write(&pid_file, "not a number\n").unwrap();
    let out = ctl(&cfg, "quit");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected a process id"),
        "{}",
        stderr(&out)
    );

    // A stale pid file: a process that has exited.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
    let out = ctl(&cfg, "stop");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));

    // A config error is reported with its position, as everywhere.
    std::fs::write(&cfg, "Config(listen: [").unwrap();
    let out = ctl(&cfg, "quit");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("config.ron:1:"), "{}", stderr(&out));
}

#[test]
fn sigusr2_reloads_the_modules_whose_files_changed() {
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        std::fs::write(
            dir.path().join(format!("{name}.lua")),
            format!("function handle(req) return '{body}' end\n"),
        )
        .unwrap()
    };
    script("a", "a1");
    script("b", "b1");
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(listen: ["127.0.0.1:0"], log: (access: Off),
                 modules: [(name: "a", source: Lua("a.lua")), (name: "b", source: Lua("b.lua"))],
                 servers: [(routes: [(path: "/a", handler: Module("a")), (path: "/b", handler: Module("b"))])])"#,
    )
    .unwrap();
    let d = Daemon::start(&cfg);
    let body = |path: &str| {
        let resp = fetch(&d, path);
        resp.rsplit("\r\n\r\n").next().unwrap_or("").to_owned()
    };
    assert!(eventually_sync(Duration::from_secs(10), || body("/a") == "a1"));

    d.signal(libc::SIGUSR2);
    assert!(
        d.wait_for_log("SIGUSR2: no module file changed", Duration::from_secs(5)),
        "{}",
        d.logs()
    );

    script("a", "a2, edited");
    d.signal(libc::SIGUSR2);
    assert!(
        d.wait_for_log(
            "SIGUSR2: module reloaded (its file changed) module=\"a\"",
            Duration::from_secs(5)
        ),
        "{}",
        d.logs()
    );
    assert_eq!(body("/a"), "a2, edited");
    assert_eq!(body("/b"), "b1");
    assert!(!d.logs().contains("module=\"b\""), "{}", d.logs());

    // A broken edit is refused; the last good instance keeps serving.
    std::fs::write(
        dir.path().join("a.lua"),
        "function handle(req) return 'a3' \n",
    )
    .unwrap();
    d.signal(libc::SIGUSR2);
    assert!(
        d.wait_for_log("SIGUSR2: reload failed", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
    assert_eq!(body("/a"), "a2, edited");
}
