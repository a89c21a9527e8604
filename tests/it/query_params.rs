//! Issue 10 §6: one query-parameter decoding in every module language.
//!
//! The four greeting examples (C `hello_c.c` with `troupe_query_param`, Rust
//! `hello-rust` with the SDK's `Request::query_param`, Lua `hello.lua` with
//! `req:query_param`, WebAssembly `hello.c` with the host's `query-param`)
//! get the same hostile and normal queries and must greet the same decoded
//! name; and the C header's copy of the rules is held to the server's own
//! decoder (`form_urlencoded`) over every short query of a hostile alphabet.

use std::{io::Write, process::Command};

use http::StatusCode;

use crate::support::{
    client,
    modules::{config, ready},
    modules::{lib, lua, wasm},
    server::TestServer,
};

/// A query (after `?`; `None`: no `?` at all) and the name it carries
/// (`None`: absent, so every example greets "world").
const CASES: &[(Option<&str>, Option<&str>)] = &[
    (Some("name=J%C3%BCrgen+X"), Some("Jürgen X")),
    (None, None),
    (Some(""), None),
    (Some("other=1&names=2"), None),
    (Some("name"), Some("")),
    (Some("name="), Some("")),
    (Some("=x&&name=first&name=second"), Some("first")),
    (Some("Name=upper&name=lower"), Some("lower")),
    (
        Some("na%6De=the+key+is+decoded"),
        Some("the key is decoded"),
    ),
    (Some("name=a=b;c,d"), Some("a=b;c,d")),
    (Some("name=100%25+%zz%4g%"), Some("100% %zz%4g%")),
    (Some("name=%+1%2B1+2"), Some("% 1+1 2")),
    (Some("name=%FF%C3"), Some("\u{FFFD}\u{FFFD}")),
    (
        Some("name=%ED%A0%80x%C0%AF"),
        Some("\u{FFFD}\u{FFFD}\u{FFFD}x\u{FFFD}\u{FFFD}"),
    ),
    (Some("name=%F0%9F%98%80%F0%9F%98"), Some("😀\u{FFFD}")),
    (
        Some("name=%F4%90%80%80"),
        Some("\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
    ),
    (Some("name=a%00b"), Some("a\0b")),
    (Some("name=%3Cb%3E%22%27%0D%0A%26"), Some("<b>\"'\r\n&")),
    (Some("name=ü"), Some("ü")),
];

/// Pulls the greeted name out of each example's answer.
fn greeted(lang: &str, body: &str) -> Option<String> {
    let name = match lang {
        "c" => body.strip_prefix("Hi, ")?.strip_suffix("! (via t)\n")?,
        "lua" => {
            body.strip_prefix("Hi, ")?
                .rsplit_once(", from Lua! (visit ")?
                .0
        }
        "wasm" => {
            body.strip_prefix("Hello from WebAssembly, ")?
                .rsplit_once("! (previous: ")?
                .0
        }
        "rust" => {
            let json: serde_json::Value = serde_json::from_str(body).ok()?;
            return json["name"].as_str().map(str::to_owned);
        }
        other => panic!("no {other} example"),
    };
    Some(name.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_decodes_a_query_the_same_way() {
    let srv = TestServer::start(&config(
        &format!(
            r#"(name: "c", source: Native({}), config: "Hi"),
               (name: "rust", source: Native({})),
               (name: "lua", source: Lua({}), config: "Hi"),
               (name: "wasm", source: Wasm({}))"#,
            lib("hello_c"),
            lib("hello_rust"),
            lua("examples/hello.lua"),
            wasm("hello"),
        ),
        r#"(path: "/c", handler: Module("c")),
           (path: "/rust", handler: Module("rust")),
           (path: "/lua", handler: Module("lua")),
           (path: "/wasm", handler: Module("wasm"))"#,
    ))
    .await;
    for lang in ["c", "rust", "lua", "wasm"] {
        ready(&srv, lang).await;
    }
    for (query, expected) in CASES {
        let raw = query.unwrap_or("");
        // The table itself is the server's rule.
        assert_eq!(
            troupe::pipeline::request::query_param(raw.as_bytes(), "name").as_deref(),
            *expected,
            "the server's decoder on {raw:?}"
        );
        let want = expected.unwrap_or("world");
        for lang in ["c", "rust", "lua", "wasm"] {
            let url = match query {
                Some(q) => srv.url(&format!("/{lang}?{q}")),
                None => srv.url(&format!("/{lang}")),
            };
            let resp = client::get_with(&url, &[("user-agent", "t")]).await;
            assert_eq!(resp.status, StatusCode::OK, "{lang} on {query:?}");
            let body = std::str::from_utf8(&resp.body).unwrap_or_else(|_| {
                panic!("{lang} on {query:?} answered bytes that are not UTF-8")
            });
            assert_eq!(
                greeted(lang, body).as_deref(),
                Some(want),
                "{lang} on {query:?} answered {body:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn luas_three_ways_to_read_a_parameter_agree() {
    // `req:query_param`, the `req.query` table, and `troupe.query_param`
    // on a query string of the script's own.
    let script = tempfile::tempdir().unwrap();
    let path = script.path().join("q.lua");
    std::fs::write(
        &path,
        r#"function handle(req)
  return table.concat({
    req:query_param("name") or "nil",
    req:arg("name") or "nil",
    req.query.name or "nil",
    troupe.query_param("x=1&name=%C3%BC%2B+%FF", "name") or "nil",
    troupe.query_param("x=1", "name") or "nil",
  }, "|")
end
"#,
    )
    .unwrap();
    let srv = crate::support::modules::one_module(
        "q",
        &format!("source: Lua({:?})", path.display().to_string()),
        "/q",
    )
    .await;
    let resp = client::get(&srv.url("/q?name=J%C3%BCrgen+X&name=2")).await;
    assert_eq!(resp.text(), "Jürgen X|Jürgen X|Jürgen X|ü+ \u{FFFD}|nil");
}

/// A C program that prints, for each hex-encoded query on stdin, the hex of
/// `troupe_query_param(query, "name", ..)`, or `-` when absent.
const DRIVER: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "troupe_module.h"

int main(void) {
    char line[4096];
    uint8_t query[2048], value[8192];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = 0;
        for (char *p = line; p[0] && p[1] && p[0] != '\n'; p += 2) {
            unsigned b;
            if (sscanf(p, "%2x", &b) != 1) return 2;
            query[n++] = (uint8_t)b;
        }
        troupe_str q = {query, n};
        int64_t len = troupe_query_param(q, "name", value, sizeof value);
        /* Asking for the length alone must agree. */
        if (troupe_query_param(q, "name", NULL, 0) != len) return 1;
        if (len < 0) {
            puts("-");
            continue;
        }
        for (int64_t i = 0; i < len; i++) printf("%02x", value[i]);
        putchar('\n');
    }
    return 0;
}
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_c_header_decodes_as_the_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("driver.c");
    let exe = dir.path().join("driver");
    std::fs::write(&src, DRIVER).unwrap();
    let include = crate::support::repo_root().join("plugins/include");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run the C compiler");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    // Every query `name=` + up to 4 symbols of a hostile alphabet (escapes
    // and their edges, `+`, separators, UTF-8 lead and continuation bytes),
    // plus a few with more pieces.
    let alphabet: &[&[u8]] = &[
        b"%", b"+", b"&", b"=", b"a", b"F", b"9", b"%C3", b"%BC", b"%E2", b"%F0", b"%80", b"%ED",
        b"\xc3",
    ];
    let mut queries: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"name".to_vec(),
        b"x=1&&name&name=2".to_vec(),
        b"Name=1&na%6De=2".to_vec(),
        b"=&=name&name=%+1".to_vec(),
    ];
    let mut frontier = vec![b"name=".to_vec()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for q in &frontier {
            for sym in alphabet {
                next.push([q.as_slice(), sym].concat());
            }
        }
        queries.extend(frontier);
        frontier = next;
    }
    queries.extend(frontier);

    let mut child = Command::new(&exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = queries.iter().map(|q| hex(q) + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "the driver failed");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), queries.len());
    for (q, got) in queries.iter().zip(lines) {
        let want = troupe::pipeline::request::query_param(q, "name")
            .map(|v| hex(v.as_bytes()))
            .unwrap_or_else(|| "-".into());
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(q));
    }
}
