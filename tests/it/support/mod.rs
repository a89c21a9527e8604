//! Shared test harness: servers, clients and polling.

pub mod backend;
pub mod client;
pub mod daemon;
pub mod downloads;
pub mod load;
pub mod modules;
pub mod nginx;
pub mod pattern;
pub mod reload;
pub mod server;
pub mod strict;
pub mod tls;
pub mod ws;

use std::{future::Future, time::Duration};

/// Polls `check` until it returns true or `within` passes; no fixed sleeps.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for tests without a runtime.
pub fn eventually_sync(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The repository root (where the shipped `config.ron` lives).
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
