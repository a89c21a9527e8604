//! The response cache (issue 15, P8.3) on the real binary: a `Proxy`
//! route behind a cache zone, in front of a small origin on loopback that
//! counts what reaches it and answers with the caching headers each test
//! needs.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

use crate::support::{client, daemon::Daemon};

/// The origin: what it was asked, and a switch to make it fail.
#[derive(Default)]
struct Origin {
    /// Requests per path (without the query).
    seen: Mutex<HashMap<String, u64>>,
    /// Conditional requests it answered 304.
    not_modified: AtomicU64,
    /// Answer 500 (`/sie`) or 502 (anything else).
    sick: AtomicBool,
    /// Bumped to change every body and ETag.
    version: AtomicU64,
    /// Requests that came with a `Range`.
    ranged: AtomicU64,
}

impl Origin {
    fn count(&self, path: &str) -> u64 {
        self.seen.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// One answer. The path picks the caching headers:
    /// `/fresh` max-age=60; `/short` max-age=1; `/slow-swr` max-age=1 with
    /// stale-while-revalidate=30; `/sie` max-age=1 with stale-if-error=60;
    /// `/slow*` paths wait 300 ms first; `/nostore`
    /// no-store; `/cookie` Set-Cookie; `/vary` varies on Accept-Encoding
    /// and echoes it; `/tagged/*` carry `Cache-Tag: t1 t2`;
    /// `/echo-host` echoes the X-Forwarded-Host it got; `/big` 64 KiB;
    /// `/page` an HTML page with `Last-Modified`, always the same body.
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        // The route passes its path on whole: `/c/fresh` is `/fresh`.
        let path = req.uri().path();
        let path = path.strip_prefix("/c").unwrap_or(path).to_owned();
        *self.seen.lock().unwrap().entry(path.clone()).or_default() += 1;
        if req.headers().contains_key("range") {
            self.ranged.fetch_add(1, Ordering::SeqCst);
        }
        let n = self.count(&path);
        let v = self.version.load(Ordering::SeqCst);
        let etag = format!("\"v{v}\"");
        if path.starts_with("/slow") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let sick = self.sick.load(Ordering::SeqCst);
        let mut resp = Response::builder().header("etag", &etag);
        let cc = match path.as_str() {
            "/short" => "max-age=1",
            "/slow-swr" => "max-age=1, stale-while-revalidate=30",
            "/sie" => "max-age=1, stale-if-error=60",
            "/nostore" | "/slow-nostore" => "no-store",
            _ => "max-age=60",
        };
        resp = resp.header("cache-control", cc);
        if sick {
            let status = if path == "/sie" { 500 } else { 502 };
            return resp
                .status(status)
                .body(Full::new(Bytes::from("origin is sick")))
                .unwrap();
        }
        if req
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            == Some(&etag)
        {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            return resp
                .status(StatusCode::NOT_MODIFIED)
                .body(Full::default())
                .unwrap();
        }
        let mut body = format!("{path} v{v} #{n}");
        if path == "/page" {
            body.clear();
        }
        match path.as_str() {
            "/cookie" => resp = resp.header("set-cookie", "session=1"),
            "/vary" => {
                resp = resp.header("vary", "Accept-Encoding");
                let ae = req.headers().get("accept-encoding");
                body = format!("{body} ae={:?}", ae.and_then(|v| v.to_str().ok()));
            }
            "/echo-host" => {
                let xfh = req.headers().get("x-forwarded-host");
                body = format!("{body} xfh={:?}", xfh.and_then(|v| v.to_str().ok()));
            }
            "/big" => body = "x".repeat(64 * 1024),
            "/page" => {
                resp = resp
                    .header("content-type", "text/html; charset=utf-8")
                    .header("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT");
                body = format!(
                    "<!doctype html><title>page</title><p>{}",
                    "words ".repeat(300)
                );
            }
            p if p.starts_with("/tagged/") => resp = resp.header("cache-tag", "t1 t2"),
            _ => {}
        }
        resp.body(Full::new(Bytes::from(body))).unwrap()
    }

    async fn start() -> (Arc<Self>, SocketAddr) {
        let origin = Arc::new(Self::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let o = origin.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let o = o.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let o = o.clone();
                        async move { Ok::<_, Infallible>(o.answer(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (origin, addr)
    }
}

/// The config: one zone (`zone` fields), `/c/{*rest}` cached (`cache`
/// fields beyond the zone), and an admin API without a token (loopback).
fn config(origin: SocketAddr, zone: &str, cache: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    upstreams: {{ "origin": (backends: [(addr: "{origin}")]) }},
    cache_zones: {{ "pages": ({zone}) }},
    servers: [( routes: [
        (path: "/c/{{*rest}}", handler: Proxy(upstream: "origin"), cache: (zone: "pages", {cache})),
    ] )],
)"#
    )
}

async fn start(zone: &str, cache: &str) -> (Arc<Origin>, tempfile::TempDir, Daemon) {
    let (origin, addr) = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config(addr, zone, cache)).unwrap();
    let d = Daemon::start(&path);
    (origin, dir, d)
}

fn url(d: &Daemon, path: &str) -> String {
    format!("http://{}{path}", d.addr)
}

fn status(r: &client::Resp) -> String {
    r.header("cache-status").unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_response_is_served_from_memory_and_a_conditional_hit_gets_304() {
    let (origin, _dir, d) = start("", "").await;
    let first = client::get(&url(&d, "/c/fresh")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(status(&first), "troupe; fwd=uri-miss; stored");
    let second = client::get(&url(&d, "/c/fresh")).await;
    assert_eq!(second.body, first.body);
    assert!(
        status(&second).starts_with("troupe; hit; ttl="),
        "{}",
        status(&second)
    );
    assert!(second.header("age").is_some());
    assert_eq!(origin.count("/fresh"), 1);

    let again = client::get_with(&url(&d, "/c/fresh"), &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(origin.count("/fresh"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_send_one_request_upstream() {
    let (origin, _dir, d) = start("", "").await;
    let u = url(&d, "/c/slow");
    let answers = futures_util::future::join_all((0..100).map(|_| {
        let u = u.clone();
        async move { client::get(&u).await }
    }))
    .await;
    assert_eq!(origin.count("/slow"), 1);
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert!(answers.iter().all(|a| a.body == answers[0].body));
    let collapsed = answers
        .iter()
        .filter(|a| status(a).contains("collapsed"))
        .count();
    assert!(collapsed >= 90, "{collapsed} of 100 waited for the fill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncacheable_answer_releases_its_waiters_at_once() {
    let (origin, _dir, d) = start("", "lock_timeout: \"30s\"").await;
    let u = url(&d, "/c/slow-nostore");
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..10).map(|_| {
        let u = u.clone();
        async move { client::get(&u).await }
    }))
    .await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(origin.count("/slow-nostore"), 10);
    // Waiters taking turns would need 10 × 300 ms; released together,
    // they need about two trips.
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let (origin, _dir, d) = start("", "").await;
    let first = client::get(&url(&d, "/c/short")).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = client::get(&url(&d, "/c/short")).await;
    assert_eq!(second.body, first.body);
    assert_eq!(origin.not_modified.load(Ordering::SeqCst), 1);
    assert!(
        status(&second).starts_with("troupe; fwd=stale; fwd-status=304"),
        "{}",
        status(&second)
    );
    // Refreshed: fresh again.
    let third = client::get(&url(&d, "/c/short")).await;
    assert!(status(&third).contains("hit"), "{}", status(&third));
    assert_eq!(origin.count("/short"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_behind() {
    let (origin, _dir, d) = start("", "").await;
    let u = url(&d, "/c/slow-swr");
    client::get(&u).await;
    origin.version.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The refresh takes the origin's 300 ms: these are all answered stale
    // before it ends, and start one refresh between them.
    let started = Instant::now();
    let stale = futures_util::future::join_all((0..5).map(|_| client::get(&u))).await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    for s in &stale {
        assert!(s.text().contains("v0"), "{}", s.text());
        assert!(
            status(s).contains("detail=stale-while-revalidate"),
            "{}",
            status(s)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.count("/slow-swr") < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.count("/slow-swr"), 2);
    let fresh = client::get(&u).await;
    assert!(fresh.text().contains("v1"), "{}", fresh.text());
    assert!(status(&fresh).contains("hit"), "{}", status(&fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_served_when_the_upstream_fails() {
    let (origin, _dir, d) = start("", "use_stale: [Error]").await;
    // stale-if-error from the response itself.
    let sie = client::get(&url(&d, "/c/sie")).await;
    // `use_stale: [Error]` from the config, for a response without it.
    let short = client::get(&url(&d, "/c/short")).await;
    origin.sick.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = client::get(&url(&d, "/c/sie")).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, sie.body);
    assert!(
        status(&stale).contains("fwd-status=500"),
        "{}",
        status(&stale)
    );
    assert!(
        status(&stale).contains("stale-if-error"),
        "{}",
        status(&stale)
    );
    let stale = client::get(&url(&d, "/c/short")).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, short.body);
    assert!(
        status(&stale).contains("fwd-status=502"),
        "{}",
        status(&stale)
    );
    // Nothing stored for a path never fetched: the error passes.
    let none = client::get(&url(&d, "/c/fresh")).await;
    assert_eq!(none.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_must_not_be_shared_is_not_stored() {
    let (origin, _dir, d) = start("", "").await;
    for _ in 0..2 {
        client::get(&url(&d, "/c/nostore")).await;
        client::get(&url(&d, "/c/cookie")).await;
        client::get_with(&url(&d, "/c/fresh"), &[("authorization", "Bearer x")]).await;
        let post = client::send(
            &client::h1(),
            Request::post(url(&d, "/c/posted"))
                .body(Full::new(Bytes::from("x")))
                .unwrap(),
        )
        .await;
        assert_eq!(status(&post), "troupe; fwd=bypass");
    }
    assert_eq!(origin.count("/nostore"), 2);
    assert_eq!(origin.count("/cookie"), 2);
    assert_eq!(origin.count("/fresh"), 2);
    assert_eq!(origin.count("/posted"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_are_kept_per_vary_header_and_unkeyed_headers_do_not_poison() {
    let (origin, _dir, d) = start("", "").await;
    let gz = client::get_with(&url(&d, "/c/vary"), &[("accept-encoding", "gzip")]).await;
    let br = client::get_with(&url(&d, "/c/vary"), &[("accept-encoding", "br")]).await;
    assert!(status(&br).contains("fwd=vary-miss"), "{}", status(&br));
    let gz2 = client::get_with(&url(&d, "/c/vary"), &[("accept-encoding", "gzip")]).await;
    let br2 = client::get_with(&url(&d, "/c/vary"), &[("accept-encoding", "br")]).await;
    assert_eq!(gz2.body, gz.body);
    assert_eq!(br2.body, br.body);
    assert!(gz.text().contains("gzip") && br.text().contains("br"));
    assert_eq!(origin.count("/vary"), 2);

    // An X-Forwarded-Host from an untrusted client never reaches the
    // origin, so it cannot end up in what others are served.
    let evil = client::get_with(
        &url(&d, "/c/echo-host"),
        &[("x-forwarded-host", "evil.example")],
    )
    .await;
    assert!(!evil.text().contains("evil"), "{}", evil.text());
    let other = client::get(&url(&d, "/c/echo-host")).await;
    assert!(!other.text().contains("evil"), "{}", other.text());
}

async fn purge(d: &Daemon, body: &str) -> Value {
    let req = Request::post(format!("http://{}/cache/purge", d.admin_addr()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = client::send(&client::h1(), req).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    serde_json::from_slice(&resp.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_key_prefix_and_tag_through_the_admin_api() {
    let (origin, _dir, d) = start("", "").await;
    for p in ["/c/fresh", "/c/tagged/a", "/c/tagged/b", "/c/short"] {
        client::get(&url(&d, p)).await;
    }
    assert_eq!(
        purge(&d, r#"{"key": "http://127.0.0.1/c/fresh"}"#).await["purged"],
        1
    );
    assert_eq!(
        purge(&d, r#"{"tag": "t2", "zone": "pages"}"#).await["purged"],
        2
    );
    assert_eq!(
        purge(&d, r#"{"prefix": "http://127.0.0.1/c/sh"}"#).await["purged"],
        1
    );
    for p in ["/c/fresh", "/c/tagged/a", "/c/tagged/b", "/c/short"] {
        let r = client::get(&url(&d, p)).await;
        assert!(status(&r).contains("uri-miss"), "{p}: {}", status(&r));
    }
    assert_eq!(origin.count("/fresh"), 2);
    assert_eq!(origin.count("/tagged/a"), 2);

    // A bad order is refused, naming what is wrong.
    let req = Request::post(format!("http://{}/cache/purge", d.admin_addr()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(r#"{"key": "a", "tag": "b"}"#)))
        .unwrap();
    let resp = client::send(&client::h1(), req).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(resp.text().contains("exactly one"), "{}", resp.text());
}

/// The series a zone exports, from the admin API.
async fn metric(d: &Daemon, series: &str) -> f64 {
    let m = client::get(&format!("http://{}/metrics", d.admin_addr())).await;
    m.text()
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_within_the_zone_and_large_answers_pass_unstored() {
    let zone = "memory_bytes: 65536, max_entry_bytes: 16384";
    let (origin, _dir, d) = start(zone, "").await;
    // 64 KiB: larger than an entry may be, so never stored.
    for _ in 0..2 {
        let big = client::get(&url(&d, "/c/big")).await;
        assert_eq!(big.body.len(), 64 * 1024);
    }
    assert_eq!(origin.count("/big"), 2);
    // 200 keys of a few hundred bytes each, then the zone's size.
    for i in 0..200 {
        client::get(&url(&d, &format!("/c/fresh{i}"))).await;
    }
    let bytes = metric(&d, "troupe_cache_bytes{zone=\"pages\"}").await;
    assert!(bytes > 0.0 && bytes <= 65536.0, "{bytes}");
    assert!(metric(&d, "troupe_cache_evictions_total{zone=\"pages\"}").await > 0.0);
    client::get(&url(&d, "/c/fresh199")).await;
    assert!(
        metric(
            &d,
            "troupe_cache_requests_total{status=\"hit\",zone=\"pages\"}"
        )
        .await
            >= 1.0
    );
}

#[test]
fn a_bad_cache_config_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ron");
    let origin: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (zone, cache, line, want) in [
        (
            "memory_bytes: 1000, max_entry_bytes: 2000",
            "",
            6,
            "`max_entry_bytes` (2000) is larger than `memory_bytes` (1000)",
        ),
        ("memory_bytes: 0", "", 6, "must be above 0"),
        ("", "key: \"all\"", 8, "cache key `all` has no variable"),
        ("", "use_stale: [Sometimes]", 8, "Sometimes"),
    ] {
        let text = config(origin, zone, cache);
        let err = troupe::config::load_str(&text, &path)
            .err()
            .unwrap_or_else(|| panic!("accepted: {zone} {cache}"))
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(
            err.starts_with(&format!("{}:{line}:", path.display())),
            "{err}"
        );
    }
    let unknown = config(origin, "", "").replace("zone: \"pages\",", "zone: \"nope\",");
    let err = troupe::config::load_str(&unknown, &path)
        .expect_err("an unknown zone is refused")
        .to_string();
    assert!(err.contains("no cache zone named `nope`"), "{err}");
    assert!(err.contains("pages"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redbot_finds_nothing_wrong_with_a_cached_proxied_answer() {
    // Compressed on the way out, as a site would: the entry is kept
    // whole, and each client gets the coding it asks for.
    let (_origin, addr) = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.ron");
    let text = config(addr, "", "").replace("cache: (", "compression: (), cache: (");
    std::fs::write(&path, text).unwrap();
    let d = Daemon::start(&path);
    let page = url(&d, "/c/page");
    assert!(status(&client::get(&page).await).contains("stored"));
    let notes = tokio::task::spawn_blocking(move || crate::support::redbot::notes(&page))
        .await
        .unwrap();
    for seen in ["FRESHNESS_FRESH", "CONNEG_GZIP_GOOD", "INM_304", "IMS_304"] {
        assert!(
            notes.iter().any(|(_, id, _)| id.starts_with(seen)),
            "REDbot did not note {seen}: {notes:#?}"
        );
    }
    let bad = crate::support::redbot::complaints(
        &notes,
        &[
            "conneg", "vary", "etag", "encoding", "inm", "ims", "validat", "fresh", "stale",
            "cache", "cc_", "age", "lm_", "stor",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}\nall notes: {notes:#?}");
}

mod disk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_answers_a_range_from_the_stored_body() {
    let (origin, _dir, d) = start("", "").await;
    let whole = client::get(&url(&d, "/c/ranged")).await;
    assert_eq!(whole.text(), "/ranged v0 #1");
    let len = whole.body.len();
    let u = url(&d, "/c/ranged");

    let part = client::get_with(&u, &[("range", "bytes=1-6")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.text(), "ranged");
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1-6/{len}").as_str())
    );
    assert!(
        status(&part).starts_with("troupe; hit"),
        "{}",
        status(&part)
    );
    let tail = client::get_with(&u, &[("range", "bytes=-2")]).await;
    assert_eq!(
        (tail.status, tail.text()),
        (StatusCode::PARTIAL_CONTENT, "#1".into())
    );

    // Past the end: 416, with the length.
    let past = client::get_with(&u, &[("range", "bytes=999-")]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // If-Range: our entity tag gets the part, another the whole.
    let same = client::get_with(&u, &[("range", "bytes=0-0"), ("if-range", "\"v0\"")]).await;
    assert_eq!(
        (same.status, same.text()),
        (StatusCode::PARTIAL_CONTENT, "/".into())
    );
    let other = client::get_with(&u, &[("range", "bytes=0-0"), ("if-range", "\"v9\"")]).await;
    assert_eq!((other.status, other.body.len()), (StatusCode::OK, len));
    assert_eq!(other.header("accept-ranges"), Some("bytes"));
    assert_eq!(origin.count("/ranged"), 1);
}

/// A hit for `u` once the fill behind a ranged miss has stored it.
async fn hit_after_fill(u: &str) -> client::Resp {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = client::get(u).await;
        if status(&r).starts_with("troupe; hit") || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_miss_with_a_range_fills_the_whole_entry_and_gets_its_part() {
    let (origin, _dir, d) = start("", "").await;
    let whole = format!(
        "<!doctype html><title>page</title><p>{}",
        "words ".repeat(300)
    );
    let u = url(&d, "/c/page");
    let part = client::get_with(&u, &[("range", "bytes=100-111")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.text(), whole[100..=111]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-111/{}", whole.len()).as_str())
    );
    assert!(status(&part).contains("fwd=uri-miss"), "{}", status(&part));
    // The upstream was asked for all of it, and that is what was kept.
    assert_eq!(origin.ranged.load(Ordering::SeqCst), 0);
    let after = hit_after_fill(&u).await;
    assert!(
        status(&after).starts_with("troupe; hit"),
        "{}",
        status(&after)
    );
    assert_eq!(after.text(), whole);
    assert_eq!(origin.count("/page"), 1);

    // Past the end of a miss: 416 with the length; the whole is still kept.
    let t = url(&d, "/c/tiny");
    let past = client::get_with(&t, &[("range", "bytes=999-")]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let len = "/tiny v0 #1".len();
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let after = hit_after_fill(&t).await;
    assert_eq!(after.text(), "/tiny v0 #1", "{}", status(&after));
    assert!(status(&after).starts_with("troupe; hit"));
    // If-Range that does not match the fresh answer: the whole, as a 200.
    let other = client::get_with(
        &url(&d, "/c/other"),
        &[("range", "bytes=0-0"), ("if-range", "\"v9\"")],
    )
    .await;
    assert_eq!(
        (other.status, other.text()),
        (StatusCode::OK, "/other v0 #1".into())
    );
    assert_eq!(origin.ranged.load(Ordering::SeqCst), 0);
}
