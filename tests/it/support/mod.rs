//! Shared test harness: servers, clients and polling.

pub mod backend;
pub mod client;
pub mod daemon;
pub mod downloads;
pub mod load;
pub mod modules;
pub mod nginx;
pub mod pattern;
pub mod redbot;
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

/// Installs the Debian `package` (quietly, waiting for dpkg's lock) for a
/// tool a fresh machine lacks; CI runs as root. Blocking; the caller
/// checks afterwards that it has what it wanted.
pub fn apt_install(package: &str) {
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive \
             apt-get -o DPkg::Lock::Timeout=300 install -y -qq {package}"
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Python 3 `packages` from PyPI (`"h11==0.16.0"`), installed under
/// `target/tools/NAME` by `tests/tools/pypi.sh` when missing: the
/// directory to put on `PYTHONPATH`, or why they could not be had.
pub fn pypi(name: &str, packages: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(repo_root().join("tests/tools/pypi.sh"))
        .arg(name)
        .args(packages)
        .output()
        .map_err(|e| format!("cannot run tests/tools/pypi.sh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
