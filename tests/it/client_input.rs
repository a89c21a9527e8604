//! Client input never causes a 5xx (issue 14): a bounded run of mutated
//! requests (byte flips, inserted tokens, spliced request lines, obs-text
//! values, a dropped Host) against the real binary with the shipped
//! config, whose routes cover every handler kind: Return, Static,
//! Redirect, a C, a Rust, a Lua and a WebAssembly module, and a Proxy to
//! local backends. Nothing may answer 5xx, and the server stays up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{
    backend::{Behaviour, TestBackend},
    daemon::Daemon,
    eventually,
    modules::shipped_config,
    strict::exchange,
};

/// Requests for every route kind of the shipped config.
const SEEDS: &[&[u8]] = &[
    b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\nConnection: close\r\n\r\n",
    b"GET /hello/c?name=you HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\nConnection: close\r\n\r\n",
    b"GET /hello/rust/you HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nConnection: close\r\n\r\n",
    b"GET /hello/wasm?name=you HTTP/1.1\r\nHost: localhost\r\nX-Name: a\r\nConnection: close\r\n\r\n",
    b"GET /hello/lua?name=you HTTP/1.1\r\nHost: localhost\r\nX-Name: a\r\nConnection: close\r\n\r\n",
    b"POST /hello/wasm HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"POST /hello/lua HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /hello/c HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    b"GET /app/headers?a=b HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n",
    b"POST /app/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-10\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: \"x\"\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    b"GET /hello/rust?name=a%20b HTTP/1.0\r\n\r\n",
    b"HEAD /crl/x.crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
];

/// What a mutation may insert.
const TOKENS: &[&[u8]] = &[
    b" ",
    b"\t",
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b":",
    b"%",
    b"%00",
    b"%ff",
    b"..",
    b"/../",
    b"?",
    b"#",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"Host: other\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 3\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: upgrade\r\nUpgrade: websocket\r\n",
    b"Range: bytes=5-1\r\n",
    b"X-Forwarded-For: ::1, 300.1.1.1\r\n",
    b"Accept-Encoding: gzip;q=0.5, br;q=x\r\n",
    b"{}",
    b"$",
    b"HTTP/1.1",
];

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One mutated request.
fn mutate(rng: &mut Rng) -> Vec<u8> {
    let mut req = SEEDS[rng.below(SEEDS.len())].to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(req.len() + 1);
        match rng.below(7) {
            0 if at < req.len() => req[at] = rng.next() as u8,
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                req.splice(at..at, t.iter().copied());
            }
            2 => {
                // Another seed's request line in place of this one's.
                let other = SEEDS[rng.below(SEEDS.len())];
                let end = |r: &[u8]| r.iter().position(|&b| b == b'\n').unwrap_or(r.len());
                let line = other[..end(other)].to_vec();
                let mine = end(&req);
                req.splice(..mine, line);
            }
            3 => {
                // A header value of obs-text.
                let value: Vec<u8> = (0..1 + rng.below(8))
                    .map(|_| 0x80 | rng.next() as u8)
                    .collect();
                let line = [b"X-Obs: ".as_slice(), &value, b"\r\n"].concat();
                let at = req
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(0, |p| p + 2);
                req.splice(at..at, line);
            }
            4 => {
                if let Some(p) = find(&req, b"Host: localhost\r\n") {
                    req.drain(p..p + 17);
                }
            }
            5 => req.truncate(at.max(1)),
            _ => {
                let t = rng.below(req.len().max(1));
                if t < req.len() {
                    req.remove(t);
                }
            }
        }
    }
    req
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_never_get_a_5xx_on_any_handler_kind() {
    let (one, two) = (
        TestBackend::start("one", Behaviour::default()).await,
        TestBackend::start("two", Behaviour::default()).await,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = shipped_config(dir.path());
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("127.0.0.1:9001", &one.addr.to_string())
        .replace("127.0.0.1:9002", &two.addr.to_string());
    std::fs::write(&path, text).expect("write config");
    let troupe = tokio::task::spawn_blocking(move || Daemon::start(&path))
        .await
        .expect("start");
    let addr = troupe.addr;
    // Every module route answers before the run starts.
    for seed in &SEEDS[..5] {
        assert!(
            eventually(Duration::from_secs(20), || async {
                exchange(addr, seed, Duration::from_secs(5)).await.status == Some(200)
            })
            .await,
            "{}",
            String::from_utf8_lossy(seed)
        );
    }

    let seed = std::env::var("TROUPE_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = Vec::new();
    // Many at once: a mutation that leaves the head unfinished waits out
    // its read timeout.
    for worker in 0..32u64 {
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_add(worker.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
            let mut bad = Vec::new();
            let mut seen = std::collections::BTreeMap::<Option<u16>, u64>::new();
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < 4000 {
                let req = mutate(&mut rng);
                let got = exchange(addr, &req, Duration::from_secs(1)).await;
                *seen.entry(got.status).or_default() += 1;
                // Every status line, past a `100 Continue`.
                let server_error = got.text.lines().any(|l| {
                    l.starts_with("HTTP/1.")
                        && l.split(' ').nth(1).is_some_and(|s| s.starts_with('5'))
                });
                if server_error {
                    bad.push(format!(
                        "{:?} for {:?}\n{}",
                        got.status,
                        String::from_utf8_lossy(&req),
                        got.text
                    ));
                }
            }
            (bad, seen)
        }));
    }
    let mut bad = Vec::new();
    let mut seen = std::collections::BTreeMap::<Option<u16>, u64>::new();
    for t in tasks {
        let (b, s) = t.await.expect("worker");
        bad.extend(b);
        for (status, count) in s {
            *seen.entry(status).or_default() += count;
        }
    }
    let n: u64 = seen.values().sum();
    // The figure for the docs: answers by status (None: none in 1 s).
    println!("{n} mutated requests, answers by status: {seen:?}");
    assert!(
        bad.is_empty(),
        "{} of {n} answers were 5xx (seed {seed:#x}):\n{}\n\nlog:\n{}",
        bad.len(),
        bad.iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n"),
        troupe
            .logs()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // 32 workers whose every request waited out its 1 s would still send
    // 640; a few thousand is usual (about 2,700 here).
    assert!(n >= 600, "only {n} requests in the time");
    // Still up.
    let after = exchange(addr, SEEDS[0], Duration::from_secs(5)).await;
    assert_eq!(after.status, Some(200), "{}", after.text);
}
