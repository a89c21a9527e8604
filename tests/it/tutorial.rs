//! Issue 10 §6: the tutorials of `plugins/README.md` cannot drift from the
//! code, because this builds and runs them as written.
//!
//! A fenced block right after `<!-- listing: LANG/NAME -->` is part of
//! LANG's tutorial: `build` is its build command, `check` the `troupe -t`
//! session, `session…` the commands and outputs shown once the server runs,
//! and any other NAME a file to save under that name. For each language
//! the files go into a temporary directory outside the repository, the
//! build runs there with `sh` and `TROUPE` set to this checkout, and the
//! real binary checks and serves the config; each `$ command` of a session
//! runs with `sh`, and what it prints must be what the guide shows under
//! it. `$TROUPE/target/release/troupe` is replaced by the binary under
//! test, and the tutorial's addresses by free ones.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::support::{
    daemon::{Daemon, bin},
    modules, repo_root,
};

/// Every marked block of the guide, in order: (LANG/NAME, text).
fn listings() -> Vec<(String, String)> {
    let guide = std::fs::read_to_string(repo_root().join("plugins/README.md")).expect("guide");
    let mut out = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- listing:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or("");
        assert!(
            fence.starts_with("```"),
            "`{line}` must be right before a fenced block, not `{fence}`"
        );
        let mut text = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            text.push_str(line);
            text.push('\n');
        }
        out.push((name.trim().to_owned(), text));
    }
    out
}

/// The tutorial's text, made to run here.
struct Subst {
    admin: String,
}

impl Subst {
    fn apply(&self, text: &str) -> String {
        text.replace("$TROUPE/target/release/troupe", bin())
            .replace("/path/to/troupe", &repo_root().display().to_string())
            // The server's own port is picked by the server (the daemon
            // reads it from the log); the admin port has to be known, as
            // `troupe module reload` reads it from the config.
            .replace("127.0.0.1:8080", "127.0.0.1:0")
            .replace("127.0.0.1:9901", &self.admin)
    }
}

/// A loopback address nothing listens on right now.
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

fn sh(dir: &Path, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-euc")
        .arg(script)
        .current_dir(dir)
        .env("TROUPE", repo_root());
    cmd
}

/// Lines as a person reads them: no `\r` (HTTP headers), no trailing
/// blanks or empty lines.
fn normalized(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_owned()
}

/// Runs each `$ command` of a console block in `dir`, and compares what
/// it prints (stdout; stderr too for `troupe` itself, which reports
/// there) with the lines under it.
fn run_session(dir: &Path, name: &str, block: &str, subst: &Subst, server: &str) {
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_owned(), String::new())),
            None => {
                let (_, expected) = steps
                    .last_mut()
                    .unwrap_or_else(|| panic!("{name}: output before any command: {line}"));
                expected.push_str(line);
                expected.push('\n');
            }
        }
    }
    assert!(!steps.is_empty(), "{name}: no command");
    for (cmd, expected) in steps {
        let mut script = subst.apply(&cmd).replace("127.0.0.1:0", server);
        if cmd.starts_with("$TROUPE/target/release/troupe") {
            script = format!("{{ {script} ; }} 2>&1");
        }
        let out = sh(dir, &script).output().expect("run sh");
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            normalized(&got),
            normalized(&expected),
            "{name}: `{cmd}` printed something else (stderr: {})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Builds, checks, serves and tries LANG's tutorial.
fn tutorial(lang: &str) {
    // The components' tools and the workspace's release build of
    // troupe-componentize come with the examples.
    modules::dir();
    let all: Vec<(String, String)> = listings()
        .into_iter()
        .filter_map(|(name, text)| {
            name.strip_prefix(&format!("{lang}/"))
                .map(|rest| (rest.to_owned(), text))
        })
        .collect();
    let block = |name: &str| all.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(
        !dir.path().starts_with(repo_root()),
        "the tutorial must build outside the repository"
    );
    let subst = Subst { admin: free_addr() };

    let mut config: Option<PathBuf> = None;
    for (name, text) in &all {
        if name == "build" || name == "check" || name.starts_with("session") {
            continue;
        }
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, subst.apply(text)).expect("write listing");
        if name.ends_with(".ron") {
            assert!(config.is_none(), "{lang}: more than one config");
            config = Some(path);
        }
    }
    let config = config.unwrap_or_else(|| panic!("{lang}: the guide has no config listing"));

    if let Some(build) = block("build") {
        let mut cmd = sh(dir.path(), &subst.apply(build));
        if lang == "rust" {
            // The config names target/release/libmine_rs.so, as a fresh
            // crate puts it; the suite's own target dir would move it.
            cmd.env_remove("CARGO_TARGET_DIR");
        }
        let out = cmd.output().expect("run the build");
        assert!(
            out.status.success(),
            "{lang}: the documented build failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let check = block("check").unwrap_or_else(|| panic!("{lang}: no `check` listing"));
    run_session(dir.path(), &format!("{lang}/check"), check, &subst, "");

    let daemon = Daemon::start(&config);
    assert!(
        daemon.wait_for_log("module loaded", Duration::from_secs(20)),
        "{lang}: the module never loaded:\n{}",
        daemon.logs()
    );
    let server = daemon.addr.to_string();
    let mut sessions = 0;
    for (name, text) in &all {
        if name.starts_with("session") {
            run_session(dir.path(), &format!("{lang}/{name}"), text, &subst, &server);
            sessions += 1;
        }
    }
    assert!(sessions > 0, "{lang}: no session listing");
}

#[test]
fn the_c_tutorial_builds_and_answers_as_written() {
    tutorial("c");
}

#[test]
fn the_rust_tutorial_builds_and_answers_as_written() {
    tutorial("rust");
}

#[test]
fn the_lua_tutorial_runs_and_answers_as_written() {
    tutorial("lua");
}

#[test]
fn the_webassembly_tutorial_builds_and_answers_as_written() {
    tutorial("wasm");
}

#[test]
fn every_tutorial_is_marked_for_this_test() {
    let names: Vec<String> = listings().into_iter().map(|(n, _)| n).collect();
    for lang in ["c", "rust", "lua", "wasm"] {
        for part in ["check", "session"] {
            assert!(
                names.iter().any(|n| n == &format!("{lang}/{part}")),
                "plugins/README.md has no `<!-- listing: {lang}/{part} -->`"
            );
        }
    }
}
