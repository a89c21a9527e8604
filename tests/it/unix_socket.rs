//! Issue 16: Unix domain socket listeners on the real binary. A socket
//! serves HTTP/1.1 and h2c (curl `--unix-socket`) with its configured
//! mode; its clients count as 127.0.0.1, so `trusted_proxies` decides
//! whether a proxy's `X-Forwarded-For` names the client; nginx in front
//! (`proxy_pass http://unix:`) reaches it; a stale socket file is
//! replaced while a live socket or a plain file refuses the start; a
//! reload adds and removes sockets, and sets a kept one's new mode, and
//! the shutdown removes their files;
//! bad listen options are refused with their position.

use std::{
    os::unix::{
        fs::{FileTypeExt, MetadataExt, PermissionsExt},
        net::UnixListener,
    },
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use crate::support::{
    daemon::{self, Daemon},
    eventually_sync, nginx,
};

/// A config listening on loopback TCP and on `sockets`, with one route
/// that lets in only 203.0.113.0/24 and one open to all.
fn config(sockets: &[String], trusted: bool) -> String {
    let listen: Vec<String> = std::iter::once("\"127.0.0.1:0\"".to_owned())
        .chain(sockets.iter().map(|s| format!("\"{s}\"")))
        .collect();
    let trusted = if trusted { "\"127.0.0.1\"" } else { "" };
    format!(
        r#"Config(
    listen: [{}],
    log: (access: Off),
    trusted_proxies: [{trusted}],
    servers: [(routes: [
        (path: "/hello", handler: Return(body: "hello over $scheme\n")),
        (path: "/doc", handler: Return(body: "the doc\n"),
         access: [Allow("203.0.113.0/24"), Deny("all")]),
    ])],
)
"#,
        listen.join(", ")
    )
}

fn setup(sockets: &[&str], trusted: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sockets: Vec<String> = sockets
        .iter()
        .map(|s| s.replace("DIR", &dir.path().display().to_string()))
        .collect();
    let cfg = dir.path().join("config.ron");
    std::fs::write(&cfg, config(&sockets, trusted)).unwrap();
    (dir, cfg)
}

/// curl over the socket at `sock`, with `args` before the URL.
fn curl(sock: &Path, args: &[&str], path: &str) -> Output {
    Command::new("curl")
        .args(["-s", "-m", "10", "--unix-socket"])
        .arg(sock)
        .args(args)
        .arg(format!("http://troupe.test{path}"))
        .output()
        .expect("run curl")
}

fn body(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_unix_socket_serves_http1_and_h2c_with_its_mode_and_a_local_peer() {
    let (dir, cfg) = setup(&["unix:DIR/troupe.sock mode=660"], true);
    let sock = dir.path().join("troupe.sock");
    let d = Daemon::start(&cfg);
    assert!(
        d.logs()
            .contains(&format!("listening addr=unix:{}", sock.display())),
        "{}",
        d.logs()
    );
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    assert_eq!(body(&curl(&sock, &[], "/hello")), "hello over http\n");
    // Two requests on one connection, then HTTP/2 with prior knowledge.
    let out = curl(
        &sock,
        &["-w", "%{num_connects} %{http_version}\\n"],
        "/hello",
    );
    assert!(body(&out).ends_with("1 1.1\n"), "{}", body(&out));
    let out = curl(
        &sock,
        &["--http2-prior-knowledge", "-w", "%{http_version}\\n"],
        "/hello",
    );
    assert_eq!(body(&out), "hello over http\n2\n");

    // The client is 127.0.0.1, trusted here: the proxy's header names it.
    let code = |args: &[&str]| {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        body(&curl(&sock, &all, "/doc"))
    };
    assert_eq!(code(&[]), "403", "127.0.0.1 is not in 203.0.113.0/24");
    assert_eq!(code(&["-H", "X-Forwarded-For: 203.0.113.9"]), "200");
    assert_eq!(code(&["-H", "X-Forwarded-For: 198.51.100.1"]), "403");
}

#[test]
fn an_untrusted_socket_peer_cannot_name_the_client() {
    let (dir, cfg) = setup(&["unix:DIR/troupe.sock"], false);
    let sock = dir.path().join("troupe.sock");
    let _d = Daemon::start(&cfg);
    let out = curl(
        &sock,
        &[
            "-H",
            "X-Forwarded-For: 203.0.113.9",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
        "/doc",
    );
    assert_eq!(body(&out), "403");
}

#[test]
fn nginx_in_front_reaches_troupe_over_its_socket() {
    let Some(bin) = nginx::binary() else {
        panic!("nginx is not installed and could not be installed");
    };
    let (dir, cfg) = setup(&["unix:DIR/troupe.sock"], true);
    let sock = dir.path().join("troupe.sock");
    let _d = Daemon::start(&cfg);
    let front = nginx::free_addr();
    let _nginx = nginx::Nginx::start(
        &bin,
        |_| {
            format!(
                "server {{ listen {front}; location / {{ proxy_pass http://unix:{}:; \
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }}",
                sock.display()
            )
        },
        front,
    );
    let get = |path: &str, xff: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-m", "10", "-w", "%{http_code}"]);
        if let Some(xff) = xff {
            cmd.args(["-H", &format!("X-Forwarded-For: {xff}")]);
        }
        body(&cmd.arg(format!("http://{front}{path}")).output().unwrap())
    };
    assert_eq!(get("/hello", None), "hello over http\n200");
    // nginx appends its peer (127.0.0.1, trusted too): the right-most
    // untrusted address is the one the client sent.
    assert_eq!(get("/doc", Some("203.0.113.9")), "the doc\n200");
    assert!(get("/doc", None).ends_with("403"));
}

#[test]
fn a_stale_socket_file_is_replaced_but_a_live_socket_or_a_file_refuses_the_start() {
    let (dir, cfg) = setup(&["unix:DIR/troupe.sock"], false);
    let sock = dir.path().join("troupe.sock");
    // Left by a process that died: bound, then closed without unlinking.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let mut d = Daemon::start(&cfg);
    assert_eq!(body(&curl(&sock, &[], "/hello")), "hello over http\n");
    // A graceful stop removes the file.
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(!sock.exists(), "the socket file outlived the server");

    let refused = |why: &str| {
        let out = Command::new(daemon::bin())
            .arg("-c")
            .arg(&cfg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started over {why}");
        assert!(
            stderr.contains(&format!("unix:{}", sock.display())) && stderr.contains(why),
            "{stderr}"
        );
    };
    let live = UnixListener::bind(&sock).unwrap();
    refused("another process is listening on it");
    assert!(sock.exists(), "a live socket's file is left alone");
    drop(live);
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, "not a socket").unwrap();
    refused("not a socket");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "not a socket");
}

#[test]
fn a_reload_adds_and_removes_sockets() {
    let (dir, cfg) = setup(&["unix:one.sock"], false);
    let (one, two) = (dir.path().join("one.sock"), dir.path().join("two.sock"));
    let d = Daemon::start(&cfg);
    // A relative path starts at the config's directory.
    assert_eq!(body(&curl(&one, &[], "/hello")), "hello over http\n");

    std::fs::write(&cfg, config(&["unix:two.sock mode=600".into()], false)).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        eventually_sync(Duration::from_secs(10), || two.exists() && !one.exists()),
        "{}",
        d.logs()
    );
    assert_eq!(body(&curl(&two, &[], "/hello")), "hello over http\n");
    let mode = std::fs::metadata(&two).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        d.logs()
            .contains(&format!("no longer listening on unix:{}", one.display())),
        "{}",
        d.logs()
    );

    // Only the mode changes: the socket is kept (the same file) and gets
    // the new bits.
    let inode = std::fs::metadata(&two).unwrap().ino();
    std::fs::write(&cfg, config(&["unix:two.sock mode=640".into()], false)).unwrap();
    d.signal(libc::SIGHUP);
    let bits = || std::fs::metadata(&two).unwrap().permissions().mode() & 0o777;
    assert!(
        eventually_sync(Duration::from_secs(10), || bits() == 0o640),
        "{:o}\n{}",
        bits(),
        d.logs()
    );
    assert_eq!(std::fs::metadata(&two).unwrap().ino(), inode);
    assert_eq!(body(&curl(&two, &[], "/hello")), "hello over http\n");
    assert!(d.logs().contains("has mode 640"), "{}", d.logs());
}

#[test]
fn bad_listen_options_are_refused_with_their_position() {
    for (listen, says) in [
        ("unix:", "names no socket path"),
        ("unix:/tmp/t.sock tls", "`tls` is for TCP addresses"),
        ("127.0.0.1:0 mode=600", "`mode` is for Unix sockets"),
        ("unix:/tmp/t.sock mode=999", "invalid mode `999`"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.ron");
        std::fs::write(
            &cfg,
            format!(
                "Config(\n  listen: [\"{listen}\"],\n  servers: [(routes: [(path: \"/\", handler: Return(body: \"x\"))])],\n)\n"
            ),
        )
        .unwrap();
        let (code, stderr) = daemon::check(&cfg);
        assert_eq!(code, Some(1), "{listen}: {stderr}");
        let at = format!("{}:2:", cfg.display());
        assert!(
            stderr.contains(&at) && stderr.contains(says),
            "{listen}: {stderr}"
        );
    }
}
