//! Issue 15: the static-file cache is bounded by bytes and evicts, so a
//! file that becomes hot after the cache filled up is still cached; its
//! hits, misses, evictions and size are in the metrics.

use std::{io::Read, time::Duration};

use crate::support::{daemon::Daemon, tls::curl};

/// Bodies are kept up to 4 KiB, 16 KiB in all: four or so 3 KB files.
const BOUND: u64 = 16 * 1024;

fn metric(admin: &str, name: &str) -> i64 {
    let out = curl(&["-sS", &format!("http://{admin}/metrics")]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(-1, |v| v as i64)
}

fn get(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"), "{path}");
    out
}

#[test]
fn a_file_hot_after_the_cache_filled_is_cached_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    for i in 0..12 {
        std::fs::write(
            dir.path().join(format!("www/f{i}.txt")),
            vec![b'a' + i; 3000],
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("www/late.txt"), vec![b'z'; 3000]).unwrap();
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        format!(
            r#"Config(listen: ["127.0.0.1:0"], log: (access: Off), admin: (listen: "127.0.0.1:0"),
    servers: [(routes: [(path: "/{{*p}}",
        handler: Static(root: "www", cache_max_file_bytes: 4096, cache_total_bytes: {BOUND}))])])"#
        ),
    )
    .unwrap();
    let d = Daemon::start(&cfg);
    let admin = d.admin_addr();
    // Fill the cache, several times over.
    for round in 0..2 {
        for i in 0..12 {
            let body = get(d.addr, &format!("/f{i}.txt"));
            assert!(
                body.ends_with(&[b'a' + i as u8; 3000]),
                "round {round}, f{i}"
            );
        }
    }
    assert!(metric(&admin, "troupe_static_cache_evictions_total") > 0);
    // A file that becomes hot only now is cached all the same.
    let hits = metric(&admin, "troupe_static_cache_hits_total");
    for _ in 0..20 {
        assert!(get(d.addr, "/late.txt").ends_with(&[b'z'; 3000]));
    }
    let late_hits = metric(&admin, "troupe_static_cache_hits_total") - hits;
    assert!(late_hits >= 18, "hits while late.txt was hot: {late_hits}");
    // Memory stays within the bound.
    let bytes = metric(&admin, "troupe_static_cache_bytes");
    let entries = metric(&admin, "troupe_static_cache_entries");
    assert!(
        bytes > 3000 && bytes as u64 <= BOUND,
        "cache bytes: {bytes}"
    );
    assert!((1..=5).contains(&entries), "cache entries: {entries}");
    assert!(metric(&admin, "troupe_static_cache_misses_total") >= 13);
}
