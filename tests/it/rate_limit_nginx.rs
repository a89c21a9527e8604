//! Rate limits against nginx's `limit_req` (issue 14): the same request
//! sequences go to the local nginx and to Troupe, configured alike, and
//! must get the same answers (and, when delayed, about the same waits).
//!
//! nginx is installed from Debian (`nginx-light`) when missing
//! (`support/nginx.rs`); without it the test says so loudly and passes,
//! as the ACME tests do without pebble.

use std::{net::SocketAddr, time::Duration};

use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::support::{
    nginx::{self, Nginx},
    server::TestServer,
};

/// nginx with the same zones, serving files that stand for Troupe's
/// `Return` routes (nginx's `return` runs before `limit_req`).
fn start_nginx(bin: &str) -> (Nginx, SocketAddr) {
    let addr = nginx::free_addr();
    let http = |dir: &std::path::Path| {
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        for f in ["nodelay", "delay"] {
            std::fs::write(www.join(f), "ok\n").unwrap();
        }
        format!(
            r#"    limit_req_zone $binary_remote_addr zone=nd:1m rate=2r/s;
    limit_req_zone $binary_remote_addr zone=dl:1m rate=10r/s;
    limit_req_status 429;
    server {{
        listen {addr};
        root {www};
        location = /nodelay {{ limit_req zone=nd burst=3 nodelay; }}
        location = /delay {{ limit_req zone=dl burst=3; }}
    }}"#,
            www = www.display()
        )
    };
    (Nginx::start(bin, http, addr), addr)
}

/// `GET path` on its own connection: the status and how long it took.
async fn hit(to: SocketAddr, path: &str) -> (u16, Duration) {
    let start = std::time::Instant::now();
    let mut s = TcpStream::connect(to).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let text = crate::support::client::read_until_close(&mut s, Duration::from_secs(10)).await;
    let status = crate::support::client::status_of(&text).unwrap_or(0);
    (status, start.elapsed())
}

/// What one server answered to the whole sequence.
#[derive(Debug)]
struct Answers {
    /// Eight requests one after the other, within a burst of 3 (`nodelay`).
    back_to_back: Vec<u16>,
    /// Eight more after 1.1 s: what the bucket leaked in that time.
    after_a_pause: Vec<u16>,
    /// Eight at once to the delaying zone: (status, time), sorted.
    at_once: Vec<(u16, Duration)>,
}

async fn sequence(to: SocketAddr) -> Answers {
    let mut back_to_back = Vec::new();
    for _ in 0..8 {
        back_to_back.push(hit(to, "/nodelay").await.0);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut after_a_pause = Vec::new();
    for _ in 0..8 {
        after_a_pause.push(hit(to, "/nodelay").await.0);
    }
    let mut at_once = futures_util::future::join_all((0..8).map(|_| hit(to, "/delay"))).await;
    at_once.sort();
    Answers {
        back_to_back,
        after_a_pause,
        at_once,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_as_nginx_limit_req_does() {
    let Some(bin) = tokio::task::spawn_blocking(nginx::binary).await.unwrap() else {
        eprintln!(
            "\n*** SKIPPED limits_answer_as_nginx_limit_req_does: nginx is not installed and \
             `apt-get install -y nginx-light` failed ***\n"
        );
        return;
    };
    let (_nginx, nginx_addr) = start_nginx(&bin);
    let troupe = TestServer::start(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    rate_zones: {
        "nd": (rate: "2r/s"),
        "dl": (rate: "10r/s"),
    },
    servers: [( routes: [
        (path: "/nodelay", handler: Return(body: "ok\n"),
         rate_limits: [(zone: "nd", burst: 3, nodelay: true)]),
        (path: "/delay", handler: Return(body: "ok\n"),
         rate_limits: [(zone: "dl", burst: 3)]),
    ] )],
)"#,
    )
    .await;
    let theirs = sequence(nginx_addr).await;
    let ours = sequence(troupe.addr).await;
    eprintln!("nginx:  {theirs:?}\ntroupe: {ours:?}");
    // The burst, the refusals and the leak are nginx's, request for
    // request.
    assert_eq!(
        theirs.back_to_back,
        [200, 200, 200, 200, 429, 429, 429, 429]
    );
    assert_eq!(ours.back_to_back, theirs.back_to_back);
    assert_eq!(ours.after_a_pause, theirs.after_a_pause, "{theirs:?}");
    let statuses = |a: &Answers| a.at_once.iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(statuses(&ours), statuses(&theirs), "{ours:?} {theirs:?}");
    // Delayed requests wait about as long: one per 100 ms.
    let served = |a: &Answers| {
        a.at_once
            .iter()
            .filter(|x| x.0 == 200)
            .map(|x| x.1)
            .collect::<Vec<_>>()
    };
    let mut waits_ours = served(&ours);
    let mut waits_theirs = served(&theirs);
    waits_ours.sort();
    waits_theirs.sort();
    for (o, t) in waits_ours.iter().zip(&waits_theirs) {
        let gap = o.abs_diff(*t);
        assert!(
            gap < Duration::from_millis(150),
            "ours {waits_ours:?} theirs {waits_theirs:?}"
        );
    }
}
