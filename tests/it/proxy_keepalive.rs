//! A backend with a 1 s keep-alive timeout behind a busy pool, for a
//! minute, on the real binary (issue 13: "zero errors over a minute").
//!
//! The pool keeps idle connections for 10 s, the backend for 1 s, so the
//! proxy keeps meeting connections the backend has closed or is closing
//! at that very moment; each such request must be sent again on another
//! connection, never answered with an error. Two steady clients keep a
//! couple of connections hot; bursts about a second apart need more,
//! and take ones that have been idle for about the backend's timeout.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::{
    proxy::{config, group, url},
    support::{
        backend::{Behaviour, TestBackend},
        client,
        daemon::Daemon,
    },
};

const RUN: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Requests at once in a burst: more than the steady clients hold.
const BURST: usize = 6;

/// One GET; `Err` says what went wrong. An answer that takes seconds
/// (a request stuck on a dead connection) is a failure too.
async fn one(c: &client::H1, url: &str) -> Result<(), String> {
    let req = Request::get(url).body(Full::default()).expect("request");
    let sent = async {
        match c.request(req).await {
            Ok(resp) if resp.status() == StatusCode::OK => resp
                .into_body()
                .collect()
                .await
                .map(drop)
                .map_err(|e| format!("body: {e}")),
            Ok(resp) => Err(resp.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_with_a_1s_keep_alive_costs_no_request_over_a_minute() {
    let a = TestBackend::start(
        "a",
        Behaviour {
            keep_alive: Some(KEEP_ALIVE),
            ..Behaviour::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    let upstreams = group("app", &[&a], "pool: (idle_timeout: \"10s\")");
    let route = r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#;
    std::fs::write(&path, config(&upstreams, route, "")).expect("write config");
    // At debug, the proxy logs each pooled connection that failed under
    // a request (which it then sent again): the races it absorbed.
    let d = Daemon::start_logging(&path, "info,troupe::proxy=debug");
    let u = url(&d, "/x");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // Steady: a request every 20 ms on each of two clients.
    let mut tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>> = (0..2)
        .map(|_| {
            let (u, stop) = (u.clone(), stop.clone());
            tokio::spawn(async move {
                let c = client::h1();
                let (mut sent, mut bad) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    sent += 1;
                    if let Err(e) = one(&c, &u).await {
                        bad.push(e);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (sent, bad)
            })
        })
        .collect();
    // Bursts 985 to 1015 ms apart, a millisecond step at a time in a
    // fixed order (so runs are alike): the gap sweeps across the moment
    // the backend closes the connections the last burst left idle.
    tasks.push({
        let (u, stop) = (u.clone(), stop.clone());
        tokio::spawn(async move {
            let c = client::h1();
            let (mut sent, mut bad) = (0, Vec::new());
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let gap = 985 + (i * 17) % 31;
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let burst = (0..BURST).map(|_| one(&c, &u));
                for r in futures_util::future::join_all(burst).await {
                    sent += 1;
                    if let Err(e) = r {
                        bad.push(e);
                    }
                }
            }
            (sent, bad)
        })
    });
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut bad) = (0, Vec::new());
    for t in tasks {
        let (n, b) = t.await.expect("client");
        sent += n;
        bad.extend(b);
    }
    let (hits, accepted) = (a.hits(), a.conns.load(Ordering::Relaxed));
    let closed = a.idle_closed.load(Ordering::Relaxed);
    let raced = d
        .logs()
        .matches("pooled upstream connection failed")
        .count();
    eprintln!(
        "{:.1?}: {sent} requests, backend: {hits} received, {accepted} connections accepted, {closed} closed idle; {raced} requests met a closed pooled connection",
        started.elapsed()
    );
    let logs = d.logs();
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN"))
        .take(10)
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {sent} failed, e.g. {:?}; troupe warned:\n{}",
        bad.len(),
        &bad[..bad.len().min(5)],
        warned.join("\n")
    );
    // Busy all along (the steady clients alone send about 5000).
    assert!(sent > 500, "only {sent} requests in a minute");
    // Every request reached the backend (a retry may add one).
    assert!(hits >= sent, "{hits} received of {sent} sent");
    // The pool reused connections: many requests on each...
    assert!(
        accepted * 5 < hits,
        "{accepted} connections for {hits} requests"
    );
    // ...and the backend closed idle ones all along (about one a burst),
    // which the pool replaced.
    assert!(
        closed >= 20,
        "the backend closed only {closed} idle connections"
    );
    assert!(
        accepted > closed,
        "{accepted} accepted, {closed} closed idle"
    );
}
