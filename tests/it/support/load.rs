//! Traffic for the isolation tests: keep-alive clients that hammer good
//! routes while a module misbehaves, and the check that they saw nothing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::StatusCode;

use super::{client, server::TestServer};

/// Requests `paths` round-robin on one keep-alive client until `stop`;
/// counts answers that are not 200 (a dropped connection panics the task).
pub fn hammer(
    srv: &TestServer,
    paths: &'static [&'static str],
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    hammer_urls(paths.iter().map(|p| srv.url(p)).collect(), stop, served)
}

/// [`hammer`] on full URLs (a [`super::daemon::Daemon`]'s, say).
pub fn hammer_urls(
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = client::h1();
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for url in &urls {
                let req = http::Request::get(url.as_str())
                    .body(Default::default())
                    .unwrap();
                let resp = client::send(&client, req).await;
                served.fetch_add(1, Ordering::Relaxed);
                if resp.status != StatusCode::OK {
                    failures.push(format!("{url}: {}", resp.status));
                }
            }
        }
        failures
    })
}

/// Sends each `(what, status)` of `cases` to `/bad?do=what` of `srv`:
/// first on a quiet server, where each answers its status within
/// `within`; then `rounds` times while three clients load `/hello`, where
/// each answers its status, or 504 once the module's `timeout` cut a call
/// that the load kept waiting on the module pool (which runs only when the
/// connection threads leave the CPU idle), within `within`. `/bad` answers
/// "ok" right after each, the load sees no failure, and the module (named
/// `bad`) was never restarted.
pub async fn misbehaves_alone(
    srv: &TestServer,
    cases: &[(&str, StatusCode)],
    rounds: usize,
    within: Duration,
) {
    let bad = srv.url("/bad");
    let check = |loaded: bool| {
        let bad = bad.clone();
        async move {
            for (what, status) in cases {
                let started = Instant::now();
                let resp = client::get(&format!("{bad}?do={what}")).await;
                let cut = loaded && resp.status == StatusCode::GATEWAY_TIMEOUT;
                assert!(resp.status == *status || cut, "{what}: {}", resp.status);
                assert!(started.elapsed() < within, "{what}");
                assert_eq!(client::get(&bad).await.text(), "ok\n", "after {what}");
            }
        }
    };
    check(false).await;

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let others: Vec<_> = (0..3)
        .map(|_| hammer(srv, &["/hello"], stop.clone(), served.clone()))
        .collect();
    for _ in 0..rounds {
        check(true).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for task in others {
        failures.extend(task.await.expect("a client lost its connection"));
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert!(served.load(Ordering::Relaxed) > 20);
    // A sandbox's failure is its answer to one request, not a crash.
    assert_eq!(srv.running().module("bad").unwrap().loads(), 1);
}
