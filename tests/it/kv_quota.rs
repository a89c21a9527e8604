//! Issue 11, "memory has a bulkhead too": each module's quota of the
//! shared store. A module that writes without end is refused (and sees
//! why, in its own language), the refusals are counted, the server's
//! memory stays flat, and the other modules' keys stay theirs.

use std::time::Duration;

use http::StatusCode;

use crate::support::{
    client,
    daemon::{self, Daemon},
    eventually,
    modules::{config, lib, lua, ready, wasm},
    server::TestServer,
};

/// The daemon's resident memory in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A metric's value in a Prometheus text page.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_module_writing_without_end_is_refused_and_memory_stays_flat() {
    const VALUE: usize = 256 * 1024;
    const QUOTA: u64 = 4 * 1024 * 1024;
    const WRITES: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kv.ron");
    std::fs::write(
        &cfg,
        format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    modules: [
        (name: "fill", source: Lua({script}), kv: (keys: 1000000, bytes: {QUOTA})),
        (name: "keep", source: Lua({script})),
    ],
    servers: [( routes: [
        (path: "/hello", handler: Return(body: "Hello, World!\n")),
        (path: "/fill", handler: Module("fill")),
        (path: "/keep", handler: Module("keep")),
    ] )],
)"#,
            script = lua("testing/kv_fill.lua"),
        ),
    )
    .unwrap();
    let d = Daemon::start(&cfg);
    let admin = d.admin_addr();
    let base = format!("http://{}", d.addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let keep = format!("{base}/keep?key=keep.mine&bytes=1000");
        assert!(
            eventually(Duration::from_secs(10), || async {
                client::get(&keep).await.text() == "stored\n"
            })
            .await,
            "{}",
            d.logs()
        );
        // Warm up: the VMs and the connection path allocate once.
        for i in 0..20 {
            let r = client::get(&format!("{base}/fill?key=warm&bytes={}", 1000 + i)).await;
            assert_eq!(r.text(), "stored\n");
        }
        let before = rss_kib(d.pid());

        let (mut stored, mut refused) = (0, 0);
        let mut why = String::new();
        for i in 0..WRITES {
            let r = client::get(&format!("{base}/fill?key=flood.{i}&bytes={VALUE}")).await;
            match r.status {
                StatusCode::OK => stored += 1,
                StatusCode::INSUFFICIENT_STORAGE => {
                    refused += 1;
                    why = r.text();
                }
                other => panic!("write {i}: {other} {}", r.text()),
            }
        }
        let after = rss_kib(d.pid());
        // The quota lets in about QUOTA / VALUE values, and no more.
        let fits = (QUOTA / VALUE as u64) as usize;
        assert!(
            (fits - 1..=fits).contains(&stored),
            "stored {stored}, expected about {fits}"
        );
        assert_eq!(stored + refused, WRITES);
        // The script saw `nil, why` and answered it.
        assert!(
            why.starts_with("refused: module `fill` is over its store quota")
                && why.contains("kv.bytes"),
            "{why}"
        );
        // ~100 MiB was sent to be stored; the server grew by about the
        // quota, plus room for allocator and VM noise.
        let grown = after.saturating_sub(before);
        let attempted = (WRITES * VALUE / 1024) as u64;
        assert!(
            grown < QUOTA / 1024 + 28 * 1024,
            "RSS grew {grown} KiB ({before} → {after}) for {attempted} KiB attempted"
        );

        let page = client::get(&format!("http://{admin}/metrics")).await.text();
        assert_eq!(
            metric(&page, r#"troupe_module_kv_refused_total{module="fill"}"#),
            Some(refused as f64),
            "{page}"
        );
        let bytes = metric(&page, r#"troupe_module_kv_bytes{module="fill"}"#).unwrap();
        assert!(bytes <= QUOTA as f64 && bytes > (QUOTA - 2 * VALUE as u64) as f64);
        assert_eq!(
            metric(&page, r#"troupe_module_kv_keys{module="fill"}"#),
            Some(stored as f64 + 1.0),
            "{page}"
        );
        assert_eq!(
            metric(&page, r#"troupe_module_kv_refused_total{module="keep"}"#),
            Some(0.0)
        );

        // The full module cannot take another module's key over (with a
        // value its quota has no room for)...
        let take = client::get(&format!("{base}/fill?key=keep.mine&bytes={VALUE}")).await;
        assert_eq!(take.status, StatusCode::INSUFFICIENT_STORAGE);
        // ...which is untouched, and its owner still writes, on its own quota.
        assert_eq!(
            client::get(&format!("{base}/keep?key=keep.mine"))
                .await
                .text(),
            "1000\n"
        );
        let more = client::get(&format!("{base}/keep?key=keep.more&bytes={VALUE}")).await;
        assert_eq!(more.text(), "stored\n");
        // Every other route serves on.
        assert_eq!(
            client::get(&format!("{base}/hello")).await.status,
            StatusCode::OK
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_modules_see_the_refusal_in_process_and_isolated() {
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "c_in", source: Native({lib}), kv: (keys: 3, bytes: 100000)),
               (name: "c_proc", source: Native({lib}), isolation: Process, kv: (keys: 3, bytes: 100000))"#,
            lib = lib("kv_fill")
        ),
        r#"(path: "/in", handler: Module("c_in")),
           (path: "/proc", handler: Module("c_proc"))"#,
    ))
    .await;
    for (module, path) in [("c_in", "/in"), ("c_proc", "/proc")] {
        ready(&srv, module).await;
        for i in 0..3 {
            let r = client::get(&srv.url(&format!("{path}?key={module}.{i}&bytes=100"))).await;
            assert_eq!(r.text(), "stored\n", "{module}");
        }
        // A fourth key: TROUPE_KV_FULL (1), and nothing stored.
        let r = client::get(&srv.url(&format!("{path}?key={module}.3&bytes=1"))).await;
        assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{module}");
        assert_eq!(r.text(), "refused 1\n", "{module}");
        let r = client::get(&srv.url(&format!("{path}?key={module}.3"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{module}");
        // Bytes count too: one value past 100 000 bytes in all.
        let r = client::get(&srv.url(&format!("{path}?key={module}.0&bytes=99900"))).await;
        assert_eq!(r.text(), "refused 1\n", "{module}");
        // Overwriting its own key adds no key, so it fits.
        let r = client::get(&srv.url(&format!("{path}?key={module}.0&bytes=5000"))).await;
        assert_eq!(r.text(), "stored\n", "{module}");

        let services = srv.running().services();
        assert_eq!(services.kv_refused(module), 2, "{module}");
        let key = |i: u64| format!("{module}.{i}").len() as u64 + 64;
        assert_eq!(
            services.kv_usage(module),
            (3, key(0) + 5000 + key(1) + 100 + key(2) + 100),
            "{module}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_sees_the_refusal_as_an_error() {
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "w", source: Wasm({}), kv: (keys: 2, bytes: 100000))"#,
            wasm("misbehave")
        ),
        r#"(path: "/w", handler: Module("w"))"#,
    ))
    .await;
    ready(&srv, "w").await;
    for i in 0..2 {
        let r = client::get(&srv.url(&format!("/w?do=store&key=w{i}&bytes=10"))).await;
        assert_eq!(r.text(), "stored\n");
    }
    let r = client::get(&srv.url("/w?do=store&key=w2&bytes=10")).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        r.text(),
        "refused: module `w` is over its store quota: it holds 2 of 2 keys (`kv.keys`)\n"
    );
    assert_eq!(srv.running().services().kv_refused("w"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_with_a_zero_quota_reads_but_never_writes() {
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "ro", source: Lua({script}), kv: (keys: 0, bytes: 0)),
               (name: "rw", source: Lua({script}))"#,
            script = lua("testing/kv_fill.lua")
        ),
        r#"(path: "/ro", handler: Module("ro")), (path: "/rw", handler: Module("rw"))"#,
    ))
    .await;
    ready(&srv, "ro").await;
    ready(&srv, "rw").await;
    let r = client::get(&srv.url("/ro?key=x&bytes=1")).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    assert!(r.text().contains("may not write the store"), "{}", r.text());
    assert_eq!(
        client::get(&srv.url("/rw?key=x&bytes=7")).await.text(),
        "stored\n"
    );
    assert_eq!(client::get(&srv.url("/ro?key=x")).await.text(), "7\n");
}

fn check_kv(kv: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(
        &path,
        format!(
            "Config(\n    listen: [\"127.0.0.1:0\"],\n    modules: [\n        (name: \"a\", source: Lua({})),\n        (name: \"b\", source: Lua({}),\n            kv: {kv}),\n    ],\n    servers: [(routes: [])],\n)\n",
            lua("examples/hello.lua"),
            lua("examples/hello.lua"),
        ),
    )
    .unwrap();
    let (code, err) = daemon::check(&path);
    (code, err.replace(&path.display().to_string(), "bad.ron"))
}

#[test]
fn nonsense_quotas_are_config_errors_with_their_position() {
    let (code, err) = check_kv("(keys: 0, bytes: 4096)");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.ron:6:13: "), "{err}");
    assert!(
        err.contains("module `b`") && err.contains("no write could fit"),
        "{err}"
    );

    let (code, err) = check_kv("(keys: 10, bytes: 64)");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.ron:6:13: "), "{err}");
    assert!(err.contains("`kv.bytes` is 64"), "{err}");

    let (code, err) = check_kv("(keys: 10, byte: 4096)");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.ron:6:"), "{err}");
    assert!(err.contains("byte"), "{err}");

    // Both 0 (may not write) and the defaults are fine.
    let (code, err) = check_kv("(keys: 0, bytes: 0)");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_kv("()");
    assert_eq!(code, Some(0), "{err}");
}
