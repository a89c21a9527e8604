//! The command line: `--help`, `--version`, `-t`, and the supervision tree
//! in the start-up log.

use std::process::Command;

use crate::support::{
    daemon::{Daemon, bin},
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

/// The shipped config, moved to port 0 and pointed at the repo's `www/`.
pub fn shipped_config_on_port_0(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("config.ron")).unwrap();
    let www = repo_root().join("www");
    let text = text.replace("127.0.0.1:8080", "127.0.0.1:0").replace(
        "root: \"www\"",
        &format!("root: {:?}", www.display().to_string()),
    );
    let path = dir.join("config.ron");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_supervision_tree_is_logged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&shipped_config_on_port_0(dir.path()));
    let logs = d.logs();
    let tree: Vec<&str> = logs
        .lines()
        .skip_while(|l| !l.contains("supervision tree:"))
        .skip(1)
        .take(6)
        .collect();
    assert_eq!(tree.first().copied(), Some("troupe [Running]"), "{logs}");
    for child in [
        "config",
        "metrics",
        "router",
        "modules",
        "listener.127.0.0.1:",
    ] {
        let line = tree.iter().find(|l| l.contains(&format!("── {child}")));
        let line = line.unwrap_or_else(|| panic!("no {child} in the tree:\n{}", tree.join("\n")));
        assert!(line.ends_with("[Running]"), "{line}");
    }
}
