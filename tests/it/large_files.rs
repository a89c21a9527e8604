//! Issue 15: large static files sent without copies. On plain HTTP/1.1 the
//! file's bytes go out with `sendfile` (the `troupe_http_sendfile_bytes_total`
//! metric counts them); TLS and HTTP/2 read the file. Byte-for-byte
//! downloads on each path, a range, HEAD and pipelined requests after a
//! large response, and files truncated or rewritten mid-download: the
//! response is cut, never a mix of versions, and the server goes on.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use tempfile::TempDir;

use crate::support::{
    daemon::Daemon,
    eventually_sync,
    tls::{Pki, curl, curl_https},
};

const SIZE: usize = 8 * 1024 * 1024 + 12_345;
/// Larger than any loopback socket buffer, so a client that stops reading
/// keeps the download in flight while the file changes.
const HUGE: usize = 48 * 1024 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed))
        .collect()
}

struct Files {
    _d: Daemon,
    plain: SocketAddr,
    tls: SocketAddr,
    admin: String,
    pki: Pki,
    dir: TempDir,
}

impl Files {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/big.bin"), pattern(SIZE, 0)).unwrap();
        std::fs::write(dir.path().join("www/small.txt"), "small\n").unwrap();
        let cfg = dir.path().join("config.ron");
        std::fs::write(
            &cfg,
            r#"Config(
    listen: ["127.0.0.1:0", "127.0.0.2:0 tls"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    servers: [
        (names: ["a.test"], default: true, tls: (cert: "a.crt", key: "a.key"),
         routes: [(path: "/{*p}", handler: Static(root: "www"))]),
        (names: ["plain.test"], routes: [(path: "/{*p}", handler: Static(root: "www"))]),
    ],
)"#,
        )
        .unwrap();
        let d = Daemon::start(&cfg);
        let addrs = d.listening();
        let admin = d.admin_addr();
        Self {
            plain: addrs[0],
            tls: addrs[1],
            _d: d,
            admin,
            pki,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("www").join(name)
    }

    /// The metric's value (connections add their bytes when they close).
    fn sendfile_bytes(&self) -> u64 {
        let out = curl(&["-sS", &format!("http://{}/metrics", self.admin)]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("troupe_http_sendfile_bytes_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// One response read off a connection: the head and the body its
/// Content-Length announced (none for HEAD).
fn read_response(r: &mut impl BufRead, head_only: bool) -> (String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "closed in a head: {head}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; if head_only { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    (head, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

#[test]
fn plain_http1_sends_with_sendfile_and_pipelines_after_it() {
    let f = Files::start();
    let want = pattern(SIZE, 0);
    let mut s = connect(f.plain);
    // Five requests in one write: hyper answers them in order on the one
    // connection, each after the previous body's last byte.
    s.write_all(
        b"GET /big.bin HTTP/1.1\r\nHost: plain.test\r\n\r\n\
          GET /small.txt HTTP/1.1\r\nHost: plain.test\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: plain.test\r\nRange: bytes=1000-2999\r\n\r\n\
          HEAD /big.bin HTTP/1.1\r\nHost: plain.test\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: plain.test\r\nRange: bytes=-7\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let (head, body) = read_response(&mut r, false);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), SIZE);
    assert!(body == want, "the download differs from the file");
    let (head, body) = read_response(&mut r, false);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"small\n");
    let (head, body) = read_response(&mut r, false);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 1000-2999/{SIZE}").as_str())
    );
    assert_eq!(body, want[1000..3000]);
    let (head, _) = read_response(&mut r, true);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(SIZE.to_string().as_str())
    );
    let (head, body) = read_response(&mut r, false);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(body, want[SIZE - 7..]);
    drop(r);
    drop(s);
    // The full body and both ranges went out with sendfile (counted when
    // the connection closed).
    let sent = SIZE as u64 + 2000 + 7;
    assert!(
        eventually_sync(Duration::from_secs(5), || f.sendfile_bytes() >= sent - 3),
        "sendfile bytes: {} (want about {sent})",
        f.sendfile_bytes()
    );
}

#[test]
fn tls_and_http2_downloads_match_and_read_the_file() {
    let f = Files::start();
    let want = pattern(SIZE, 0);
    for (i, flag) in ["--http1.1", "--http2"].into_iter().enumerate() {
        let out = f.dir.path().join(format!("tls-{i}.bin"));
        let res = curl_https(
            f.tls,
            &f.pki,
            "a.test",
            "/big.bin",
            &[
                flag,
                "-o",
                out.to_str().unwrap(),
                "-w",
                "%{http_version} %{http_code}",
            ],
        );
        let status = String::from_utf8_lossy(&res.stdout);
        assert!(status.ends_with(" 200"), "{flag}: {status}");
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{flag}: the download differs"
        );
    }
    // HTTP/2 without TLS (prior knowledge) reads the file too.
    let out = f.dir.path().join("h2c.bin");
    let res = curl(&[
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        "Host: plain.test",
        "-o",
        out.to_str().unwrap(),
        "-w",
        "%{http_version} %{http_code}",
        &format!("http://{}/big.bin", f.plain),
    ]);
    assert_eq!(String::from_utf8_lossy(&res.stdout), "2 200");
    assert!(
        std::fs::read(&out).unwrap() == want,
        "h2c: the download differs"
    );
    // None of those used sendfile: the metric can tell.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.sendfile_bytes(), 0);
}

/// Starts a download of `name` (HUGE bytes) and reads its first MiB: the
/// rest is in flight, most of it still in the file.
fn start_download(f: &Files, name: &str) -> (BufReader<TcpStream>, String) {
    let mut s = connect(f.plain);
    write!(s, "GET /{name} HTTP/1.1\r\nHost: plain.test\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(HUGE.to_string().as_str())
    );
    (r, head)
}

/// Reads the rest of the body until the server closes the connection.
fn read_to_close(r: &mut BufReader<TcpStream>, got: &mut Vec<u8>) {
    let mut buf = vec![0; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn still_serves(f: &Files, name: &str, len: usize) {
    let mut s = connect(f.plain);
    write!(s, "GET /{name} HTTP/1.1\r\nHost: plain.test\r\n\r\n").unwrap();
    let (head, body) = read_response(&mut BufReader::new(s), false);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), len);
}

#[test]
fn a_file_truncated_mid_download_cuts_the_response() {
    let f = Files::start();
    std::fs::write(f.path("huge.bin"), pattern(HUGE, 0)).unwrap();
    let (mut r, _) = start_download(&f, "huge.bin");
    let mut got = vec![0; 1 << 20];
    r.read_exact(&mut got).unwrap();
    truncate(&f.path("huge.bin"), 1 << 20);
    read_to_close(&mut r, &mut got);
    assert!(got.len() < HUGE, "a truncated file's response was not cut");
    // sendfile hands the socket references to the file's pages: bytes
    // still queued when the file was cut may go out as the kernel left
    // them (zeros). The response is cut, so the client knows: what it did
    // get is the file's bytes, or zeros past the new end.
    let want = pattern(HUGE, 0);
    let bad = got
        .iter()
        .zip(&want)
        .enumerate()
        .position(|(i, (a, b))| a != b && (i < 1 << 20 || *a != 0));
    assert!(
        bad.is_none(),
        "bytes other than the file's were sent: first at {bad:?} of {}",
        got.len()
    );
    // The server is still up, and serves the file as it is now.
    still_serves(&f, "huge.bin", 1 << 20);
    still_serves(&f, "big.bin", SIZE);
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_file_rewritten_mid_download_is_cut_never_mixed() {
    let f = Files::start();
    std::fs::write(f.path("huge.bin"), pattern(HUGE, 0)).unwrap();
    let (mut r, head) = start_download(&f, "huge.bin");
    let etag = header(&head, "etag").unwrap().to_owned();
    let mut got = vec![0; 1 << 20];
    r.read_exact(&mut got).unwrap();
    // Same length, new bytes, written over the old ones in place.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.path("huge.bin"))
        .unwrap()
        .write_all(&pattern(HUGE, 1))
        .unwrap();
    read_to_close(&mut r, &mut got);
    let old = pattern(HUGE, 0);
    // Complete only if every byte is the old version's; else cut short.
    if got.len() == HUGE {
        assert!(
            got == old,
            "a complete body mixing two versions under {etag}"
        );
    }
    assert!(
        got.len() < HUGE,
        "the rewrite came too late to test anything"
    );
    still_serves(&f, "huge.bin", HUGE);
}

/// `name`'s body over plain HTTP/1.1 (sendfile), or of the byte range
/// `first..=last`.
fn get(f: &Files, name: &str, range: Option<(usize, usize)>) -> (String, Vec<u8>) {
    let mut s = connect(f.plain);
    let range = range.map_or(String::new(), |(a, b)| format!("Range: bytes={a}-{b}\r\n"));
    write!(s, "GET /{name} HTTP/1.1\r\nHost: plain.test\r\n{range}\r\n").unwrap();
    read_response(&mut BufReader::new(s), false)
}

/// The cache keeps a large file open for every request that streams it
/// (no `open`, `mmap` or `close` per request): concurrent ranges over
/// sendfile, TLS and HTTP/2 each read at their own offsets, never through
/// the descriptor's shared position.
#[test]
fn concurrent_ranges_over_every_path_share_the_held_file() {
    let f = Files::start();
    let want = pattern(SIZE, 0);
    // The first answer puts the file in the cache, which holds it open.
    assert!(get(&f, "big.bin", None).1 == want);
    std::thread::scope(|scope| {
        for t in 0..6usize {
            let (f, want) = (&f, &want);
            scope.spawn(move || {
                for round in 0..4usize {
                    // Over 256 KiB, so a read-path range takes several reads.
                    let first = (t * 7_919 + round * 1_000_003) % (SIZE - 400_000);
                    let last = first + 300_000;
                    let body = if t % 2 == 0 {
                        let (head, body) = get(f, "big.bin", Some((first, last)));
                        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
                        body
                    } else {
                        let flag = if t % 4 == 1 { "--http2" } else { "--http1.1" };
                        let range = format!("{first}-{last}");
                        let res =
                            curl_https(f.tls, &f.pki, "a.test", "/big.bin", &[flag, "-r", &range]);
                        assert!(res.status.success(), "{res:?}");
                        res.stdout
                    };
                    assert!(
                        body == want[first..=last],
                        "thread {t} round {round}: bytes {first}-{last} differ"
                    );
                }
            });
        }
    });
}

/// A file renamed over the path with the old one's length and mtime (as
/// `cp -p` or `rsync -t` make it) is another file: the held one is let go
/// when the entry is checked again (within a second), and the new bytes
/// are served.
#[test]
fn a_file_renamed_over_with_the_same_length_and_mtime_is_served_after_the_recheck() {
    let f = Files::start();
    assert!(get(&f, "big.bin", None).1 == pattern(SIZE, 0));
    let mtime = std::fs::metadata(f.path("big.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let tmp = f.path(".big.bin.tmp");
    std::fs::write(&tmp, pattern(SIZE, 9)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(&tmp, f.path("big.bin")).unwrap();
    let new = pattern(SIZE, 9);
    assert!(
        eventually_sync(Duration::from_secs(5), || get(&f, "big.bin", None).1 == new),
        "the replaced file's bytes were never served"
    );
}

/// The files cache entries hold open are bounded: at most an eighth of the
/// process's descriptor limit, so connections keep the rest. 60 files,
/// each streamed from disk, under a limit of 160 descriptors.
#[test]
fn files_held_open_stay_under_an_eighth_of_the_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    for i in 0..60 {
        std::fs::write(
            dir.path().join(format!("www/f{i}.txt")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(routes: [(path: "/{*p}", handler: Static(root: "www", cache_max_file_bytes: 0))])],
)"#,
    )
    .unwrap();
    let d = Daemon::start(&cfg);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    assert!(before < 100, "{before} descriptors open at the start");
    // Set before the first file is held, which is when the cap is read.
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg("--nofile=160:160")
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    for i in 0..60 {
        let mut s = connect(d.addr);
        write!(
            s,
            "GET /f{i}.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (head, body) = read_response(&mut BufReader::new(s), false);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, format!("file {i}\n").as_bytes());
    }
    // The closed connections' descriptors go; the held files stay.
    std::thread::sleep(Duration::from_millis(300));
    let held = fds().saturating_sub(before);
    assert!(
        (10..=20).contains(&held),
        "{held} descriptors more than at the start (want the cap, 20, or a little under)"
    );
}
