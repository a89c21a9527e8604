//! Property tests: the fuzz targets' invariants (`src/fuzzing.rs`) over a
//! bounded number of generated inputs, so that CI checks them on every
//! run. The long coverage-guided runs are cargo-fuzz's (`fuzz/`,
//! `docs/fuzzing.md`); every crash they found is a regression case here.
//!
//! proptest rather than bolero: it runs on stable as a plain `#[test]`,
//! shrinks a failure to a small input, and needs no tool of its own; the
//! coverage-guided side already has cargo-fuzz.

use std::net::IpAddr;

use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use troupe::fuzzing::{self, Fixture, RouteSpec, Server};

/// Runs `check` on `cases` values of `strategy`; a failure is shrunk and
/// reported with its smallest input.
fn run<S: Strategy>(cases: u32, strategy: S, check: impl Fn(S::Value)) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |v| {
        check(v);
        Ok(())
    }) {
        panic!("{e}");
    }
}

/// Bytes that mean something to the parsers under test, spliced into
/// generated input next to random ones.
const TOKENS: &[&str] = &[
    "/", "..", ".", "%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%c0%ae", "%25", "\\", "\r\n", "\n",
    "\r", " ", "\t", ":", "{", "}", "{*", "(", ")", "[", "]", "\"", ",", "#", "\0", "é",
];

/// A piece of input: a meaningful token or a few random characters.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TOKENS).prop_map(str::to_owned),
        "[a-z0-9_.-]{0,4}",
        any::<char>().prop_map(String::from),
    ]
}

fn pieces(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..max).prop_map(|v| v.concat())
}

/// Edits `text` at generated places: each edit deletes a few bytes and
/// inserts a piece there (on a char boundary).
fn mutate(text: &'static str, edits: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), 0..8usize, piece()), 0..edits).prop_map(
        move |edits| {
            let mut s = text.to_owned();
            for (at, cut, insert) in edits {
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                let mut end = (i + cut).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.replace_range(i..end, &insert);
            }
            s
        },
    )
}

const SHIPPED: &str = include_str!("../../config.ron");

#[test]
fn config_refusals_carry_a_position() {
    let fixture = Fixture::new().expect("fixture");
    let text = prop_oneof![
        mutate(SHIPPED, 6),
        mutate(fuzzing::CONNECTION_CONFIG, 6),
        pieces(40),
    ];
    run(300, text, |t| fixture.config(&t));
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => prop::sample::select(&[
            "a.txt", "sub", "in", "out", "outdir", "secret.txt", "index.html", "..", ".", "",
            "%2e%2e", ".%2e", "%2e.", "..%2f", "%2fetc", "%c0%ae%c0%ae", "%00", "%5c", "a%2fb",
        ][..])
        .prop_map(str::to_owned),
        1 => pieces(3),
    ];
    (prop::collection::vec(segment, 0..7), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p = String::new();
        for s in segs {
            p.push('/');
            p.push_str(&s);
        }
        if slash || p.is_empty() {
            p.push('/');
        }
        p
    })
}

#[test]
fn static_paths_never_leave_the_root() {
    let fixture = Fixture::new().expect("fixture");
    run(2000, prop_oneof![path(), pieces(12)], |p| {
        fixture.static_path(&p)
    });
    // Found by hand before the fuzzer: the links out of the root.
    for p in [
        "/out",
        "/outdir/secret.txt",
        "/in",
        "/sub/",
        "/%2e%2e/outside/secret.txt",
    ] {
        fixture.static_path(p);
    }
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    let pattern = prop::collection::vec(
        prop::sample::select(&["/a", "/b", "/{id}", "/{x}", "/{*rest}", "/", "/a.b", "/*"][..]),
        0..4,
    )
    .prop_map(|v| v.concat());
    let regex = prop::sample::select(
        &[
            "^/a/.*$",
            "^/([a-z]+)/([0-9]+)$",
            "/b",
            "^(/a)?/(x|y)",
            "(",
            "^/.*\\.txt$",
        ][..],
    )
    .prop_map(str::to_owned);
    let methods = prop::option::of(prop::collection::vec(
        prop::sample::select(&["GET", "POST", "HEAD", "PUT", "bad method"][..])
            .prop_map(str::to_owned),
        0..3,
    ));
    (
        prop_oneof![
            pattern.prop_map(|p| (p, false)),
            regex.prop_map(|r| (r, true))
        ],
        methods,
    )
        .prop_map(|((pattern, regex), methods)| RouteSpec {
            pattern,
            regex,
            methods,
        })
}

#[test]
fn routing_keeps_its_promises() {
    let lookups = prop::collection::vec(
        (
            prop::sample::select(&["GET", "POST", "HEAD", "DELETE"][..]).prop_map(str::to_owned),
            path(),
        ),
        0..8,
    );
    run(
        1000,
        (prop::collection::vec(route_spec(), 0..8), lookups),
        |(specs, lookups)| fuzzing::routes(&specs, &lookups),
    );
}

/// A request head built from lines that matter to smuggling, in any
/// order, with variants of case, spacing and line ending.
fn head() -> impl Strategy<Value = Vec<u8>> {
    let line = prop::sample::select(
        &[
            "Content-Length: 5",
            "content-length:5",
            "CONTENT-LENGTH: 0",
            "Transfer-Encoding: chunked",
            "transfer-encoding:chunked",
            "Transfer-Encoding : chunked",
            " Transfer-Encoding: chunked",
            "Host: a",
            "X-Transfer-Encoding: chunked",
            "",
        ][..],
    );
    let eol = prop::sample::select(&["\r\n", "\n"][..]);
    prop::collection::vec((line, eol), 0..6).prop_map(|lines| {
        let mut b = b"POST / HTTP/1.1\r\n".to_vec();
        for (l, e) in lines {
            b.extend_from_slice(l.as_bytes());
            b.extend_from_slice(e.as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b
    })
}

#[test]
fn header_validators_hold() {
    run(1000, prop_oneof![head(), any::<Vec<u8>>()], |b| {
        fuzzing::smuggling(&b)
    });
    let value = prop_oneof!["[ -~]{0,16}".prop_map(String::into_bytes), any::<Vec<u8>>()];
    let version = prop::sample::select(
        &[
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
        ][..],
    );
    run(
        1000,
        (prop::collection::vec(value, 0..3), version),
        |(values, version)| {
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            fuzzing::host(&values, version);
        },
    );
    let name = prop::sample::select(
        &[
            "connection",
            "keep-alive",
            "te",
            "upgrade",
            "transfer-encoding",
            "proxy-connection",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
            "host",
            "x-custom",
        ][..],
    );
    let field_value = prop_oneof![
        prop::sample::select(
            &[
                "close",
                "x-custom, te",
                "host",
                "trailers",
                "gzip, trailers",
                "1.2.3.4"
            ][..]
        )
        .prop_map(str::to_owned),
        "[ -~]{0,20}",
    ];
    run(
        1000,
        (
            prop::collection::vec((name, field_value), 0..6),
            any::<IpAddr>(),
            any::<bool>(),
            any::<bool>(),
        ),
        |(fields, peer, trusted, tls)| {
            let fields: Vec<(&[u8], &[u8])> = fields
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect();
            fuzzing::forwarding(&fields, peer, trusted, tls);
        },
    );
    let range = prop_oneof![
        "bytes=[0-9]{0,4}-[0-9]{0,4}(,[0-9]{0,3}-[0-9]{0,3}){0,2}",
        "bytes=-[0-9]{1,25}",
        "[ -~]{0,20}",
    ];
    run(1000, (range, 0..200u64), |(r, len)| fuzzing::range(&r, len));
    run(
        2000,
        (accept_encoding(), any::<u8>(), any::<u8>()),
        |(v, offered, order)| fuzzing::accept_encoding(&v, offered, order),
    );
}

/// An `Accept-Encoding` value: codings (known, unknown, `*`, `identity`,
/// in any case) with weights well- and ill-formed, or random bytes.
fn accept_encoding() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(
            &[
                "gzip", "br", "zstd", "x-gzip", "*", "identity", "deflate", ""
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-zA-Z*-]{0,6}",
    ];
    let weight = prop_oneof![
        Just(String::new()),
        "q=(0|1)(\\.[0-9]{0,4})?".prop_map(|q| format!(";{q}")),
        "[ ]?;[ ]?[qQ][ ]?=[ ]?[0-9.]{0,6}",
        "[;= a-z0-9.]{0,8}",
    ];
    let item = (token, weight).prop_map(|(t, w)| format!("{t}{w}"));
    prop_oneof![
        4 => prop::collection::vec(item, 0..6).prop_map(|items| items.join(", ").into_bytes()),
        1 => any::<Vec<u8>>(),
    ]
}

/// A request: a method, a path, a version, some fields and a body, in
/// the shapes a parser cares about.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method =
        prop::sample::select(&["GET", "HEAD", "POST", "OPTIONS", "CONNECT", "G T", ""][..]);
    let target = prop_oneof![
        path(),
        prop::sample::select(
            &[
                "/hello",
                "/hello/x?x=1",
                "/docs",
                "/re/ab/12",
                "/app/x",
                "*",
                "http://localhost/hello",
                "localhost:80"
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    let version =
        prop::sample::select(&["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1"][..]);
    let field = prop::sample::select(
        &[
            "Host: localhost",
            "Host: example.com",
            "Host: a b",
            "Content-Length: 3",
            "Content-Length: 3, 3",
            "Content-Length: +3",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "Connection: close",
            "Connection: upgrade",
            "Upgrade: websocket",
            "Expect: 100-continue",
            "Range: bytes=2-5",
            "Range: bytes=50-",
            "If-None-Match: *",
            "X-Forwarded-For: 1.2.3.4",
            "Bad Name: x",
            "X: \u{80}",
        ][..],
    );
    let body =
        prop::sample::select(&["", "abc", "3\r\nabc\r\n0\r\n\r\n", "0\r\n\r\n", "zz\r\n"][..]);
    (
        method,
        target,
        version,
        prop::collection::vec(field, 0..5),
        prop::sample::select(&["\r\n", "\n"][..]),
        body,
    )
        .prop_map(|(m, t, v, fields, eol, body)| {
            let mut r = format!("{m} {t} {v}{eol}");
            for f in fields {
                r.push_str(f);
                r.push_str(eol);
            }
            r.push_str(eol);
            r.push_str(body);
            r.into_bytes()
        })
}

#[test]
fn a_connection_answers_with_responses() {
    let fixture = Fixture::new().expect("fixture");
    let server = Server::new(&fixture).expect("the fuzz config compiles");
    let input = prop_oneof![
        3 => prop::collection::vec(request(), 1..4).prop_map(|rs| rs.concat()),
        1 => any::<Vec<u8>>(),
    ];
    run(400, input, |bytes| server.connection(&bytes));
}

/// The connection target answers what it is asked, so that its
/// properties are about real responses, not an empty stream.
#[test]
fn the_fuzzed_connection_serves_real_answers() {
    let fixture = Fixture::new().expect("fixture");
    let server = Server::new(&fixture).expect("the fuzz config compiles");
    let status = |req: &str| {
        let out = server.exchange(req.as_bytes());
        let out = String::from_utf8_lossy(&out).into_owned();
        assert_eq!(fuzzing::responses(out.as_bytes(), false), Ok(1), "{out}");
        out[9..12].to_owned()
    };
    let get = |path: &str| status(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    assert_eq!(get("/hello"), "200");
    assert_eq!(get("/static/a.txt"), "200");
    assert_eq!(get("/static/in"), "200", "a link inside the root is served");
    assert_eq!(get("/static/out"), "404", "a link out of the root is not");
    assert_eq!(get("/static/%2e%2e/%2e%2e/outside/secret.txt"), "400");
    assert_eq!(get("/re/ab/12"), "200");
    assert_eq!(get("/app/x"), "502", "the proxy's backend is a closed port");
    assert_eq!(status("GET /hello HTTP/1.1\r\n\r\n"), "400", "no Host");
    let two = server.exchange(
        b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\nHEAD /static/a.txt HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(fuzzing::responses(&two, true), Ok(2));
}

/// Bytes of a header value: visible ASCII, obs-text (0x80–0xFF), or
/// anything (what hyper would refuse is dropped before the conversion).
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,12}".prop_map(String::into_bytes),
        prop::collection::vec(0x80u8..=0xff, 0..8),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..16),
        any::<Vec<u8>>(),
    ]
}

#[test]
fn module_request_conversions_keep_the_bytes() {
    let method = prop_oneof![
        4 => prop::sample::select(
            &[
                "GET", "HEAD", "POST", "OPTIONS", "CONNECT", "TRACE", "PATCH", "PURGE", "M-SEARCH",
                "get", "!#$%&'*+-.^_`|~", "G T", "",
            ][..]
        )
        .prop_map(|m| m.as_bytes().to_vec()),
        1 => any::<Vec<u8>>(),
    ];
    let target = prop_oneof![
        4 => "/[a-zA-Z0-9._~%/-]{0,24}(\\?[ -~]{0,16})?".prop_map(String::into_bytes),
        1 => path().prop_map(String::into_bytes),
        2 => prop::sample::select(
            &[
                "/", "*", "/a?b=%ff&c", "/%e9t%C3%A9?q=\u{e9}", "http://example.com/x?y",
                "http://[::1]:8080/", "//double", "/a/../../b", "example.com:443", "/?",
                "/#frag",
            ][..]
        )
        .prop_map(|t| t.as_bytes().to_vec()),
        1 => any::<Vec<u8>>(),
    ];
    let name = prop_oneof![
        prop::sample::select(
            &[
                "x-user",
                "X-User",
                "cookie",
                "connection",
                "transfer-encoding",
                "content-length",
                "x-a",
                "upgrade",
                "keep-alive",
            ][..]
        )
        .prop_map(|n| n.as_bytes().to_vec()),
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}".prop_map(String::into_bytes),
        any::<Vec<u8>>(),
    ];
    let headers = prop_oneof![
        prop::collection::vec((name.clone(), field_value()), 0..8),
        // Many fields, past the ABI's inline pairs and the usual caps.
        prop::collection::vec((name, field_value()), 60..120),
    ];
    let version = prop::sample::select(
        &[
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
        ][..],
    );
    let peer = prop::sample::select(&["127.0.0.1:80", "[2001:db8::1]:65535", "10.0.0.1:1"][..]);
    let reached = std::sync::atomic::AtomicUsize::new(0);
    run(
        300,
        (
            method,
            target,
            version,
            prop::sample::select(&["", "example.com", "a:8080", "[::1]", "ex\u{e9}", "a b"][..]),
            headers,
            any::<Vec<u8>>(),
            peer,
        ),
        |(method, target, version, host, headers, body, peer)| {
            // A Host first (valid or not), or none; the one Host an
            // HTTP/1.1 request needs.
            let first: Vec<(&[u8], &[u8])> = if host.is_empty() {
                Vec::new()
            } else {
                vec![(b"host", host.as_bytes())]
            };
            let headers: Vec<(&[u8], &[u8])> = first
                .iter()
                .copied()
                .chain(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
                .collect();
            if fuzzing::module_request(&fuzzing::ClientRequest {
                method: &method,
                target: &target,
                version,
                headers: &headers,
                body: &body,
                peer: peer.parse().expect("peer"),
            }) {
                reached.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        },
    );
    // Enough generated requests are ones a module would see, not ones
    // refused before (an invalid target or Host, a path `normalize`
    // refuses): about one in nine, so the test is never vacuous.
    let reached = reached.into_inner();
    assert!(reached >= 20, "only {reached} of 300 reached the modules");
}

/// The requests issue 14 found answered 500 by the WebAssembly route,
/// and a few shapes of their kind, reach every runtime as they were.
#[test]
fn obs_text_and_a_missing_host_reach_every_module_as_they_were() {
    let peer = "127.0.0.1:1".parse().expect("peer");
    for (version, headers) in [
        (
            http::Version::HTTP_11,
            vec![
                (&b"host"[..], &b"a"[..]),
                (b"x-name", b"J\xfcrgen \xff\x80"),
            ],
        ),
        (http::Version::HTTP_10, vec![(&b"x-a"[..], &b"1"[..])]),
        (http::Version::HTTP_10, vec![]),
        (
            http::Version::HTTP_11,
            vec![
                (&b"host"[..], &b"a"[..]),
                (b"cookie", b"\x80"),
                (b"cookie", b"b"),
            ],
        ),
    ] {
        let reached = fuzzing::module_request(&fuzzing::ClientRequest {
            method: b"GET",
            target: b"/p?q=%ff",
            version,
            headers: &headers,
            body: b"\x00\xff",
            peer,
        });
        assert!(reached, "{version:?} {headers:?}");
    }
}
