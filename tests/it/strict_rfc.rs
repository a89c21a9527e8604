//! The MUSTs of RFC 9110, 9112 and 9113 for a server receiving requests
//! (issue 14; the table is docs/strict-http.md): raw requests over TCP
//! (HTTP/1) and hand-built frames (HTTP/2, by `tests/strict/h2_requests.py`)
//! to the real binary, whose catch-all route proxies to a backend that
//! reads every body, so a framing error cannot hide behind a handler that
//! never reads.
//!
//! Each HTTP/1 request is followed on the same connection by a second,
//! well-formed one: a refused request must get its status, and the
//! connection must close without answering the second (after a framing
//! error the rest of the bytes cannot be trusted to start a request); an
//! accepted one is answered and so is the second.

use std::time::Duration;

use crate::support::strict::{Strict, exchange, python_path, run_python};

/// The well-formed request pipelined after each case.
const NEXT: &[u8] = b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

/// A request to `/upload` with `line`'s method and version, `fields`
/// after `Host`, and `body`.
fn req(line: &str, fields: &str, body: &str) -> Vec<u8> {
    format!("{line}\r\nHost: a\r\n{fields}\r\n{body}").into_bytes()
}

fn post(fields: &str, body: &str) -> Vec<u8> {
    req("POST /upload HTTP/1.1", fields, body)
}

fn chunked(body: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

/// What a case must get: `Both` (answered 200, and so is [`NEXT`]), or
/// `Only(status)`: that status, then the connection closes unread.
#[derive(Debug, Clone, Copy)]
enum Want {
    Both,
    Only(u16),
}
use Want::{Both, Only};

/// Sends each case followed by [`NEXT`] and checks what came back.
async fn check(cases: &[(&str, Vec<u8>, Want)]) {
    let srv = Strict::start().await;
    let mut failures = Vec::new();
    for (name, bytes, want) in cases {
        let mut wire = bytes.clone();
        wire.extend_from_slice(NEXT);
        let got = exchange(srv.troupe.addr, &wire, Duration::from_secs(10)).await;
        let (status, answers) = match want {
            Both => (200, 2),
            Only(status) => (*status, 1),
        };
        if got.status != Some(status) || got.answers != answers || !got.closed {
            failures.push(format!(
                "{name}: want {want:?}, got {:?} ({} answers, closed: {})\n{}",
                got.status, got.answers, got.closed, got.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_line_musts() {
    let line = |l: &str| req(l, "", "");
    check(&[
        ("origin-form", line("GET /upload HTTP/1.1"), Both),
        ("absolute-form", line("GET http://a/upload HTTP/1.1"), Both),
        // RFC 9112 §2.2: SHOULD ignore one empty line before the request.
        (
            "leading CRLF",
            [b"\r\n".as_slice(), &line("GET /upload HTTP/1.1")].concat(),
            Both,
        ),
        ("HTTP/0.9", b"GET /upload\r\n\r\n".to_vec(), Only(400)),
        ("lowercase version", line("GET /upload http/1.1"), Only(400)),
        ("two-digit minor", line("GET /upload HTTP/1.10"), Only(400)),
        (
            "major version 2 in text",
            line("GET /upload HTTP/2.0"),
            Only(400),
        ),
        (
            "junk after version",
            line("GET /upload HTTP/1.1x"),
            Only(400),
        ),
        ("space in target", line("GET /up load HTTP/1.1"), Only(400)),
        ("NUL in target", line("GET /upload\0 HTTP/1.1"), Only(400)),
        ("CTL in target", line("GET /up\x01load HTTP/1.1"), Only(400)),
        (
            "obs-text in target",
            b"GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            Only(400),
        ),
        ("bad method char", line("G(T /upload HTTP/1.1"), Only(400)),
        ("bare CR in line", line("GET /upload\rHTTP/1.1"), Only(400)),
        ("trailing space", line("GET /upload HTTP/1.1 "), Only(400)),
        ("empty target", line("GET  HTTP/1.1"), Only(400)),
        (
            "CONNECT origin-form",
            line("CONNECT /upload HTTP/1.1"),
            Only(400),
        ),
        ("asterisk-form with GET", line("GET * HTTP/1.1"), Only(400)),
        (
            "a 70 KB target",
            line(&format!("GET /{} HTTP/1.1", "a".repeat(70_000))),
            Only(414),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_musts() {
    let bare = |line: &str, fields: &str| format!("{line}\r\n{fields}\r\n").into_bytes();
    check(&[
        // HTTP/1.0 closes after its answer. The backend speaks HTTP/1.1
        // and needs a Host: the proxy names the backend.
        (
            "HTTP/1.0 without Host, through the proxy",
            bare("GET /upload HTTP/1.0", ""),
            Only(200),
        ),
        (
            "HTTP/1.1 without Host",
            bare("GET /upload HTTP/1.1", ""),
            Only(400),
        ),
        (
            "absolute-form without Host",
            bare("GET http://a/upload HTTP/1.1", ""),
            Only(400),
        ),
        (
            "two Hosts",
            req("GET /upload HTTP/1.1", "Host: a\r\n", ""),
            Only(400),
        ),
        (
            "a list",
            bare("GET /upload HTTP/1.1", "Host: a, b\r\n"),
            Only(400),
        ),
        (
            "userinfo",
            bare("GET /upload HTTP/1.1", "Host: u@a\r\n"),
            Only(400),
        ),
        (
            "a path",
            bare("GET /upload HTTP/1.1", "Host: a/b\r\n"),
            Only(400),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_musts() {
    let get = |fields: &str| req("GET /upload HTTP/1.1", fields, "");
    check(&[
        (
            "obs-text value",
            [b"GET /upload HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n".as_slice()].concat(),
            Both,
        ),
        ("empty value", get("X-A:\r\n"), Both),
        ("space before colon", get("X-A : b\r\n"), Only(400)),
        ("tab before colon", get("X-A\t: b\r\n"), Only(400)),
        ("space in name", get("X A: b\r\n"), Only(400)),
        ("empty name", get(": b\r\n"), Only(400)),
        ("bad name char", get("X(A): b\r\n"), Only(400)),
        ("NUL in name", get("X\0A: b\r\n"), Only(400)),
        ("no colon", get("X-A b\r\n"), Only(400)),
        ("NUL in value", get("X-A: a\0b\r\n"), Only(400)),
        ("bare CR in value", get("X-A: a\rb\r\n"), Only(400)),
        ("CTL in value", get("X-A: a\x01b\r\n"), Only(400)),
        ("obs-fold", get("X-A: a\r\n b\r\n"), Only(400)),
        (
            "whitespace before the first field",
            b"GET /upload HTTP/1.1\r\n X-A: b\r\nHost: a\r\n\r\n".to_vec(),
            Only(400),
        ),
        (
            "bare CR ending a field line",
            get("X-A: b\rX-B: c\r\n"),
            Only(400),
        ),
        (
            "a 70 KB field",
            get(&format!("X-A: {}\r\n", "a".repeat(70_000))),
            Only(431),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_musts() {
    let cl = |v: &str, body: &str| post(&format!("Content-Length: {v}\r\n"), body);
    check(&[
        ("a length", cl("5", "hello"), Both),
        ("leading zeros", cl("005", "hello"), Both),
        (
            "the same twice",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            Both,
        ),
        ("a list of one value", cl("5, 5", "hello"), Only(400)),
        ("a list of two values", cl("5, 6", "hello!"), Only(400)),
        (
            "two fields that differ",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            Only(400),
        ),
        ("plus", cl("+5", "hello"), Only(400)),
        ("minus", cl("-5", "hello"), Only(400)),
        ("hex", cl("0x5", "hello"), Only(400)),
        (
            "past u64",
            cl("99999999999999999999999", "hello"),
            Only(400),
        ),
        ("space inside", cl("5 5", "hello"), Only(400)),
        ("empty", cl("", "hello"), Only(400)),
        ("decimal point", cl("5.0", "hello"), Only(400)),
        (
            "with chunked",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            Only(400),
        ),
        (
            "chunked then a length",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            Only(400),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_musts() {
    let te = |v: &str| {
        post(
            &format!("Transfer-Encoding: {v}\r\n"),
            "5\r\nhello\r\n0\r\n\r\n",
        )
    };
    let http10 = |fields: &str| {
        format!("POST /upload HTTP/1.0\r\n{fields}\r\n5\r\nhello\r\n0\r\n\r\n").into_bytes()
    };
    check(&[
        ("chunked", te("chunked"), Both),
        ("any case", te("ChUnKeD"), Both),
        ("chunked not last", te("chunked, gzip"), Only(400)),
        (
            "an unknown coding before chunked",
            te("gzip, chunked"),
            Only(400),
        ),
        ("chunked twice", te("chunked, chunked"), Only(400)),
        (
            "chunked in two fields",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            Only(400),
        ),
        ("identity", te("identity"), Only(400)),
        ("unknown", te("foo"), Only(400)),
        ("empty", te(""), Only(400)),
        (
            "HTTP/1.0 with chunked",
            http10("Transfer-Encoding: chunked\r\n"),
            Only(400),
        ),
        (
            "HTTP/1.0 with chunked and a length",
            http10("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            Only(400),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_framing_musts() {
    check(&[
        (
            "upper-case hex",
            chunked("A\r\n0123456789\r\n0\r\n\r\n"),
            Both,
        ),
        ("an extension", chunked("5;a=b\r\nhello\r\n0\r\n\r\n"), Both),
        (
            "a quoted extension",
            chunked("5;a=\"b c\"\r\nhello\r\n0\r\n\r\n"),
            Both,
        ),
        (
            "a trailer",
            chunked("5\r\nhello\r\n0\r\nX-T: y\r\n\r\n"),
            Both,
        ),
        ("0x size", chunked("0x5\r\nhello\r\n0\r\n\r\n"), Only(400)),
        (
            "signed size",
            chunked("+5\r\nhello\r\n0\r\n\r\n"),
            Only(400),
        ),
        (
            "size past u64",
            chunked("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            Only(400),
        ),
        ("empty size", chunked("\r\nhello\r\n0\r\n\r\n"), Only(400)),
        (
            "bare LF in an extension",
            chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"),
            Only(400),
        ),
        (
            "bare CR in an extension",
            chunked("5;a\rb\r\nhello\r\n0\r\n\r\n"),
            Only(400),
        ),
        (
            "data longer than its size",
            chunked("5\r\nhelloXX\r\n0\r\n\r\n"),
            Only(400),
        ),
        (
            "no CRLF after data",
            chunked("5\r\nhello0\r\n\r\n"),
            Only(400),
        ),
        (
            "bare LF after data",
            chunked("5\r\nhello\n0\r\n\r\n"),
            Only(400),
        ),
        (
            "bare LF after a size",
            chunked("5\nhello\r\n0\r\n\r\n"),
            Only(400),
        ),
        (
            "an invalid trailer",
            chunked("5\r\nhello\r\n0\r\nX y\r\n\r\n"),
            Only(400),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http2_requests_are_refused() {
    let Some(path) = tokio::task::spawn_blocking(python_path)
        .await
        .expect("set-up")
    else {
        return;
    };
    let srv = Strict::start().await;
    let addr = srv.troupe.addr.to_string();
    let results = tokio::task::spawn_blocking(move || run_python(&path, "h2_requests.py", &[addr]))
        .await
        .expect("h2_requests.py");
    assert!(results.len() > 30, "{results:?}");
    for r in &results {
        let name = r["name"].as_str().expect("name");
        let status = r["status"].as_u64();
        let reset = r["reset"].as_bool() == Some(true);
        if name.starts_with("ok") {
            assert_eq!(status, Some(200), "{name}: {r}");
        } else {
            // Malformed (RFC 9113 §8.1.1): a stream reset, or 400 first.
            assert!(reset || status == Some(400), "{name}: {r}");
        }
    }
}

/// RFC 9112 §3.2.2: with an absolute-form target, the server MUST ignore
/// `Host` and use the target's authority: here, to pick the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_picks_the_server_by_its_authority() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.ron");
    std::fs::write(
        &path,
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [
        (names: ["a"], routes: [(path: "/", handler: Return(body: "server a\n"))]),
        (names: ["b"], routes: [(path: "/", handler: Return(body: "server b\n"))]),
    ],
)"#,
    )
    .expect("write config");
    let troupe = tokio::task::spawn_blocking(move || crate::support::daemon::Daemon::start(&path))
        .await
        .expect("start");
    for (wire, want) in [
        (
            &b"GET http://a/ HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"[..],
            "server a",
        ),
        (
            b"GET http://b/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "server b",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
            "server b",
        ),
    ] {
        let got = exchange(troupe.addr, wire, Duration::from_secs(10)).await;
        assert_eq!(got.status, Some(200), "{}", got.text);
        assert!(got.text.ends_with(&format!("{want}\n")), "{}", got.text);
    }
}
