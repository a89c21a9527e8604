//! Module WebSockets across reloads (issue 13), on the real binary with
//! the C probe module (`plugins/c/testing/ws_probe.c`: an echo that
//! answers "instance?" with its instance's number) and real clients:
//! - 100 sockets keep exchanging messages through a config reload that
//!   does not touch their route, a module reload, and a config reload
//!   during the reload drain; none closes and every message comes back,
//!   in order, until the drain's end, when each gets 1012; sockets
//!   opened after the module reload are on the new instance;
//! - a config reload that changes the module's declaration (a new slot)
//!   gives the old sockets the same drain, then 1012, and so does one
//!   that removes the module (and its route).

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::support::{
    daemon::Daemon,
    eventually, modules,
    ws::{self, AnyWs},
};

/// Sockets opened before the reloads.
const SOCKETS: usize = 100;
/// Messages each socket has in flight at a time.
const WINDOW: usize = 4;
/// A pause between windows, so 100 sockets do not take both cores.
const PAUSE: Duration = Duration::from_millis(50);
/// The route's `reload_drain`.
const DRAIN: Duration = Duration::from_secs(4);

/// A config with the probe (its declaration's `config` given) on
/// `/probe`, and `extra` routes.
fn config(dir: &Path, probe_config: &str, extra: &str) -> String {
    let lib = dir.join("libws_probe.so").display().to_string();
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [ (name: "probe", source: Native({lib:?}), config: {probe_config:?}) ],
    servers: [( routes: [
        (path: "/probe", handler: WebSocket(module: "probe", reload_drain: "{}s")),
        {extra}
    ] )],
)"#,
        DRAIN.as_secs()
    )
}

/// Starts the binary with the probe copied into a directory of its own
/// (so the test may touch it).
fn start() -> (tempfile::TempDir, PathBuf, Daemon) {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(
        modules::dir().join("libws_probe.so"),
        dir.path().join("libws_probe.so"),
    )
    .expect("copy the probe");
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config(dir.path(), "a", "")).expect("write");
    let d = Daemon::start(&path);
    (dir, path, d)
}

/// Rewrites the config and reloads it (SIGHUP); returns once `/v{round}`
/// (a route it adds) answers.
async fn reload_config(d: &Daemon, dir: &Path, path: &Path, probe_config: &str, round: u32) {
    let extra = format!(r#"(path: "/v{round}", handler: Return(body: "v{round}")),"#);
    std::fs::write(path, config(dir, probe_config, &extra)).expect("rewrite");
    d.signal(libc::SIGHUP);
    let url = format!("http://{}/v{round}", d.addr);
    let done = eventually(Duration::from_secs(15), || async {
        crate::support::client::get(&url).await.body == format!("v{round}").as_bytes()
    })
    .await;
    assert!(done, "config reload {round} not in force:\n{}", d.logs());
}

/// Opens socket `i`: HTTP/1.1 for even ones, HTTP/2 for odd ones.
async fn open(d: &Daemon, i: usize) -> AnyWs {
    if i.is_multiple_of(2) {
        let (ws, _) = ws::handshake(format!("ws://{}/probe", d.addr))
            .await
            .unwrap_or_else(|e| panic!("socket {i}: {e}"));
        AnyWs::H1(ws)
    } else {
        let (ws, _) = ws::connect_h2(d.addr, "/probe")
            .await
            .unwrap_or_else(|s| panic!("socket {i}: refused {s}"));
        AnyWs::H2(ws)
    }
}

/// How one socket's conversation ended.
#[derive(Debug)]
struct Ended {
    /// The server's close code (`None`: the connection ended without one).
    code: Option<u16>,
    /// When the close came.
    at: Instant,
}

/// Asks the socket's instance, then sends numbered messages `WINDOW` at a
/// time, each window read back before the next, until the server closes
/// the socket. Panics on an echo lost, altered or out of order; counts
/// echoes in `echoed`.
async fn converse<S>(mut ws: WebSocketStream<S>, tag: String, echoed: Arc<AtomicU64>) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seq = 0u64;
    loop {
        for k in 0..WINDOW as u64 {
            let text = format!("{tag} {}", seq + k);
            if let Err(e) = ws.send(Message::text(text)).await {
                panic!("{tag}: send failed: {e}");
            }
        }
        for k in 0..WINDOW as u64 {
            let want = format!("{tag} {}", seq + k);
            let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
            match next {
                Ok(Some(Ok(Message::Text(t)))) => {
                    assert_eq!(t.as_str(), want, "{tag}: echo out of order or altered");
                    echoed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let at = Instant::now();
                    // Reading on sends tungstenite's reply, as a client should.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return Ended {
                        code: frame.map(|f| u16::from(f.code)),
                        at,
                    };
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => {
                    eprintln!("{tag}: ended without a close frame: {other:?}");
                    return Ended {
                        code: None,
                        at: Instant::now(),
                    };
                }
                Err(_) => panic!("{tag}: no echo of {want:?} within 10 s"),
            }
        }
        seq += WINDOW as u64;
        tokio::time::sleep(PAUSE).await;
    }
}

/// Sockets conversing on their own tasks.
struct Traffic {
    tasks: Vec<tokio::task::JoinHandle<Ended>>,
    echoed: Vec<Arc<AtomicU64>>,
}

impl Traffic {
    fn new() -> Self {
        Self {
            tasks: Vec::new(),
            echoed: Vec::new(),
        }
    }

    /// Checks that `ws` is on instance `n`, then starts its conversation.
    async fn add(&mut self, mut ws: AnyWs, tag: String, instance: u32) {
        assert_eq!(
            ask(&mut ws, "instance?").await,
            format!("instance {instance}"),
            "{tag}"
        );
        let echoed = Arc::new(AtomicU64::new(0));
        self.echoed.push(echoed.clone());
        self.tasks.push(match ws {
            AnyWs::H1(ws) => tokio::spawn(converse(ws, tag, echoed)),
            AnyWs::H2(ws) => tokio::spawn(converse(ws, tag, echoed)),
        });
    }

    fn counts(&self) -> Vec<u64> {
        self.echoed
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .collect()
    }

    /// Waits until every socket has had `more` echoes since `before`
    /// (a socket that stopped makes this fail), and returns the counts.
    async fn all_moved_on(&self, before: &[u64], more: u64, what: &str) -> Vec<u64> {
        let moved = eventually(Duration::from_secs(15), || async {
            self.counts()
                .iter()
                .zip(before)
                .all(|(now, then)| *now >= then + more)
        })
        .await;
        let now = self.counts();
        let stuck: Vec<usize> = (0..now.len())
            .filter(|&i| now[i] < before[i] + more)
            .collect();
        assert!(moved, "{what}: sockets {stuck:?} stopped exchanging");
        for (i, t) in self.tasks.iter().enumerate() {
            assert!(!t.is_finished(), "{what}: socket {i} closed");
        }
        now
    }

    /// Waits for every conversation to end (within `within`).
    async fn ended(self, within: Duration) -> Vec<Ended> {
        let mut out = Vec::new();
        for (i, t) in self.tasks.into_iter().enumerate() {
            let ended = tokio::time::timeout(within, t)
                .await
                .unwrap_or_else(|_| panic!("socket {i} still open after {within:?}"))
                .unwrap_or_else(|e| panic!("socket {i}: {e}"));
            out.push(ended);
        }
        out
    }
}

/// Sends `text` and returns the text answer.
async fn ask(ws: &mut AnyWs, text: &str) -> String {
    ws.send(text).await;
    ws.next_text()
        .await
        .unwrap_or_else(|| panic!("no answer to {text:?}"))
}

/// Makes the file look changed to SIGUSR2 (same code, a later mtime).
fn touch(file: &Path) {
    let f = std::fs::File::options()
        .write(true)
        .open(file)
        .expect("open");
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .expect("set mtime");
}

/// Every old socket ended with 1012, no sooner than the drain after
/// `replaced` and not much later.
fn closed_after_the_drain(ended: &[Ended], replaced: Instant, logs: impl Fn() -> String) {
    for (i, e) in ended.iter().enumerate() {
        assert_eq!(e.code, Some(1012), "old socket {i}: {e:?}\n{}", logs());
        let after = e.at.duration_since(replaced);
        // The drain counts from the first tick (DRAIN/4) that sees the
        // new instance, which may come before the test saw the reload.
        assert!(
            after >= DRAIN - Duration::from_millis(500) && after < DRAIN + Duration::from_secs(4),
            "old socket {i} closed {after:?} after the reload"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sockets_exchange_through_config_and_module_reloads_then_1012() {
    let started = Instant::now();
    let (dir, path, d) = start();
    let mut old = Traffic::new();
    for i in 0..SOCKETS {
        old.add(open(&d, i).await, format!("old {i}"), 1).await;
    }
    let counts = old.all_moved_on(&[0; SOCKETS], 8, "at start").await;

    // (a) A config reload that does not touch the route or the module.
    reload_config(&d, dir.path(), &path, "a", 1).await;
    let counts = old
        .all_moved_on(&counts, 8, "after the config reload")
        .await;
    let mut same = open(&d, 0).await;
    assert_eq!(ask(&mut same, "instance?").await, "instance 1");
    drop(same);

    // (b) A module reload: old sockets stay on instance 1 for the drain.
    touch(&dir.path().join("libws_probe.so"));
    d.signal(libc::SIGUSR2);
    assert!(
        d.wait_for_log("SIGUSR2: module reloaded", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    let reloaded = Instant::now();
    let mut new = Traffic::new();
    for i in 0..10 {
        new.add(open(&d, i).await, format!("new {i}"), 2).await;
    }
    let counts = old
        .all_moved_on(&counts, 8, "after the module reload")
        .await;
    // Another config reload during the drain changes nothing for them.
    reload_config(&d, dir.path(), &path, "a", 2).await;
    old.all_moved_on(&counts, 8, "after the second config reload")
        .await;
    assert!(
        reloaded.elapsed() < DRAIN - Duration::from_millis(500),
        "the checks took the whole drain ({:?}): nothing was shown",
        reloaded.elapsed()
    );

    // Past the drain: every old socket gets 1012; the new ones go on.
    let before = new.counts();
    let echoed = old.echoed.clone();
    let ended = old.ended(DRAIN + Duration::from_secs(6)).await;
    closed_after_the_drain(&ended, reloaded, || d.logs());
    assert!(
        d.wait_for_log("ws_probe instance 1 shut down", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    new.all_moved_on(&before, 8, "new sockets after the drain")
        .await;
    let mut last = open(&d, 1).await;
    assert_eq!(ask(&mut last, "instance?").await, "instance 2");
    assert!(!d.logs().contains("instance 2 shut down"), "{}", d.logs());
    let total: u64 = echoed.iter().map(|e| e.load(Ordering::Relaxed)).sum();
    println!(
        "{SOCKETS} sockets through 3 reloads: {total} echoes, test took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_that_changes_the_module_drains_its_sockets_then_1012() {
    let (dir, path, d) = start();
    let mut old = Traffic::new();
    for i in 0..4 {
        old.add(open(&d, i).await, format!("old {i}"), 1).await;
    }
    let counts = old.all_moved_on(&[0; 4], 4, "at start").await;
    // Its declaration changes: a new slot, a new instance.
    reload_config(&d, dir.path(), &path, "b", 1).await;
    let replaced = Instant::now();
    let mut new = Traffic::new();
    for i in 0..2 {
        new.add(open(&d, i).await, format!("new {i}"), 2).await;
    }
    old.all_moved_on(&counts, 4, "after the config reload")
        .await;
    let ended = old.ended(DRAIN + Duration::from_secs(6)).await;
    closed_after_the_drain(&ended, replaced, || d.logs());
    assert!(
        d.wait_for_log("ws_probe instance 1 shut down", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    let before = new.counts();
    new.all_moved_on(&before, 4, "new sockets after the drain")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_that_removes_the_module_drains_its_sockets_then_1012() {
    let (_dir, path, d) = start();
    let mut old = Traffic::new();
    for i in 0..2 {
        old.add(open(&d, i).await, format!("old {i}"), 1).await;
    }
    let counts = old.all_moved_on(&[0; 2], 4, "at start").await;
    std::fs::write(
        &path,
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [( routes: [ (path: "/v1", handler: Return(body: "v1")) ] )],
)"#,
    )
    .expect("rewrite");
    d.signal(libc::SIGHUP);
    let url = format!("http://{}/v1", d.addr);
    let done = eventually(Duration::from_secs(15), || async {
        crate::support::client::get(&url).await.body == "v1".as_bytes()
    })
    .await;
    assert!(done, "config reload not in force:\n{}", d.logs());
    let removed = Instant::now();
    old.all_moved_on(&counts, 4, "after the module left the config")
        .await;
    let ended = old.ended(DRAIN + Duration::from_secs(6)).await;
    closed_after_the_drain(&ended, removed, || d.logs());
    assert!(
        d.wait_for_log("ws_probe instance 1 shut down", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
}
