//! P3.3: `troupe -t` names the file, line and column of every kind of
//! mistake and says what was expected; `troupe -c` refuses to start with
//! the same message.

use std::process::Command;

use crate::support::daemon::bin;

struct Checked {
    code: Option<i32>,
    stderr: String,
}

fn check(args: &[&str], config: &str) -> (tempfile::TempDir, Checked) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin()).args(args).arg(&path).output().unwrap();
    let checked = Checked {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (dir, checked)
}

/// Asserts `-t` fails at `line:col` with a message containing `words`,
/// and that starting with the file fails the same way.
fn assert_error(config: &str, line: usize, col: usize, words: &str) {
    let (dir, t) = check(&["-t", "-c"], config);
    assert_eq!(t.code, Some(1), "{}", t.stderr);
    let at = format!("{}:{line}:{col}: ", dir.path().join("bad.ron").display());
    assert!(t.stderr.contains(&at), "expected `{at}` in:\n{}", t.stderr);
    assert!(
        t.stderr.contains(words),
        "expected `{words}` in:\n{}",
        t.stderr
    );
    let first_line = t.stderr.lines().next().unwrap().to_owned();

    let (_dir, run) = check(
        &["-c"],
        &config.replace("\"www\"", &format!("{:?}", dir.path().join("www"))),
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains(words), "start-up said:\n{}", run.stderr);
    assert!(first_line.contains(words));
}

const GOOD_HEAD: &str = "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(routes: [\n";

fn with_routes(routes: &str) -> String {
    format!("{GOOD_HEAD}{routes}\n    ])],\n)\n")
}

#[test]
fn syntax_error() {
    assert_error(
        "Config(\n    listen: [\"127.0.0.1:0\"\n    servers: [],\n)",
        3,
        5,
        "Expected",
    );
}

#[test]
fn unknown_key() {
    let cfg = "Config(\n    listen: [\"127.0.0.1:0\"],\n    lisen: [],\n    servers: [],\n)";
    assert_error(cfg, 3, 5, "Unexpected field named `lisen`");
}

#[test]
fn unknown_key_in_a_nested_block() {
    let cfg = with_routes("        (path: \"/\", handler: Return(body: \"x\", colour: 1)),");
    assert_error(
        &cfg,
        4,
        48,
        "Unexpected field named `colour` in `Return`, expected one of `status`",
    );
}

#[test]
fn wrong_type() {
    let cfg =
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    workers: \"many\",\n    servers: [],\n)";
    assert_error(cfg, 3, 13, "Expected integer");
}

#[test]
fn bad_listen_address() {
    let cfg = "Config(\n    listen: [\"localhost:eighty\"],\n    servers: [],\n)";
    assert_error(cfg, 2, 15, "invalid socket address");
}

#[test]
fn missing_static_root() {
    let cfg = with_routes("        (path: \"/{*p}\", handler: Static(root: \"no/such/dir\")),");
    assert_error(&cfg, 4, 47, "static root `no/such/dir` does not exist");
}

#[test]
fn duplicate_route() {
    let cfg = with_routes(
        "        (path: \"/a\", handler: Return(body: \"1\")),\n        (path: \"/a\", handler: Return(body: \"2\")),",
    );
    assert_error(&cfg, 5, 16, "duplicate route `/a`");
}

#[test]
fn invalid_regex() {
    let cfg = with_routes("        (regex: \"^/(unclosed\", handler: Return(body: \"x\")),");
    assert_error(&cfg, 4, 17, "invalid regex `^/(unclosed`");
}

#[test]
fn conflicting_params() {
    let cfg = with_routes(
        "        (path: \"/u/{a}\", handler: Return(body: \"1\")),\n        (path: \"/u/{b}\", handler: Return(body: \"2\")),",
    );
    let (_dir, t) = check(&["-t", "-c"], &cfg);
    assert_eq!(t.code, Some(1));
    assert!(t.stderr.contains("conflicting path"), "{}", t.stderr);
}

#[test]
fn unknown_module_and_bad_status_and_header() {
    let cfg = with_routes("        (path: \"/m\", handler: Module(\"nope\")),");
    assert_error(&cfg, 4, 38, "no module named `nope`");
    let cfg = with_routes("        (path: \"/r\", handler: Redirect(to: \"/x\", status: 200)),");
    assert_error(&cfg, 4, 44, "redirect status must be");
    let cfg =
        with_routes("        (path: \"/h\", handler: Return(headers: {\"bad header\": \"v\"})),");
    assert_error(&cfg, 4, 48, "invalid header name `bad header`");
}

#[test]
fn unreadable_file() {
    let out = Command::new(bin())
        .args(["-t", "-c", "/no/such/config.ron"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/no/such/config.ron: cannot read the file")
    );
}
