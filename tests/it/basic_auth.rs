//! `basic_auth`: HTTP Basic against a file the real `htpasswd` wrote
//! (Debian's apache2-utils, installed here if missing): bcrypt, apr1 and
//! SHA-1 entries; malformed `Authorization` headers; the file reloaded
//! when it changes; never the password in the logs; a missing file is a
//! config error naming it.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use http::StatusCode;

use crate::support::{
    client::{Resp, get_with},
    daemon::{self, Daemon},
    eventually,
    server::TestServer,
};

/// `htpasswd`, installed from Debian's apache2-utils if it is not there
/// (CI runs as root). Blocking.
fn htpasswd() -> &'static str {
    let have = || {
        Command::new("htpasswd")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !have() {
        crate::support::apt_install("apache2-utils");
    }
    assert!(
        have(),
        "`htpasswd` is missing and `apt-get install apache2-utils` failed"
    );
    "htpasswd"
}

/// Adds (or replaces) `user` in `file` with `htpasswd -b <flag>`,
/// creating the file with `create`.
fn add_user(file: &Path, flag: &str, user: &str, password: &str, create: bool) {
    let mut cmd = Command::new(htpasswd());
    cmd.arg(if create { "-cb" } else { "-b" });
    if !flag.is_empty() {
        cmd.arg(flag);
    }
    let out = cmd
        .arg(file)
        .arg(user)
        .arg(password)
        .output()
        .expect("run htpasswd");
    assert!(out.status.success(), "{out:?}");
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn get_as(url: &str, authorization: &str) -> Resp {
    get_with(url, &[("authorization", authorization)]).await
}

const CONFIG: &str = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(
        basic_auth: (realm: "Admin \"area\"", htpasswd: "users.htpasswd"),
        routes: [
            (path: "/admin", handler: Return(body: "welcome\n")),
            (path: "/open", handler: Return(body: "open\n"), basic_auth: (enabled: false)),
            (path: "/api", handler: Return(body: "api\n"),
             cors: (origins: ["https://app.example.com"], headers: ["authorization"])),
        ],
    )],
)"#;

fn users(dir: &Path) {
    let file = dir.join("users.htpasswd");
    add_user(&file, "-B", "bcrypt", "bcrypt pass", true);
    add_user(&file, "-m", "apr1", "apr1:pass", false);
    add_user(&file, "-s", "sha", "sha-pass", false);
}

#[tokio::test]
async fn users_of_every_hash_get_in_and_everyone_else_gets_401() {
    let dir = tempfile::tempdir().expect("dir");
    tokio::task::spawn_blocking({
        let d = dir.path().to_owned();
        move || users(&d)
    })
    .await
    .expect("htpasswd");
    let s = TestServer::start_in(dir, CONFIG).await;
    let url = s.url("/admin");

    for (user, password) in [
        ("bcrypt", "bcrypt pass"),
        ("apr1", "apr1:pass"),
        ("sha", "sha-pass"),
    ] {
        let r = get_as(&url, &basic(user, password)).await;
        assert_eq!(r.status, StatusCode::OK, "{user}");
        assert_eq!(r.text(), "welcome\n");
        let r = get_as(&url, &basic(user, "wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
    }

    let challenge = r#"Basic realm="Admin \"area\"", charset="UTF-8""#;
    let r = get_with(&url, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some(challenge));
    assert!(!r.text().contains("welcome"));
    for bad in [
        basic("nobody", "bcrypt pass"),
        "Basic !!!not base64!!!".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("sha")
        ),
        "Bearer c2hhOnNoYS1wYXNz".into(),
        "Basic".into(),
        "Basic c2hhOnNoYS1wYXNz trailing".into(),
    ] {
        let r = get_as(&url, &bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{bad}");
    }
    // Two Authorization headers, one good: refused.
    let good = basic("sha", "sha-pass");
    let r = get_with(&url, &[("authorization", &good), ("authorization", &good)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    assert_eq!(get_with(&s.url("/open"), &[]).await.status, StatusCode::OK);
    // A CORS preflight carries no credentials: answered before the 401.
    let r = crate::support::client::send(
        &crate::support::client::h1(),
        http::Request::builder()
            .method(http::Method::OPTIONS)
            .uri(s.url("/api"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .body(http_body_util::Full::default())
            .expect("request"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The 401 itself carries the grant, so the page can read it.
    let r = get_with(&s.url("/api"), &[("origin", "https://app.example.com")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_read_again_and_passwords_are_never_logged() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_owned();
    tokio::task::spawn_blocking({
        let d = d.clone();
        move || users(&d)
    })
    .await
    .expect("htpasswd");
    let config = d.join("config.ron");
    std::fs::write(&config, CONFIG).expect("config");
    let daemon = tokio::task::spawn_blocking({
        let c = config.clone();
        move || Daemon::start_logging(&c, "debug")
    })
    .await
    .expect("start");
    let url = format!("http://{}/admin", daemon.addr);
    let newcomer = basic("newcomer", "fresh secret");
    assert_eq!(
        get_as(&url, &newcomer).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_as(&url, &basic("apr1", "wrong one")).await.status,
        StatusCode::UNAUTHORIZED
    );

    let file = d.join("users.htpasswd");
    tokio::task::spawn_blocking({
        let f = file.clone();
        move || add_user(&f, "-B", "newcomer", "fresh secret", false)
    })
    .await
    .expect("htpasswd");
    assert!(
        eventually(Duration::from_secs(10), || async {
            get_as(&url, &newcomer).await.status == StatusCode::OK
        })
        .await,
        "the new user was never let in:\n{}",
        daemon.logs()
    );

    // A broken file is refused as a whole: the users in force stay.
    let refusals = || daemon.logs().matches("config reload refused").count();
    let before = refusals();
    std::fs::write(&file, "newcomer:plain-text\n").expect("write");
    assert!(
        crate::support::eventually_sync(Duration::from_secs(10), || refusals() > before),
        "{}",
        daemon.logs()
    );
    assert_eq!(get_as(&url, &newcomer).await.status, StatusCode::OK);

    let logs = daemon.logs();
    for secret in ["fresh secret", "wrong one", "apr1:pass", &newcomer[6..]] {
        assert!(!logs.contains(secret), "`{secret}` in the log:\n{logs}");
    }
    assert!(logs.contains("users.htpasswd"), "{logs}");
}

#[test]
fn a_missing_or_broken_file_is_a_config_error_naming_it() {
    let config = "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(routes: [\n        (path: \"/\", handler: Return(status: 200),\n         basic_auth: (htpasswd: \"missing.htpasswd\")),\n    ])],\n)\n";
    let (_dir, path, stderr) = crate::access::refused(config);
    let col = config
        .lines()
        .nth(4)
        .expect("line")
        .find("\"missing")
        .expect("col")
        + 1;
    assert!(stderr.contains(&format!("{path}:5:{col}: ")), "{stderr}");
    assert!(
        stderr.contains("missing.htpasswd") && stderr.contains("cannot be read"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("bad.htpasswd"),
        "ok:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\ndave:Kk14ZrfTEsxok\n",
    )
    .expect("write");
    let path = dir.path().join("c.ron");
    std::fs::write(&path, config.replace("missing", "bad")).expect("write");
    let (code, stderr) = daemon::check(&path);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("bad.htpasswd` line 2: user `dave`"),
        "{stderr}"
    );
}
