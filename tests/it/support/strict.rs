//! What the strict-parsing tests share (tests/it/strict_rfc.rs,
//! tests/it/differential.rs): the real binary with a route that proxies
//! to a backend reading every body (so a framing error shows in the
//! answer), raw exchanges over TCP, and the Python tools of
//! `tests/strict/` (h11 and h2, installed under target/ on first use).

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    backend::{Behaviour, TestBackend},
    daemon::Daemon,
    repo_root,
};

/// The real binary: `/hello` returns, everything else goes to a backend
/// whose `/upload` reads the body and answers its length.
pub struct Strict {
    pub troupe: Daemon,
    _backend: TestBackend,
    _dir: tempfile::TempDir,
}

impl Strict {
    pub async fn start() -> Self {
        let backend = TestBackend::start("b", Behaviour::default()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.ron");
        std::fs::write(
            &path,
            format!(
                r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    upstreams: {{ "b": (backends: [(addr: "{}")]) }},
    servers: [( routes: [
        (path: "/hello", handler: Return(body: "Hello\n")),
        (path: "/{{*rest}}", handler: Proxy(upstream: "b")),
    ] )],
)"#,
                backend.addr
            ),
        )
        .expect("write config");
        let troupe = tokio::task::spawn_blocking(move || Daemon::start(&path))
            .await
            .expect("start troupe");
        Self {
            troupe,
            _backend: backend,
            _dir: dir,
        }
    }
}

/// What came back for one raw request.
#[derive(Debug)]
pub struct Answer {
    /// The first status code, if any answer came.
    pub status: Option<u16>,
    /// How many status lines came back.
    pub answers: usize,
    /// The server closed the connection (EOF before the deadline).
    pub closed: bool,
    pub text: String,
}

/// Writes `bytes` on a fresh connection and reads until EOF, or until
/// `within` passes (then `closed` is false).
pub async fn exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // A server that refuses early may reset before the whole request is
    // written; what it answered is still read below.
    let _ = s.write_all(bytes).await;
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&out).into_owned();
    let answers = text.matches("HTTP/1.1 ").count() + text.matches("HTTP/1.0 ").count();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    Answer {
        status,
        answers,
        closed,
        text,
    }
}

/// The directory to put on `PYTHONPATH` for h11 and h2 (installed under
/// target/ when missing); `None`, said loudly, where there is no Python 3
/// or no registry.
pub fn python_path() -> Option<String> {
    match super::pypi("python", &["h11==0.16.0", "h2==4.3.0"]) {
        Ok(site) => Some(site),
        Err(why) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: h11/h2 (PyPI) could not be installed (tests/tools/pypi.sh):\n{why}"
            );
            None
        }
    }
}

/// Runs `tests/strict/<script>` with `args`; its stdout, one JSON object
/// a line, parsed.
pub fn run_python(path: &str, script: &str, args: &[String]) -> Vec<serde_json::Value> {
    let dir: &Path = &repo_root().join("tests/strict");
    let out = Command::new("python3")
        .arg(dir.join(script))
        .args(args)
        .env("PYTHONPATH", format!("{path}:{}", dir.display()))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
