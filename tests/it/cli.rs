//! The command line: `--help`, `--version`, `-t`, and the supervision tree
//! in the start-up log.

use std::process::Command;

use crate::support::{
    daemon::{Daemon, bin},
    modules::shipped_config,
    repo_root,
};

#[test]
fn help_and_version() {
    let help = Command::new(bin()).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["-c, --config <FILE>", "-t, --test", "--version"] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
    let version = Command::new(bin()).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("troupe {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn dash_t_accepts_the_shipped_config_quietly() {
    crate::support::modules::dir();
    let out = Command::new(bin())
        .args(["-t", "-c"])
        .arg(repo_root().join("config.ron"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("test is successful"), "{err}");
    for alarming in ["error", "warn", "WARN", "ERROR"] {
        assert!(!err.contains(alarming), "{err}");
    }
}

#[test]
fn the_supervision_tree_is_logged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&shipped_config(dir.path()));
    // The tree is logged once it has settled, which can be after the
    // listener's line while modules load.
    d.wait_for_log("troupe started", std::time::Duration::from_secs(10));
    let logs = d.logs();
    let tree: Vec<&str> = logs
        .lines()
        .skip_while(|l| !l.contains("supervision tree:"))
        .skip(1)
        // The last child's children are indented with spaces.
        .take_while(|l| l.starts_with("troupe") || l.starts_with(['├', '│', '└', ' ']))
        .collect();
    assert_eq!(tree.first().copied(), Some("troupe [Running]"), "{logs}");
    for child in [
        "config",
        "limits",
        "cache",
        "metrics",
        "router",
        "modules",
        "plugin.hello_c",
        "plugin.hello_rust",
        "plugin.hello_lua",
        "plugin.hello_wasm",
        "plugin.api_key",
        "plugin.request_logger",
        "listener.127.0.0.1:",
        "upstreams",
        "upstream.app",
    ] {
        let line = tree.iter().find(|l| l.contains(&format!("── {child}")));
        let line =
            line.unwrap_or_else(|| panic!("no {child} in the tree; the daemon said:\n{logs}"));
        assert!(line.ends_with("[Running]"), "{line}");
    }
}

/// Runs the binary with `RUST_LOG` unset on a config whose `log` block is
/// `log`, sends it one request, stops it, and returns (stdout, stderr).
fn run_once(log: &str) -> (String, String) {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.ron");
    std::fs::write(
        &cfg,
        format!(
            r#"Config(listen: ["127.0.0.1:{port}"], log: {log},
                 servers: [(routes: [(path: "/", handler: Return(body: "x"))])])"#
        ),
    )
    .unwrap();
    let child = Command::new(bin())
        .arg("-c")
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut answered = false;
    while !answered && std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            answered = out.starts_with("HTTP/1.1 200");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert!(answered, "troupe never answered");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn logs_with_level(level: &str) -> String {
    run_once(&format!(r#"(level: "{level}", access: Off)"#)).1
}

#[test]
fn the_access_log_goes_to_stdout_by_default() {
    let (stdout, _) = run_once("()");
    let line = stdout.lines().next().unwrap_or_default();
    assert!(line.starts_with("127.0.0.1 - - ["), "{stdout}");
    assert!(
        line.contains("\"GET /?q=1 HTTP/1.1\" 200 1 \"-\" \"-\""),
        "{line}"
    );
}

#[test]
fn the_error_log_level_comes_from_the_config() {
    let info = logs_with_level("info");
    assert!(info.contains("supervision tree:"), "{info}");
    let warn = logs_with_level("warn");
    assert!(!warn.contains("supervision tree:"), "{warn}");
    assert!(!warn.contains(" INFO "), "{warn}");
}

/// What `cargo install` gives (the binary alone, on PATH, far from this
/// tree) runs the README's "Using it" commands by name: check, run,
/// reload and quit by `-s`. Building the `dist` profile itself is a
/// second release build, too long for CI (measured by hand: BENCHMARKS).
#[test]
fn the_binary_on_path_runs_the_usage_commands_away_from_the_source_tree() {
    let home = tempfile::tempdir().unwrap();
    let bin_dir = home.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::copy(bin(), bin_dir.join("troupe")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let site = home.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let port = crate::support::nginx::free_addr().port();
    std::fs::write(
        site.join("config.ron"),
        format!(
            "Config(\n  listen: [\"127.0.0.1:{port}\"],\n  pid_file: \"troupe.pid\",\n  servers: [(routes: [(path: \"/\", handler: Return(body: \"installed\\n\"))])],\n)\n"
        ),
    )
    .unwrap();
    let troupe = |args: &[&str]| {
        let mut cmd = Command::new("troupe");
        cmd.args(args)
            .current_dir(&site)
            .env("PATH", &path)
            .env_remove("RUST_LOG");
        cmd
    };
    let out = troupe(&["-t", "-c", "config.ron"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut server = troupe(&["-c", "config.ron"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = || {
        let out = Command::new("curl")
            .args(["-s", "-m", "5"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let up = crate::support::eventually_sync(std::time::Duration::from_secs(20), || {
        get() == "installed\n" && site.join("troupe.pid").exists()
    });
    assert!(up, "the installed binary did not serve");
    let reload = troupe(&["-s", "reload", "-c", "config.ron"])
        .output()
        .unwrap();
    assert!(reload.status.success(), "{reload:?}");
    assert_eq!(get(), "installed\n");
    let quit = troupe(&["-s", "quit", "-c", "config.ron"])
        .output()
        .unwrap();
    assert!(quit.status.success(), "{quit:?}");
    let stopped = crate::support::eventually_sync(
        std::time::Duration::from_secs(10),
        || matches!(server.try_wait(), Ok(Some(s)) if s.success()),
    );
    if !stopped {
        let _ = server.kill();
    }
    assert!(stopped, "`troupe -s quit` did not stop it");
}
