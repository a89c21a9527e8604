//! The disk tier of a cache zone (issue 15, P8.3): entries outlive the
//! memory tier and the process, a file that is not whole is removed and
//! never served, and the `cache` sweeper keeps the files within
//! `max_bytes` and `inactive`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use http::StatusCode;
use sha2::{Digest, Sha256};

use super::{Origin, metric, purge, status, url};
use crate::support::{client, daemon::Daemon};

/// One zone with a disk tier under the config's directory (`cache/`),
/// `/c/{*rest}` cached in it.
fn config(origin: SocketAddr, zone: &str, disk: &str) -> String {
    super::config(
        origin,
        &format!("{zone} disk: (path: \"cache\", {disk})"),
        "",
    )
}

struct Setup {
    origin: Arc<Origin>,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    async fn new(zone: &str, disk: &str) -> Self {
        let (origin, addr) = Origin::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.ron");
        std::fs::write(&config, self::config(addr, zone, disk)).unwrap();
        Self {
            origin,
            dir,
            config,
        }
    }

    /// A daemon on the config, once its cache index is loaded.
    fn start(&self) -> Daemon {
        let d = Daemon::start(&self.config);
        assert!(
            d.wait_for_log("cache index loaded", Duration::from_secs(10)),
            "{}",
            d.logs()
        );
        d
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The file of `path`'s entry (no `Vary`): nginx's `levels=2:2` over
    /// the SHA-256 of the key.
    fn file_of(&self, path: &str) -> PathBuf {
        let key = format!("http://127.0.0.1{path}");
        let name: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.root().join(&name[..2]).join(&name[2..4]).join(name)
    }

    /// The entry files under the root.
    fn files(&self) -> Vec<PathBuf> {
        walk(&self.root())
            .into_iter()
            .filter(|p| !file_name(p).starts_with('.'))
            .collect()
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits up to 10 s for `done`.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, done: impl FnMut() -> F) {
    assert!(
        crate::support::eventually(Duration::from_secs(10), done).await,
        "never: {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_outlive_memory_evictions_and_a_restart_and_purge_removes_their_files() {
    // A memory tier of 16 KiB: 100 entries push the first ones out of it.
    let s = Setup::new("memory_bytes: 16384, max_entry_bytes: 8192,", "").await;
    let d = s.start();
    let first = client::get(&url(&d, "/c/fresh")).await;
    assert_eq!(status(&first), "troupe; fwd=uri-miss; stored");
    for i in 0..100 {
        client::get(&url(&d, &format!("/c/fresh{i}"))).await;
    }
    eventually("101 files", || async { s.files().len() == 101 }).await;
    assert!(s.file_of("/c/fresh").is_file());
    assert!(metric(&d, "troupe_cache_evictions_total{zone=\"pages\"}").await > 0.0);
    // At most what memory holds can be a memory hit: every other key is
    // read back from its file.
    let in_memory = metric(&d, "troupe_cache_entries{zone=\"pages\"}").await;
    assert!(in_memory < 101.0, "{in_memory}");
    let back = client::get(&url(&d, "/c/fresh")).await;
    assert!(
        status(&back).starts_with("troupe; hit"),
        "{}",
        status(&back)
    );
    assert_eq!(back.body, first.body);
    for i in 0..100 {
        let r = client::get(&url(&d, &format!("/c/fresh{i}"))).await;
        assert!(status(&r).starts_with("troupe; hit"), "{i}: {}", status(&r));
    }
    let reads = metric(&d, "troupe_cache_disk_reads_total{zone=\"pages\"}").await;
    assert!(
        reads >= 101.0 - in_memory,
        "{reads} read, {in_memory} in memory"
    );
    assert_eq!(s.origin.count("/fresh42"), 1);
    drop(d);

    // A new process: the loader finds the files again.
    let d = s.start();
    assert!(d.logs().contains("files=101"), "{}", d.logs());
    let again = client::get(&url(&d, "/c/fresh")).await;
    assert!(
        status(&again).starts_with("troupe; hit"),
        "{}",
        status(&again)
    );
    assert_eq!(again.body, first.body);
    assert_eq!(s.origin.count("/fresh"), 1);
    assert_eq!(
        metric(&d, "troupe_cache_disk_files{zone=\"pages\"}").await,
        101.0
    );

    // Purge reaches the disk tier too.
    assert_eq!(
        purge(&d, r#"{"prefix": "http://127.0.0.1/c/fresh"}"#).await["purged"],
        101
    );
    assert!(s.files().is_empty(), "{:?}", s.files());
    let gone = client::get(&url(&d, "/c/fresh7")).await;
    assert!(status(&gone).contains("uri-miss"), "{}", status(&gone));
}

/// Descriptors of `pid` open on files under `root`: (all, unlinked ones).
fn held_under(pid: i32, root: &Path) -> (usize, usize) {
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.starts_with(&*root.to_string_lossy()))
        .collect();
    let gone = links.iter().filter(|l| l.ends_with(" (deleted)")).count();
    (links.len(), gone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_hold_their_files_open_until_a_file_is_removed_by_hand() {
    // A memory tier of 4 KiB: most of 40 entries are read from disk.
    let s = Setup::new("memory_bytes: 4096, max_entry_bytes: 2048,", "").await;
    let d = s.start();
    let keys: Vec<String> = (0..40).map(|i| format!("/c/fresh{i}")).collect();
    for k in &keys {
        client::get(&url(&d, k)).await;
    }
    eventually("40 files", || async { s.files().len() == 40 }).await;
    for _ in 0..2 {
        for k in &keys {
            let r = client::get(&url(&d, k)).await;
            assert!(status(&r).starts_with("troupe; hit"), "{k}: {}", status(&r));
        }
    }
    // The files read back are held for the next hits, not reopened.
    let (held, gone) = held_under(d.pid(), &s.root());
    assert!(
        (1..=40).contains(&held) && gone == 0,
        "{held} held, {gone} unlinked"
    );
    let reads = metric(&d, "troupe_cache_disk_reads_total{zone=\"pages\"}").await;

    // Removed by hand (not purged): within a second a held file is seen
    // to be gone, and the key is a miss, as if it had been opened.
    for f in s.files() {
        std::fs::remove_file(f).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut misses = 0;
    for k in &keys {
        let r = client::get(&url(&d, k)).await;
        assert_eq!(r.status, StatusCode::OK);
        let st = status(&r);
        match st.as_str() {
            s if s.contains("uri-miss") => misses += 1,
            // Still in the memory tier, which never read the file.
            s if s.starts_with("troupe; hit") => {}
            _ => panic!("{k}: {st}"),
        }
    }
    assert!(misses >= 30, "{misses} misses");
    assert_eq!(
        metric(&d, "troupe_cache_disk_reads_total{zone=\"pages\"}").await,
        reads,
        "a removed file was read"
    );
    // The removed files' descriptors are closed.
    let (_, gone) = held_under(d.pid(), &s.root());
    assert_eq!(gone, 0, "descriptors of removed files still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_corrupt_or_foreign_file_is_removed_never_served() {
    let s = Setup::new("", "").await;
    let d = s.start();
    let paths = ["/c/fresh1", "/c/fresh2", "/c/fresh3", "/c/fresh4"];
    for p in paths {
        client::get(&url(&d, p)).await;
    }
    eventually("4 files", || async { s.files().len() == 4 }).await;
    drop(d);

    let [flipped, truncated, garbage, moved] = paths.map(|p| s.file_of(p));
    // A body byte flipped: the length holds, the CRC does not.
    let mut bytes = std::fs::read(&flipped).unwrap();
    *bytes.last_mut().unwrap() ^= 0x20;
    std::fs::write(&flipped, bytes).unwrap();
    // Cut short, as by a crash in a write that was not renamed into place.
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    std::fs::write(&garbage, b"not a cache file at all").unwrap();
    // Another entry's file under this one's name.
    std::fs::copy(s.file_of("/c/fresh1"), &moved).unwrap();
    // A temporary file a crash left behind.
    let stray = s.root().join("ab/cd/.abcd.1.2.tmp");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"half").unwrap();

    let d = s.start();
    assert!(d.logs().contains("files=1 removed=3"), "{}", d.logs());
    assert!(!truncated.exists() && !garbage.exists() && !moved.exists());
    assert!(!stray.exists());
    // The flipped file passed the loader; the hit that reads it finds it
    // out, removes it, and goes upstream.
    for p in paths {
        let r = client::get(&url(&d, p)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(status(&r).contains("uri-miss"), "{p}: {}", status(&r));
        assert!(r.text().ends_with("#2"), "{p}: {}", r.text());
    }
    assert_eq!(
        metric(
            &d,
            "troupe_cache_disk_removed_total{why=\"corrupt\",zone=\"pages\"}"
        )
        .await,
        4.0
    );
    // Stored again, whole.
    eventually("4 good files", || async { s.files().len() == 4 }).await;
    drop(d);
    let d = s.start();
    assert!(d.logs().contains("files=4 removed=0"), "{}", d.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_keeps_the_disk_within_max_bytes_then_drops_inactive_files() {
    let s = Setup::new(
        "max_entry_bytes: 4096,",
        "max_bytes: 16384, inactive: \"3s\"",
    )
    .await;
    let d = s.start();
    for i in 0..60 {
        client::get(&url(&d, &format!("/c/fresh{i}"))).await;
    }
    let within = || {
        let files = s.files();
        let total: u64 = files
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        total <= 16384 && !files.is_empty()
    };
    eventually("files within max_bytes", || async { within() }).await;
    assert!(
        metric(
            &d,
            "troupe_cache_disk_removed_total{why=\"size\",zone=\"pages\"}"
        )
        .await
            > 0.0
    );
    // The most recent ones are those kept.
    assert!(s.file_of("/c/fresh59").is_file());
    assert!(!s.file_of("/c/fresh0").exists());
    // Unused for `inactive`: every file goes.
    eventually("no files left", || async { s.files().is_empty() }).await;
    assert!(
        metric(
            &d,
            "troupe_cache_disk_removed_total{why=\"inactive\",zone=\"pages\"}"
        )
        .await
            > 0.0
    );
}

#[test]
fn a_bad_disk_tier_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ron");
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let origin: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (zone, disk, want) in [
        (
            "max_entry_bytes: 8192,",
            "max_bytes: 4096",
            "its disk's `max_bytes` (4096) is smaller than `max_entry_bytes` (8192)",
        ),
        ("", "inactive: \"soon\"", "soon"),
    ] {
        let text = config(origin, zone, disk);
        let err = troupe::config::load_str(&text, &path)
            .err()
            .unwrap_or_else(|| panic!("accepted: {zone} {disk}"))
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(err.starts_with(&format!("{}:6:", path.display())), "{err}");
    }
    // A directory that cannot be made (under a file).
    let text = config(origin, "", "").replace("\"cache\"", "\"a-file/cache\"");
    let err = troupe::config::load_str(&text, &path)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("cannot make its directory `a-file/cache`"),
        "{err}"
    );
    assert!(err.starts_with(&format!("{}:6:", path.display())), "{err}");
    // Two zones, one directory.
    let text = config(origin, "", "").replace(
        "cache_zones: {",
        "cache_zones: { \"other\": (disk: (path: \"cache\")),",
    );
    let err = troupe::config::load_str(&text, &path)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("both keep their files in `cache`"), "{err}");
}
