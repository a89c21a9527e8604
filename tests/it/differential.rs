//! The differential test of issue 14: the raw requests of
//! `tests/strict/payloads.py` (the RFC cases, and the kinds of payload
//! HTTP Garden collected) go to Troupe, to the local nginx (proxying to
//! a `return 200` server of its own, so it reads every body), and to h11
//! (a strict RFC 9112 parser), by `tests/strict/differential.py`, which
//! says accept / reject / incomplete / error for each.
//!
//! Where Troupe disagrees with both, it is a bug, unless it is one of
//! [`STRICTER`], each refused on an RFC ground the other two relax.
//! Troupe never answers 5xx, and accepts every well-formed case. Where
//! nginx and h11 disagree, docs/strict-http.md says which Troupe follows.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::support::{
    eventually_sync,
    strict::{Strict, python_path, run_python},
};

/// Payloads Troupe refuses although nginx and h11 both let them by, and
/// why the refusal is right.
const STRICTER: &[(&str, &str)] = &[
    (
        "host_userinfo",
        "RFC 9110 §7.2: Host is uri-host [\":\" port], no userinfo; RFC 9112 §3.2: \
         an invalid Host MUST get 400",
    ),
    (
        "value_ctl",
        "RFC 9110 §5.5: a CTL is not a field-vchar; the http crate refuses it \
         (recipients MAY keep it, and MAY refuse)",
    ),
    (
        "value_del",
        "RFC 9110 §5.5: DEL is not a field-vchar either (same as value_ctl)",
    ),
    (
        "chunk_last_bare_lf",
        "RFC 9112 §7.1: chunk lines end in CRLF; bare LF in chunked framing is \
         where parsers split (HTTP Garden), and h11 refuses it in the other chunk lines",
    ),
];

/// nginx on two loopback ports: the front proxies to the back, which
/// answers 200 (and reads and drops the body).
struct Nginx {
    child: Child,
    front: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The nginx binary: on PATH or in /usr/sbin, else Debian's nginx-light
/// installed now (CI runs as root); `None` when that fails too.
fn nginx_binary() -> Option<String> {
    let find = || {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .map(str::to_owned)
    };
    if let Some(found) = find() {
        return Some(found);
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg(
            "apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive \
             apt-get -o DPkg::Lock::Timeout=300 install -y -qq nginx-light",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    find()
}

fn start_nginx(bin: &str) -> Nginx {
    let dir = tempfile::tempdir().expect("tempdir");
    let (front, back) = (free_port(), free_port());
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
         server {{ listen {front}; location / {{ proxy_pass http://{back}; }} }}\n\
         server {{ listen {back}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let child = Command::new(bin)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    assert!(
        eventually_sync(Duration::from_secs(10), || std::net::TcpStream::connect(
            front
        )
        .is_ok()),
        "nginx did not start: {}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );
    Nginx {
        child,
        front,
        _dir: dir,
    }
}

fn verdict(r: &serde_json::Value, party: &str) -> String {
    r[party]["verdict"].as_str().unwrap_or("?").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troupe_agrees_with_nginx_or_h11_on_every_payload() {
    let Some(path) = tokio::task::spawn_blocking(python_path)
        .await
        .expect("set-up")
    else {
        return;
    };
    let Some(bin) = tokio::task::spawn_blocking(nginx_binary)
        .await
        .expect("set-up")
    else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no nginx (not installed, and apt-get install nginx-light failed)"
        );
        return;
    };
    let nginx = start_nginx(&bin);
    let srv = Strict::start().await;
    let args = vec![
        format!("troupe={}", srv.troupe.addr),
        format!("nginx={}", nginx.front),
    ];
    let results = tokio::task::spawn_blocking(move || run_python(&path, "differential.py", &args))
        .await
        .expect("differential.py");
    assert!(results.len() > 100, "{results:?}");

    let mut alone = Vec::new();
    let mut split = Vec::new();
    let mut problems = Vec::new();
    for r in &results {
        let name = r["name"].as_str().expect("name");
        let (t, n, h) = (verdict(r, "troupe"), verdict(r, "nginx"), verdict(r, "h11"));
        if t == "error" {
            problems.push(format!("{name}: Troupe answered 5xx: {r}"));
        }
        if name.starts_with("ok_") && t != "accept" {
            problems.push(format!(
                "{name}: a well-formed request was not accepted: {r}"
            ));
        }
        if t != n && t != h {
            alone.push(name.to_owned());
            if !STRICTER.iter().any(|(s, _)| *s == name) {
                problems.push(format!("{name}: Troupe disagrees with nginx and h11: {r}"));
            }
        }
        if n != h {
            split.push(format!("{name}: nginx {n}, h11 {h}, Troupe {t}"));
        }
    }
    for (name, _) in STRICTER {
        if !alone.iter().any(|a| a == name) {
            problems.push(format!(
                "{name} is listed in STRICTER but Troupe now agrees with nginx or h11"
            ));
        }
    }
    println!(
        "{} payloads; Troupe alone on {}: {alone:?}; nginx and h11 split on {}:\n{}",
        results.len(),
        alone.len(),
        split.len(),
        split.join("\n")
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
