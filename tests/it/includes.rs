//! Issue 16: config includes on the real binary. The main config's
//! `include` paths and globs bring in fragment files (servers, upstreams,
//! zones, modules); an error in one names that file, line and column;
//! a glob matching nothing, a missing file and a cycle are refused; a
//! watching server reloads when an included file changes or a file
//! matching a glob appears.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::support::{
    daemon::{self, Daemon},
    eventually_sync,
};

/// The body `GET /` answers for `host`, or the status line when not 200.
fn get(addr: SocketAddr, host: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return "connect failed".into();
    };
    let _ = write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => body.to_owned(),
        _ => answer.lines().next().unwrap_or("").to_owned(),
    }
}

fn server(name: &str, body: &str) -> String {
    format!("(names: [\"{name}\"], routes: [(path: \"/\", handler: Return(body: \"{body}\"))])")
}

/// A directory with `config.ron` (`main`) and the given files.
fn setup(main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let cfg = dir.path().join("config.ron");
    std::fs::write(&cfg, main).unwrap();
    (dir, cfg)
}

fn main_with(include: &str) -> String {
    format!(
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    log: (access: Off),\n    include: [{include}],\n    servers: [{}],\n)\n",
        server("main.test", "main")
    )
}

/// `troupe -t` refuses the config; returns what it printed.
fn refused(cfg: &Path) -> String {
    let (code, stderr) = daemon::check(cfg);
    assert_eq!(code, Some(1), "{stderr}");
    stderr
}

#[test]
fn servers_and_upstreams_come_from_a_glob_and_a_listed_file() {
    let (dir, cfg) = setup(
        &main_with(r#""conf.d/*.ron", "upstreams.ron""#),
        &[
            (
                "conf.d/b.ron",
                &format!("(servers: [{}])", server("b.test", "from b")),
            ),
            (
                "conf.d/a.ron",
                // The upstream is defined in another file.
                "(servers: [(names: [\"a.test\"], routes: [\n    (path: \"/\", handler: Return(body: \"from a\")),\n    (path: \"/app\", handler: Proxy(upstream: \"app\")),\n])])",
            ),
            (
                "upstreams.ron",
                "(upstreams: {\"app\": (backends: [(addr: \"127.0.0.1:9\")])})",
            ),
            // Not matched by the glob.
            ("conf.d/notes.txt", "not RON"),
        ],
    );
    let d = Daemon::start(&cfg);
    assert_eq!(get(d.addr, "main.test"), "main");
    assert_eq!(get(d.addr, "a.test"), "from a");
    assert_eq!(get(d.addr, "b.test"), "from b");
    drop(dir);
}

#[test]
fn an_error_in_an_included_file_names_that_file_line_and_column() {
    // A compile error (meaning), found after the merge.
    let (_d1, cfg) = setup(
        &main_with(r#""conf.d/*.ron""#),
        &[(
            "conf.d/site.ron",
            "(servers: [\n  (names: [\"ok.test\"], routes: [\n    (path: \"/\", handler: Proxy(upstream: \"nowhere\")),\n  ]),\n])",
        )],
    );
    let out = refused(&cfg);
    let file = cfg.parent().unwrap().join("conf.d/site.ron");
    assert!(
        out.contains(&format!("{}:3:42: no upstream", file.display())),
        "{out}"
    );
    // A syntax error (an unknown key) in a fragment.
    let (_d2, cfg) = setup(
        &main_with(r#""extra.ron""#),
        &[("extra.ron", "(\n  servers: [],\n  listen: [],\n)")],
    );
    let out = refused(&cfg);
    let file = cfg.parent().unwrap().join("extra.ron");
    assert!(
        out.contains(&format!("{}:3:", file.display())) && out.contains("listen"),
        "{out}"
    );
    // The same name in two files.
    let (_d3, cfg) = setup(
        &main_with(r#""one.ron", "two.ron""#),
        &[
            ("one.ron", "(rate_zones: {\"z\": (rate: \"10r/s\")})"),
            ("two.ron", "(\n  rate_zones: {\"z\": (rate: \"5r/s\")},\n)"),
        ],
    );
    let out = refused(&cfg);
    let file = cfg.parent().unwrap().join("two.ron");
    assert!(
        out.contains(&format!(
            "{}:2:16: rate zone `z` is defined twice",
            file.display()
        )),
        "{out}"
    );
}

#[test]
fn a_glob_matching_nothing_a_missing_file_and_a_cycle_are_refused() {
    let (_d1, cfg) = setup(&main_with(r#""conf.d/*.ron""#), &[]);
    let out = refused(&cfg);
    assert!(
        out.contains(&format!(
            "{}:4:15: include `conf.d/*.ron` matches no file",
            cfg.display()
        )),
        "{out}"
    );

    let (_d2, cfg) = setup(&main_with(r#""missing.ron""#), &[]);
    let out = refused(&cfg);
    assert!(
        out.contains(&format!(
            "{}:4:15: cannot read the included file",
            cfg.display()
        )) && out.contains("missing.ron"),
        "{out}"
    );

    let (_d3, cfg) = setup(
        &main_with(r#""a.ron""#),
        &[
            ("a.ron", "(include: [\"b.ron\"])"),
            ("b.ron", "(\n  include: [\"a.ron\"],\n)"),
        ],
    );
    let out = refused(&cfg);
    let b = cfg.parent().unwrap().join("b.ron");
    assert!(
        out.contains(&format!("{}:2:13: include `a.ron` reaches", b.display()))
            && out.contains("include cycle"),
        "{out}"
    );

    // Including the main config back is a cycle too.
    let (_d4, cfg) = setup(&main_with(r#""config.ron""#), &[]);
    let out = refused(&cfg);
    assert!(out.contains("(the main config)"), "{out}");
}

#[test]
fn reloads_follow_included_files_and_new_files_matching_a_glob() {
    let main = main_with(r#""conf.d/*.ron""#).replace("log:", "watch: true,\n    log:");
    let (dir, cfg) = setup(
        &main,
        &[(
            "conf.d/a.ron",
            &format!("(servers: [{}])", server("a.test", "a one")),
        )],
    );
    let d = Daemon::start(&cfg);
    assert_eq!(get(d.addr, "a.test"), "a one");
    // An included file changes.
    std::fs::write(
        dir.path().join("conf.d/a.ron"),
        format!("(servers: [{}])", server("a.test", "a two")),
    )
    .unwrap();
    assert!(
        eventually_sync(Duration::from_secs(10), || get(d.addr, "a.test") == "a two"),
        "{}",
        d.logs()
    );
    // Edits right after a reload are seen too: the watch is updated in
    // place, never dropped and made again, so nothing written while the
    // last reload finishes is lost.
    for round in 0..5 {
        let body = format!("a edit {round}");
        std::fs::write(
            dir.path().join("conf.d/a.ron"),
            format!("(servers: [{}])", server("a.test", &body)),
        )
        .unwrap();
        assert!(
            eventually_sync(Duration::from_secs(10), || get(d.addr, "a.test") == body),
            "round {round}: {}",
            d.logs()
        );
    }
    // A new file matches the glob.
    std::fs::write(
        dir.path().join("conf.d/b.ron"),
        format!("(servers: [{}])", server("b.test", "b one")),
    )
    .unwrap();
    assert!(
        eventually_sync(Duration::from_secs(10), || get(d.addr, "b.test") == "b one"),
        "{}",
        d.logs()
    );
    // A broken included file is refused, naming it; the config serves on.
    std::fs::write(dir.path().join("conf.d/b.ron"), "(servers: [(routes: 3)])").unwrap();
    assert!(
        d.wait_for_log("b.ron:1:", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    assert_eq!(get(d.addr, "b.test"), "b one");
    assert_eq!(get(d.addr, "a.test"), "a edit 4");
}
