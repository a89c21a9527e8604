//! The CPU bulkhead around module code (issue 11): a Lua or WebAssembly
//! call that outruns its first slice moves to the low-priority module pool
//! and finishes there with the same answer; a module's calls in progress
//! are capped (503 at once beyond); a moved call is bounded by the
//! module's wall-clock `timeout`; the pool's threads run below the
//! connection threads (nice 19). How much the good routes keep
//! while a module burns its budget is a benchmark
//! (`benches/load/fairness.sh`, BENCHMARKS.md), not a test.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::support::{
    client,
    daemon::Daemon,
    modules::{config, one_module, ready, wasm},
    server::TestServer,
};

/// A script whose `handle` computes long enough to leave its first slice
/// (hundreds of thousands of instructions), inside its own coroutine when
/// asked to, and reads the request after.
const SLOW_LUA: &str = r#"
local function sum(n)
  local s = 0
  for i = 1, n do s = s + i end
  return s
end

function handle(req)
  local n = tonumber(req:arg("n") or "300000")
  local s
  if req:arg("co") then
    -- A coroutine of the script's own: the bulkhead must not yield it.
    local co = coroutine.wrap(function() coroutine.yield(sum(n)) end)
    s = co()
  else
    s = sum(n)
  end
  return string.format("%d %s\n", s, req:arg("tag") or "")
end

function header_filter(resp)
  resp.headers["x-filtered"] = tostring(sum(300000))
end
"#;

/// A server with the script above as module `slow` on `/slow` (handler,
/// and response filter if `filter`), with the rest of the entry in `extra`.
async fn slow_lua(dir: &tempfile::TempDir, extra: &str, filter: bool) -> TestServer {
    let script = dir.path().join("slow.lua");
    std::fs::write(&script, SLOW_LUA).unwrap();
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "slow", source: Lua({:?}){extra})"#,
            script.display().to_string()
        ),
        if filter {
            r#"(path: "/slow", handler: Module("slow"), middleware: [Module("slow")])"#
        } else {
            r#"(path: "/slow", handler: Module("slow"))"#
        },
    ))
    .await;
    ready(&srv, "slow").await;
    srv
}

fn moved(srv: &TestServer, module: &str) -> u64 {
    let slot = srv.running().module(module).expect("the module");
    slot.metrics().expect("its series").moved.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lua_call_finishes_on_the_module_pool_with_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let srv = slow_lua(&dir, "", true).await;

    // A short call stays on the request's thread.
    let short = client::get(&srv.url("/slow?n=10&tag=short")).await;
    assert_eq!(short.status, StatusCode::OK);
    assert_eq!(short.text(), "55 short\n");
    let before = moved(&srv, "slow");

    // Long calls, several at once, in the script's own coroutine too.
    let n = 300_000u64;
    let want = n * (n + 1) / 2;
    let calls = (0..6).map(|i| {
        let co = if i % 2 == 0 { "&co=1" } else { "" };
        let url = srv.url(&format!("/slow?n={n}&tag=t{i}{co}"));
        async move { (i, client::get(&url).await) }
    });
    for (i, resp) in futures_util::future::join_all(calls).await {
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert_eq!(resp.text(), format!("{want} t{i}\n"));
        // The response filter ran long too, and its change arrived.
        assert_eq!(resp.header("x-filtered"), Some("45000150000"));
    }
    // Each long call moved: the six filters, and the three handlers whose
    // loop ran in the call's own coroutine. A loop inside the script's own
    // coroutine is never yielded, so those three finished where they began.
    assert_eq!(moved(&srv, "slow"), before + 9);

    // The VMs came back clean: a short call again.
    assert_eq!(
        client::get(&srv.url("/slow?n=3&tag=again")).await.text(),
        "6 again\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lua_script_that_yields_from_its_hook_gets_500_and_its_vm_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("yields.lua");
    std::fs::write(
        &script,
        r#"function handle(req)
  if req:arg("yield") then coroutine.yield("nope") end
  return "fine\n"
end"#,
    )
    .unwrap();
    let srv = one_module(
        "y",
        &format!(r#"source: Lua({:?})"#, script.display().to_string()),
        "/y",
    )
    .await;
    for _ in 0..3 {
        let resp = client::get(&srv.url("/y?yield=1")).await;
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(client::get(&srv.url("/y")).await.text(), "fine\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_a_modules_cap_get_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // One call at a time; a call runs up to 2 s on the pool.
    let srv = slow_lua(
        &dir,
        r#", timeout: "2s", sandbox: (instances: 1, instructions: 100000000000)"#,
        false,
    )
    .await;
    let long = srv.url("/slow?n=100000000000");
    let first = tokio::spawn(async move { client::get(&long).await });
    // Until the first call has moved to the pool, holding the one permit.
    let busy = crate::support::eventually(Duration::from_secs(5), || async {
        moved(&srv, "slow") == 1
    })
    .await;
    assert!(busy, "the long call never moved");
    let started = Instant::now();
    let refused = client::get(&srv.url("/slow?n=1")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(500), "it queued");
    // The first ends at the module's timeout, and the module serves again.
    let first = first.await.unwrap();
    assert_eq!(
        first.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        first.text()
    );
    // Its place comes back once the pool has dropped the call.
    let again = crate::support::eventually(Duration::from_secs(10), || {
        let url = srv.url("/slow?n=4&tag=x");
        async move { client::get(&url).await.text() == "10 x\n" }
    })
    .await;
    assert!(again, "the module never served again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_webassembly_call_finishes_on_the_module_pool() {
    let srv = one_module(
        "w",
        // Past its first slice a call runs at nice 19, so while other
        // processes keep the cores busy it gets little CPU: the wall-clock
        // ceiling is set far above the default's 30 s.
        &format!(r#"source: Wasm({}), timeout: "2m""#, wasm("misbehave")),
        "/w",
    )
    .await;
    let before = moved(&srv, "w");
    // About 25 ms of CPU each: many 1 ms ticks, of which one with most of
    // its time on the request's thread moves the call, however the kernel
    // shares the cores among the test's other threads.
    let calls = (0..4).map(|_| {
        let url = srv.url("/w?do=work&rounds=2");
        async move { client::get(&url).await }
    });
    for resp in futures_util::future::join_all(calls).await {
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert_eq!(resp.text(), "worked 140000000\n");
    }
    let after = moved(&srv, "w");
    assert!(after >= before + 4, "moved {before} before, {after} after");
    assert_eq!(client::get(&srv.url("/w")).await.text(), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webassembly_loop_is_cut_at_the_modules_timeout_on_the_pool() {
    // A CPU budget far beyond the timeout: the wall-clock ceiling stops it.
    let srv = one_module(
        "w",
        &format!(
            r#"source: Wasm({}), timeout: "500ms", sandbox: (time: "1h")"#,
            wasm("misbehave")
        ),
        "/w",
    )
    .await;
    let started = Instant::now();
    let resp = client::get(&srv.url("/w?do=loop")).await;
    assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(client::get(&srv.url("/w")).await.text(), "ok\n");
}

/// The real daemon (in `dir`) with `module` as its one module on
/// `route`, once `probe` (a path and query) answers 200.
fn daemon(dir: &tempfile::TempDir, module: &str, route: &str, probe: &str) -> Daemon {
    let cfg = dir.path().join("troupe.ron");
    std::fs::write(&cfg, config(module, route)).unwrap();
    let d = Daemon::start(&cfg);
    let url = format!("http://{}{probe}", d.addr);
    let ok = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::support::eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move { client::get(&url).await.status == StatusCode::OK }
        }));
    assert!(ok, "{}", d.logs());
    d
}

#[test]
fn the_module_pool_runs_below_the_connection_threads() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("slow.lua");
    std::fs::write(&script, SLOW_LUA).unwrap();
    let d = daemon(
        &dir,
        &format!(
            r#"(name: "slow", source: Lua({:?}))"#,
            script.display().to_string()
        ),
        r#"(path: "/slow", handler: Module("slow"))"#,
        "/slow?n=300000",
    );
    // Each thread's name, nice value and scheduling policy, from /proc.
    let threads: Vec<(String, i64, i64)> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            // `rest` starts at field 3 (state): nice is field 19, policy 41.
            let fields: Vec<&str> = rest.split(' ').collect();
            Some((
                name.to_owned(),
                fields.get(16)?.parse().ok()?,
                fields.get(38)?.parse().ok()?,
            ))
        })
        .collect();
    const SCHED_OTHER: i64 = 0;
    let pool: Vec<_> = threads
        .iter()
        .filter(|(name, ..)| name.starts_with("troupe-module"))
        .collect();
    assert!(!pool.is_empty(), "no module pool thread: {threads:?}");
    assert!(
        pool.iter()
            .all(|(_, nice, policy)| *nice == 19 && *policy == SCHED_OTHER),
        "{threads:?}"
    );
    let workers: Vec<_> = threads
        .iter()
        .filter(|(name, ..)| name.starts_with("troupe-worker"))
        .collect();
    assert!(!workers.is_empty(), "{threads:?}");
    assert!(
        workers
            .iter()
            .all(|(_, nice, policy)| *nice == 0 && *policy == SCHED_OTHER),
        "{threads:?}"
    );
}

/// How often the daemon's thread named `prefix…` has gone to sleep of its
/// own accord (`voluntary_ctxt_switches`): a thread that ticks every
/// millisecond adds one a tick, a parked one none.
fn sleeps_of(pid: i32, prefix: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads");
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).expect("its status");
        return status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("voluntary_ctxt_switches");
    }
    panic!("no thread named {prefix}… in {pid}");
}

#[test]
fn the_epoch_ticker_runs_only_while_a_webassembly_call_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        &dir,
        &format!(r#"(name: "w", source: Wasm({}))"#, wasm("misbehave")),
        r#"(path: "/w", handler: Module("w"))"#,
        "/w",
    );
    // Served, and idle: the ticker has parked (at most the wake-up that
    // found no call running falls in the window).
    std::thread::sleep(Duration::from_millis(50));
    let idle = sleeps_of(d.pid(), "troupe-wasm-ep");
    std::thread::sleep(Duration::from_millis(300));
    let idle = sleeps_of(d.pid(), "troupe-wasm-ep") - idle;
    assert!(
        idle <= 2,
        "the ticker slept {idle} times in 300 ms with no call"
    );
    // A call of a few hundred milliseconds of CPU: it ticks throughout
    // (it must: the call's time limit and its move to the module pool
    // are counted in ticks).
    let before = sleeps_of(d.pid(), "troupe-wasm-ep");
    let url = format!("http://{}/w?do=work&rounds=20", d.addr);
    let resp = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client::get(&url));
    assert_eq!(resp.text(), "worked 1400000000\n");
    let during = sleeps_of(d.pid(), "troupe-wasm-ep") - before;
    assert!(
        during >= 50,
        "the ticker slept {during} times during the call"
    );
}
