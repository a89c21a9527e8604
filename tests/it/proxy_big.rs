//! Bodies of a gigabyte through the proxy, both ways, on the real binary
//! (issue 13: "a 1 GB upload and a 1 GB download through the proxy keep
//! Troupe's memory flat"). Every end streams: the backend makes the
//! download as it is read and checks the upload as it comes
//! (`support::pattern`), and the client does the same, so the only place
//! a whole body could pile up is Troupe, whose peak resident memory
//! (`VmHWM`) is read before and after.

use std::time::Instant;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::{
    proxy::{group, url},
    support::{
        backend::{Behaviour, TestBackend},
        daemon::Daemon,
        pattern,
    },
};

/// Each way.
const SIZE: u64 = 1 << 30;
/// Troupe's peak memory may grow by at most this much over its peak
/// before the transfers: a few buffers per connection, never a body.
const BOUND_KIB: u64 = 32 * 1024;

/// VmHWM (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_each_way_streams_through_in_flat_memory() {
    let a = TestBackend::start("a", Behaviour::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.ron");
    std::fs::write(
        &path,
        format!(
            r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    limits: (max_body_bytes: 2000000000, body_timeout: "10m"),
    upstreams: {{ {} }},
    servers: [( routes: [ (path: "/{{*rest}}", handler: Proxy(upstream: "app")) ] )],
)"#,
            group("app", &[&a], "")
        ),
    )
    .expect("write config");
    let d = Daemon::start(&path);
    let c = Client::builder(TokioExecutor::new())
        .build_http::<BoxBody<Bytes, std::convert::Infallible>>();
    // Warm up (a pooled connection, the first allocations), then take the
    // peak before the big transfers.
    let r = c
        .request(Request::get(url(&d, "/")).body(BoxBody::default()).unwrap())
        .await
        .expect("warm-up");
    assert_eq!(r.status(), StatusCode::OK);
    let _ = r.into_body().collect().await;
    let before = peak_rss_kib(d.pid());

    let t = Instant::now();
    let resp = c
        .request(
            Request::get(url(&d, &format!("/pattern?n={SIZE}")))
                .body(BoxBody::default())
                .unwrap(),
        )
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(SIZE.to_string().as_str())
    );
    let mut body = resp.into_body();
    let mut check = pattern::Check::default();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("download frame").data_ref() {
            check.feed(data);
        }
    }
    assert_eq!(check.first_bad(), None, "the download was not the pattern");
    assert_eq!(check.bytes(), SIZE);
    let down = t.elapsed();

    let t = Instant::now();
    let upload = Request::post(url(&d, "/sink"))
        .header("content-length", SIZE)
        .body(BodyExt::boxed(StreamBody::new(pattern::frames(SIZE))))
        .unwrap();
    let resp = c.request(upload).await.expect("upload");
    assert_eq!(resp.status(), StatusCode::OK);
    let verdict = resp.into_body().collect().await.expect("answer").to_bytes();
    // The backend saw every byte, each where it belongs.
    assert_eq!(verdict, SIZE.to_string());
    let up = t.elapsed();

    let after = peak_rss_kib(d.pid());
    let grew = after.saturating_sub(before);
    eprintln!(
        "1 GiB down in {down:.1?}, up in {up:.1?}; troupe's peak memory {before} KiB → {after} KiB"
    );
    assert!(
        grew < BOUND_KIB,
        "troupe's peak memory grew by {grew} KiB (from {before} KiB) for 1 GiB each way"
    );
    // Warm-up, download, upload: nothing was sent twice.
    assert_eq!(a.hits(), 3);
}
