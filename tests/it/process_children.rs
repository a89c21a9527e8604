//! A `Process` module's children (issue 11): the spare that serves at once
//! after a crash, the memory limit and priority each child runs under, and
//! no child left behind when a module is reloaded, changed, removed or
//! given up on. Runs the real binary (its children are then told apart
//! from other tests' by their parent) with the test-only `crashy` module.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::StatusCode;

use crate::support::{
    client,
    daemon::Daemon,
    eventually_sync,
    load::hammer_urls,
    modules::{config, lib},
};

/// The live processes whose parent is `pid` (zombies included: a child
/// never reaped is a leak too).
fn children_of(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parens.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found.sort_unstable();
    found
}

/// `field` of `/proc/<pid>/stat` after the command (0 is the state).
fn stat_field(pid: i32, field: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(field).unwrap().to_owned()
}

fn write_config(path: &Path, crashy: &str) {
    let text = config(
        &format!(
            r#"(name: "crashy", source: Native({}), isolation: Process, {crashy})"#,
            lib("crashy")
        ),
        r#"(path: "/crash", handler: Module("crashy"))"#,
    );
    std::fs::write(path, text).unwrap();
}

/// A daemon serving `crashy` with the rest of its entry `crashy`, once its
/// spare is ready.
fn start(crashy: &str) -> (tempfile::TempDir, std::path::PathBuf, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ron");
    write_config(&path, crashy);
    let d = Daemon::start(&path);
    assert!(
        d.wait_for_log("spare module process ready", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    (dir, path, d)
}

/// Load on `/hello` while a test breaks the module; `finish` says what it
/// saw.
struct Others {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Others {
    fn start(d: &Daemon) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let tasks = (0..3)
            .map(|_| {
                hammer_urls(
                    vec![format!("http://{}/hello", d.addr)],
                    stop.clone(),
                    served.clone(),
                )
            })
            .collect();
        Self {
            stop,
            served,
            tasks,
        }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(task.await.expect("a client lost its connection"));
        }
        assert!(failures.is_empty(), "other routes failed: {failures:?}");
        assert!(
            self.served.load(Ordering::Relaxed) > 50,
            "too little load to prove anything"
        );
    }
}

async fn pid_of_server(d: &Daemon) -> i32 {
    let resp = client::get(&format!("http://{}/crash?pid", d.addr)).await;
    assert_eq!(resp.status, StatusCode::OK);
    resp.text().trim().parse().unwrap()
}

#[test]
fn after_a_crash_the_spare_serves_the_next_request_at_once() {
    // Each child's init takes a second: a request that had to wait for a
    // new child could not be answered in less.
    let (_dir, _path, d) =
        start(r#"config: "slow", timeout: "5s", restarts: (max: 100, within: "1m")"#);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let others = Others::start(&d);
        for round in 1..=2 {
            let before = children_of(d.pid());
            assert_eq!(before.len(), 2, "round {round}: {before:?}");
            let active = pid_of_server(&d).await;
            let crashed = client::get(&format!("http://{}/crash?crash=segv", d.addr)).await;
            assert_eq!(crashed.status, StatusCode::BAD_GATEWAY, "round {round}");
            let asked = Instant::now();
            let next = pid_of_server(&d).await;
            let took = asked.elapsed();
            assert!(
                took < Duration::from_millis(500),
                "round {round}: the next request took {took:?}"
            );
            assert_ne!(next, active, "round {round}");
            assert!(
                before.contains(&next),
                "round {round}: {next} was not the spare ({before:?})"
            );
            // The module was restarted (through its supervisor, as
            // before), which started a new spare beside the promoted one.
            let spares = round + 1;
            assert!(
                eventually_sync(Duration::from_secs(10), || {
                    d.logs().matches("spare module process ready").count() == spares
                }),
                "{}",
                d.logs()
            );
            let after = children_of(d.pid());
            assert_eq!(after.len(), 2, "round {round}: {after:?}");
            assert!(after.contains(&next) && !after.contains(&active));
        }
        others.finish().await;
    });
    let logs = d.logs();
    assert_eq!(
        logs.matches("the spare module process took over").count(),
        2,
        "{logs}"
    );
    assert!(
        logs.contains("killed by signal 11 (SIGSEGV)") && logs.contains("child failed; restarting"),
        "{logs}"
    );
}

/// `VmData` of `pid` in KiB: what RLIMIT_DATA counts.
fn vm_data_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmData:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_child_starts_far_below_any_sensible_memory_limit() {
    // Without a limit, so the allocator reserves what it likes: the
    // limit is set from the server just after the child starts, and a
    // child that had reserved past it by then (mimalloc's default arena
    // is 1 GiB) would fail its next allocation.
    let (_dir, _path, d) = start(r#"process: (memory: 0)"#);
    let children = children_of(d.pid());
    assert_eq!(children.len(), 2, "{children:?}");
    for child in children {
        let kib = vm_data_kib(child);
        assert!(
            kib < 256 * 1024,
            "child {child} holds {kib} KiB of data mappings"
        );
    }
}

#[test]
fn a_child_that_leaks_memory_is_killed_at_its_limit_and_replaced() {
    let limit = 64 * 1024 * 1024;
    let (_dir, _path, d) = start(&format!(r#"timeout: "10s", process: (memory: {limit})"#));
    // Each child runs under the limit and the default priority.
    let children = children_of(d.pid());
    assert_eq!(children.len(), 2, "{children:?}");
    for child in &children {
        let limits = std::fs::read_to_string(format!("/proc/{child}/limits")).unwrap();
        let data = limits
            .lines()
            .find(|l| l.starts_with("Max data size"))
            .unwrap();
        assert!(data.contains(&format!("{limit}")), "{data}");
        assert_eq!(stat_field(*child, 16), "10", "nice of {child}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let others = Others::start(&d);
        let started = Instant::now();
        // Without the limit this would allocate 4 GiB and answer 200.
        let leak = client::get(&format!("http://{}/crash?crash=leak", d.addr)).await;
        assert_eq!(leak.status, StatusCode::BAD_GATEWAY, "{}", leak.text());
        assert!(started.elapsed() < Duration::from_secs(5));
        // The next request is served, by the spare.
        let next = client::get(&format!("http://{}/crash", d.addr)).await;
        assert_eq!(next.status, StatusCode::OK);
        assert_eq!(next.text(), "ok\n");
        others.finish().await;
    });
    assert!(
        d.wait_for_log("module process died", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
    // The server itself never held the child's memory.
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss_kib < 200 * 1024, "server RSS {rss_kib} KiB");
    assert!(eventually_sync(Duration::from_secs(10), || children_of(
        d.pid()
    )
    .len()
        == 2));
}

#[test]
fn no_child_is_left_behind_by_a_change_a_removal_or_giving_up() {
    let (_dir, path, d) = start(r#"timeout: "5s""#);
    let first = children_of(d.pid());
    assert_eq!(first.len(), 2, "{first:?}");
    let settles_on =
        |n: usize| eventually_sync(Duration::from_secs(10), || children_of(d.pid()).len() == n);
    // Writes the config and waits until it is in force (by the signal, or
    // first by the file watcher).
    let mut reloads = 0;
    let mut reconfigure = |crashy: Option<&str>| {
        match crashy {
            Some(crashy) => write_config(&path, crashy),
            None => std::fs::write(&path, config("", "")).unwrap(),
        }
        d.signal(libc::SIGHUP);
        reloads += 1;
        assert!(
            eventually_sync(Duration::from_secs(10), || {
                d.logs().matches("config reloaded").count() >= reloads
            }),
            "{}",
            d.logs()
        );
    };

    // A changed entry: a new instance with two new children; the old two
    // shut down.
    reconfigure(Some(r#"timeout: "6s""#));
    assert!(
        eventually_sync(Duration::from_secs(10), || {
            let now = children_of(d.pid());
            now.len() == 2 && now.iter().all(|c| !first.contains(c))
        }),
        "{:?} after {first:?}\n{}",
        children_of(d.pid()),
        d.logs()
    );

    // Without a spare: one child.
    reconfigure(Some(r#"timeout: "6s", process: (spare: false)"#));
    assert!(settles_on(1), "{:?}", children_of(d.pid()));

    // Failed too often: retired, and its children with it. Counted from
    // here: a spare replaced before it was ready never said so.
    let spares_ready = || d.logs().matches("spare module process ready").count();
    let before = spares_ready();
    reconfigure(Some(r#"restarts: (max: 1, within: "1m")"#));
    assert!(
        eventually_sync(Duration::from_secs(10), || spares_ready() == before + 1),
        "{}",
        d.logs()
    );
    assert!(settles_on(2), "{:?}", children_of(d.pid()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let crash = format!("http://{}/crash?crash=abort", d.addr);
    let status = rt.block_on(async {
        assert!(client::get(&crash).await.status.is_server_error());
        // Restarted once: then the second crash is one too many.
        assert!(
            eventually_sync(Duration::from_secs(5), || {
                // This instance's, and its restart's.
                spares_ready() >= before + 2
            }),
            "{}",
            d.logs()
        );
        assert!(client::get(&crash).await.status.is_server_error());
        let down = format!("http://{}/crash", d.addr);
        let mut status = StatusCode::OK;
        for _ in 0..250 {
            status = client::get(&down).await.status;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        status
    });
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", d.logs());
    assert!(settles_on(0), "{:?}", children_of(d.pid()));

    // Back, then removed from the config: no child either.
    reconfigure(Some(r#"timeout: "5s""#));
    assert!(settles_on(2), "{:?}", children_of(d.pid()));
    reconfigure(None);
    assert!(settles_on(0), "{:?}\n{}", children_of(d.pid()), d.logs());
}
