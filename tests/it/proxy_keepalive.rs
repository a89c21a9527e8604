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
    proxy::{group, start, url},
    support::{
        backend::{Behaviour, TestBackend},
        client,
    },
};

const RUN: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Requests at once in a burst: more than the steady clients hold.
const BURST: usize = 6;

/// One GET; `Err` says what went wrong.
async fn one(c: &client::H1, url: &str) -> Result<(), String> {
    let req = Request::get(url).body(Full::default()).expect("request");
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
    let (_dir, d) = start(
        &group("app", &[&a], "pool: (idle_timeout: \"10s\")"),
        r#"(path: "/{*rest}", handler: Proxy(upstream: "app"))"#,
        "",
    );
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
    // Bursts, 0.9 to 1.1 s apart (a fixed spread, so runs are alike).
    tasks.push({
        let (u, stop) = (u.clone(), stop.clone());
        tokio::spawn(async move {
            let c = client::h1();
            let (mut sent, mut bad) = (0, Vec::new());
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let gap = 900 + (i * 7919) % 201;
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
    eprintln!(
        "{:.1?}: {sent} requests, backend: {hits} received, {accepted} connections accepted, {closed} closed idle",
        started.elapsed()
    );
    assert!(
        bad.is_empty(),
        "{} of {sent} failed, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
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
