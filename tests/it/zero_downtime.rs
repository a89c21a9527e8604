//! Zero downtime (issue 5, P2.8, C1): while 32 keep-alive connections keep
//! every module kind busy (C in process, Rust in a child process, Lua,
//! WebAssembly), each module is reloaded 20 times and the config 20 times
//! (each time changing three modules and a route). Not one request may fail,
//! not one connection may drop, and every answer must be a whole one from
//! a fully loaded module.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use troupe::Trigger;

use crate::support::{
    modules::ready,
    modules::{lib, wasm},
    reload::{config, lua_echo},
    server::TestServer,
};

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 20;
const MODULES: [&str; 4] = ["c", "p", "l", "w"];

/// Round `n` of the config: the configs of `c`, `p` and `l` (so each is
/// replaced by a new instance: in process, in a new child process, in
/// new Lua VMs) and `/hello`'s body change.
fn round(n: usize) -> String {
    let even = n.is_multiple_of(2);
    let greeting = if even { "Howdy" } else { "Hi" };
    let p_greeting = if even { "Yo" } else { "Hey" };
    let l_config = if even { "x" } else { "y" };
    config(
        "watch: false,",
        &format!(
            r#"(name: "c", source: Native({}), config: "{greeting}"),
               (name: "p", source: Native({}), isolation: Process, config: {{ "greeting": "{p_greeting}" }}),
               (name: "l", source: Lua("l.lua"), config: "{l_config}"),
               (name: "w", source: Wasm({}))"#,
            lib("hello_c"),
            lib("hello_rust"),
            wasm("hello"),
        ),
        r#"(path: "/c", handler: Module("c")), (path: "/p/{name}", handler: Module("p")),
           (path: "/l", handler: Module("l")), (path: "/w", handler: Module("w"))"#,
        &format!("v{n}"),
    )
}

/// Whether `body` is a whole answer of the module behind `path`.
fn whole(path: &str, body: &str) -> bool {
    match path {
        "/c" => {
            (body.starts_with("Howdy, world!") || body.starts_with("Hi, world!"))
                && body.ends_with(")\n")
        }
        "/p/Ann" => serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|j| j["greeting"] == "Yo, Ann!" || j["greeting"] == "Hey, Ann!"),
        "/l" => body == "l x\n" || body == "l y\n",
        "/w" => body.starts_with("Hello from WebAssembly, Ann!") && body.ends_with('\n'),
        "/hello" => body.starts_with('v') && body[1..].parse::<usize>().is_ok(),
        _ => false,
    }
}

/// One keep-alive connection asking every path in turn until `stop`.
/// Returns what went wrong; a lost connection ends it with that error.
fn client(
    srv: &TestServer,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let addr = srv.addr;
    tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(driver);
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for path in ["/c", "/p/Ann", "/l", "/w?name=Ann", "/hello"] {
                let req = http::Request::get(path)
                    .header("host", "x")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = match conn.send_request(req).await {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{path}: connection lost: {e}"));
                        return failures;
                    }
                };
                let status = resp.status();
                let body = match resp.into_body().collect().await {
                    Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                    Err(e) => {
                        failures.push(format!("{path}: body cut: {e}"));
                        return failures;
                    }
                };
                served.fetch_add(1, Ordering::Relaxed);
                let path = path.split('?').next().unwrap_or(path);
                if status != http::StatusCode::OK || !whole(path, &body) {
                    failures.push(format!("{path}: {status} {body:?}"));
                }
            }
        }
        failures
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_request_and_drop_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    lua_echo(dir.path(), "l");
    let srv = TestServer::start_in(dir, &round(0)).await;
    for m in MODULES {
        ready(&srv, m).await;
    }
    let path = srv.dir.path().join("config.ron");
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| client(&srv, stop.clone(), served.clone()))
        .collect();

    let running = srv.running();
    for n in 1..=ROUNDS {
        for m in MODULES {
            running
                .reload_module(m)
                .await
                .unwrap_or_else(|e| panic!("round {n}: reloading {m}: {e}"));
        }
        std::fs::write(&path, round(n)).unwrap();
        let applied = running
            .reload_config(Trigger::Admin)
            .await
            .unwrap_or_else(|e| panic!("round {n}: config reload: {e}"));
        for m in ["c", "p", "l"] {
            assert!(
                applied.changes.contains(&format!("module `{m}` changed")),
                "{:?}",
                applied.changes
            );
        }
    }
    // Let the clients see the last generation too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.expect("a client panicked"));
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:?}",
        failures.len()
    );
    let served = served.load(Ordering::Relaxed);
    eprintln!("zero downtime: {served} requests served");
    assert!(served > 1000, "only {served} requests were served");
    // Every reload happened: 20 by hand for each module, and for c, p
    // and l 20 more by the config (theirs changed each round).
    for m in ["c", "p", "l"] {
        assert_eq!(
            running.module(m).unwrap().loads(),
            1 + 2 * ROUNDS as u64,
            "{m}"
        );
    }
    assert_eq!(running.module("w").unwrap().loads(), 1 + ROUNDS as u64);
    let status = running.config_status().await.unwrap();
    assert_eq!((status.generation, status.refused), (1 + ROUNDS as u64, 0));
}
