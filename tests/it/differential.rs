//! The differential test of issue 14: the raw requests of
//! `tests/strict/payloads.py` (the RFC cases, and the kinds of payload
//! HTTP Garden collected) go to Troupe, to the local nginx (proxying to
//! a `return 200` server of its own, so it reads every body), and to h11
//! (a strict RFC 9112 parser), by `tests/strict/differential.py`, which
//! says accept / reject / incomplete / error for each.
//!
//! Where Troupe disagrees with both, it is a bug, unless it is one of
//! [`STRICTER`], each refused on an RFC ground the other two relax.
//! Troupe never answers 5xx, and accepts every well-formed case. Where
//! nginx and h11 disagree, docs/strict-http.md says which Troupe follows.

use crate::support::{
    nginx::{self, Nginx},
    strict::{Strict, python_path, run_python},
};

/// Payloads Troupe refuses although nginx and h11 both let them by, and
/// why the refusal is right.
const STRICTER: &[(&str, &str)] = &[
    (
        "host_userinfo",
        "RFC 9110 §7.2: Host is uri-host [\":\" port], no userinfo; RFC 9112 §3.2: \
         an invalid Host MUST get 400",
    ),
    (
        "value_ctl",
        "RFC 9110 §5.5: a CTL is not a field-vchar; the http crate refuses it \
         (recipients MAY keep it, and MAY refuse)",
    ),
    (
        "value_del",
        "RFC 9110 §5.5: DEL is not a field-vchar either (same as value_ctl)",
    ),
    (
        "chunk_last_bare_lf",
        "RFC 9112 §7.1: chunk lines end in CRLF; bare LF in chunked framing is \
         where parsers split (HTTP Garden), and h11 refuses it in the other chunk lines",
    ),
];

fn verdict(r: &serde_json::Value, party: &str) -> String {
    r[party]["verdict"].as_str().unwrap_or("?").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troupe_agrees_with_nginx_or_h11_on_every_payload() {
    let Some(path) = tokio::task::spawn_blocking(python_path)
        .await
        .expect("set-up")
    else {
        return;
    };
    let Some(bin) = tokio::task::spawn_blocking(nginx::binary)
        .await
        .expect("set-up")
    else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no nginx (not installed, and apt-get install nginx-light failed)"
        );
        return;
    };
    // nginx proxies to a `return 200` server of its own, so it reads
    // every body.
    let (front, back) = (nginx::free_addr(), nginx::free_addr());
    let _nginx = Nginx::start(
        &bin,
        |_| {
            format!(
                " server {{ listen {front}; location / {{ proxy_pass http://{back}; }} }}\n\
                 server {{ listen {back}; location / {{ return 200 \"ok\\n\"; }} }}"
            )
        },
        front,
    );
    let srv = Strict::start().await;
    let args = vec![
        format!("troupe={}", srv.troupe.addr),
        format!("nginx={front}"),
    ];
    let results = tokio::task::spawn_blocking(move || run_python(&path, "differential.py", &args))
        .await
        .expect("differential.py");
    assert!(results.len() > 100, "{results:?}");

    let mut alone = Vec::new();
    let mut split = Vec::new();
    let mut problems = Vec::new();
    for r in &results {
        let name = r["name"].as_str().expect("name");
        let (t, n, h) = (verdict(r, "troupe"), verdict(r, "nginx"), verdict(r, "h11"));
        if t == "error" {
            problems.push(format!("{name}: Troupe answered 5xx: {r}"));
        }
        if name.starts_with("ok_") && t != "accept" {
            problems.push(format!(
                "{name}: a well-formed request was not accepted: {r}"
            ));
        }
        if t != n && t != h {
            alone.push(name.to_owned());
            if !STRICTER.iter().any(|(s, _)| *s == name) {
                problems.push(format!("{name}: Troupe disagrees with nginx and h11: {r}"));
            }
        }
        if n != h {
            split.push(format!("{name}: nginx {n}, h11 {h}, Troupe {t}"));
        }
    }
    for (name, _) in STRICTER {
        if !alone.iter().any(|a| a == name) {
            problems.push(format!(
                "{name} is listed in STRICTER but Troupe now agrees with nginx or h11"
            ));
        }
    }
    println!(
        "{} payloads; Troupe alone on {}: {alone:?}; nginx and h11 split on {}:\n{}",
        results.len(),
        alone.len(),
        split.len(),
        split.join("\n")
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
