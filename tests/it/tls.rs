//! P7.3, P1.2 (issue 12): HTTPS on the real binary. HTTP/1.1 and HTTP/2
//! by ALPN, TLS 1.2 and 1.3 only with the post-quantum key exchange
//! first, certificates by SNI, 421 for a host the SNI did not pick,
//! session resumption (across a reload too), the handshake timeout, client
//! certificates, hostile handshakes, the redirect to HTTPS and HSTS, and
//! `troupe -t` on certificate files. Clients: curl, `openssl s_client`,
//! and hyper over tokio-rustls.

use std::{
    io::Write as _,
    net::SocketAddr,
    time::{Duration, Instant},
};

use http::StatusCode;
use rustls::HandshakeKind;
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{
    daemon::{self, Daemon},
    modules::{self, shipped_config},
    tls::{self, Pki, client_config, connect, curl, curl_https, s_client},
};

/// The test servers, one per PKI name, plus one without TLS; `a.test` is
/// the default.
const SERVERS: &str = r#"
        (names: ["a.test"], default: true, tls: (cert: "a.crt", key: "a.key"),
         routes: [(path: "/", handler: Return(body: "a\n"))]),
        (names: ["b.test"], tls: (cert: "b.crt", key: "b.key"),
         routes: [(path: "/", handler: Return(body: "b\n"))]),
        (names: ["*.wild.test"], tls: (cert: "wild.crt", key: "wild.key"),
         routes: [(path: "/", handler: Return(body: "wild\n"))]),
        (names: ["m.test"], tls: (cert: "m.crt", key: "m.key", client_ca: "client-ca.pem"),
         routes: [(path: "/", handler: Return(body: "m\n"))]),
        (names: ["s.test"],
         tls: (cert: "s.crt", key: "s.key", redirect_http: true,
               hsts: (max_age: "1day", include_subdomains: true)),
         routes: [(path: "/{*p}", handler: Return(body: "s\n"))]),
        (names: ["plain.test"], routes: [(path: "/", handler: Return(body: "plain\n"))]),
"#;

/// The real binary serving [`SERVERS`] on a plain address (127.0.0.1) and
/// a TLS one (127.0.0.2), debug logs on.
struct Https {
    d: Daemon,
    pki: Pki,
    plain: SocketAddr,
    tls: SocketAddr,
    _dir: TempDir,
}

impl Https {
    fn start(limits: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(dir.path());
        let cfg = dir.path().join("config.ron");
        std::fs::write(
            &cfg,
            format!(
                r#"Config(
    listen: ["127.0.0.1:0", "127.0.0.2:0 tls"],
    limits: ({limits}),
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    servers: [{SERVERS}],
)"#
            ),
        )
        .expect("write config");
        let d = Daemon::start_logging(&cfg, "info,troupe=debug");
        let (plain, tls) = addrs(&d);
        Self {
            d,
            pki,
            plain,
            tls,
            _dir: dir,
        }
    }

    /// `curl https://host/path` to the TLS address: what `-w` wrote after
    /// the body.
    fn curl(&self, host: &str, path: &str, extra: &[&str]) -> String {
        let out = curl_https(self.tls, &self.pki, host, path, extra);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server still serves: HTTP/2 over TLS, and plain HTTP.
    fn still_serves(&self) {
        assert_eq!(
            self.curl(
                "a.test",
                "/",
                &["--http2", "-w", "%{http_version} %{http_code}"]
            ),
            "a\n2 200"
        );
        let plain = curl(&[
            "-w",
            " %{http_code}",
            &format!("http://{}/", self.plain),
            "-H",
            "Host: plain.test",
        ]);
        assert_eq!(String::from_utf8_lossy(&plain.stdout), "plain\n 200");
    }

    /// A value of the admin API's `/metrics`.
    fn metric(&self, series: &str) -> f64 {
        let out = curl(&[&format!("http://{}/metrics", self.d.admin_addr())]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// The plain (127.0.0.1) and TLS (127.0.0.2) addresses a daemon listens on.
fn addrs(d: &Daemon) -> (SocketAddr, SocketAddr) {
    let all = d.listening();
    let on = |ip: [u8; 4]| {
        all.iter()
            .copied()
            .find(|a| a.ip() == std::net::IpAddr::from(ip))
            .unwrap_or_else(|| panic!("no listener on {ip:?}: {}", d.logs()))
    };
    (on([127, 0, 0, 1]), on([127, 0, 0, 2]))
}

#[test]
fn curl_gets_http1_and_http2_by_alpn() {
    let t = Https::start("");
    let w = ["-w", "%{http_version} %{http_code}"];
    assert_eq!(
        t.curl("a.test", "/", &[&["--http1.1"][..], &w].concat()),
        "a\n1.1 200"
    );
    assert_eq!(
        t.curl("a.test", "/", &[&["--http2"][..], &w].concat()),
        "a\n2 200"
    );
    assert_eq!(
        t.curl("b.test", "/", &[&["--http2"][..], &w].concat()),
        "b\n2 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rustls_client_gets_h2_or_http11_and_the_post_quantum_key_exchange() {
    let t = Https::start("");
    for (alpn, version) in [
        (&["h2", "http/1.1"][..], http::Version::HTTP_2),
        (&["http/1.1"][..], http::Version::HTTP_11),
        (&[][..], http::Version::HTTP_11),
    ] {
        let config = client_config(&t.pki, alpn, None);
        let stream = connect(t.tls, "a.test", &config).await.expect("handshake");
        let conn = stream.get_ref().1;
        let group = conn.negotiated_key_exchange_group().map(|g| g.name());
        assert_eq!(
            format!("{group:?}"),
            "Some(X25519MLKEM768)",
            "the hybrid post-quantum group is preferred"
        );
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let resp = tls::get(stream, "a.test", "/").await.expect("GET");
        assert_eq!(resp.status, StatusCode::OK, "{alpn:?}");
        assert_eq!(resp.version, version, "{alpn:?}");
        assert_eq!(resp.text(), "a\n");
    }
}

/// Over TLS too, a request line longer than the head limit gets 414 and a
/// field section too large 431 (`conn/request_line.rs` sees the plaintext).
#[test]
fn an_overlong_request_line_gets_414_over_tls() {
    let t = Https::start("max_header_bytes: 8192");
    let long = format!("/{}", "a".repeat(20_000));
    let w = ["--http1.1", "-o", "/dev/null", "-w", "%{http_code}"];
    assert_eq!(t.curl("a.test", &long, &w), "414");
    let big = format!("X-Big: {}", "a".repeat(20_000));
    assert_eq!(
        t.curl("a.test", "/", &[&w[..], &["-H", &big]].concat()),
        "431"
    );
    t.still_serves();
}

#[test]
fn only_tls_1_2_and_1_3_are_spoken() {
    let t = Https::start("");
    let args = |v: &'static str| ["-servername", "a.test", v, "-cipher", "DEFAULT@SECLEVEL=0"];
    let get = tls::http_close("a.test");
    let v13 = s_client(t.tls, &args("-tls1_3"), &get);
    assert!(v13.contains("New, TLSv1.3"), "{v13}");
    let v12 = s_client(t.tls, &args("-tls1_2"), &get);
    assert!(v12.contains("New, TLSv1.2"), "{v12}");
    for old in ["-tls1_1", "-tls1"] {
        let out = s_client(t.tls, &args(old), &get);
        assert!(!out.contains("New, TLSv1"), "{old} was accepted:\n{out}");
        assert!(!out.contains("HTTP/1.1 200"), "{old} was served:\n{out}");
    }
    t.still_serves();
}

#[test]
fn sni_picks_the_exact_name_then_the_wildcard_then_the_default() {
    let t = Https::start("");
    let subject = |args: &[&str]| {
        let out = s_client(t.tls, args, &tls::http_close("a.test"));
        out.lines()
            .find_map(|l| l.strip_prefix("subject=CN = "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no certificate subject:\n{out}"))
    };
    assert_eq!(subject(&["-servername", "b.test"]), "b.test");
    assert_eq!(subject(&["-servername", "B.TEST"]), "b.test");
    assert_eq!(subject(&["-servername", "x.wild.test"]), "*.wild.test");
    assert_eq!(subject(&["-servername", "unknown.test"]), "a.test");
    assert_eq!(subject(&["-noservername"]), "a.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_server_than_the_sni_picked_gets_421() {
    let t = Https::start("");
    // curl: SNI from the URL, Host (HTTP/2: :authority) from the header.
    for version in ["--http1.1", "--http2"] {
        let out = t.curl(
            "b.test",
            "/",
            &[
                version,
                "-H",
                "Host: a.test",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ],
        );
        assert_eq!(out, "421", "{version}");
    }
    // hyper: an HTTP/2 connection for a.test asked for b.test (coalescing).
    let config = client_config(&t.pki, &["h2"], None);
    for (host, status) in [
        ("b.test", StatusCode::MISDIRECTED_REQUEST),
        ("plain.test", StatusCode::MISDIRECTED_REQUEST),
        ("a.test", StatusCode::OK),
        ("a.test:443", StatusCode::OK),
    ] {
        let stream = connect(t.tls, "a.test", &config).await.expect("handshake");
        let resp = tls::get(stream, host, "/").await.expect("GET");
        assert_eq!(resp.status, status, "{host}");
    }
    // Two names of one wildcard server are one server.
    let stream = connect(t.tls, "x.wild.test", &config)
        .await
        .expect("handshake");
    let resp = tls::get(stream, "y.wild.test", "/").await.expect("GET");
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (StatusCode::OK, "wild\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_with_tickets_and_ids() {
    let t = Https::start("");
    let sess = t.pki.path("session.pem");
    let sess = sess.to_str().expect("path");
    let get = tls::http_close("a.test");
    for (version, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let first = s_client(
            t.tls,
            &["-servername", "a.test", version, "-sess_out", sess],
            &get,
        );
        assert!(first.contains(&format!("New, {name}")), "{first}");
        if name == "TLSv1.2" {
            // A TLS 1.2 session resumes by ticket, not by session ID:
            // stateless tickets are on (rustls leaves them off).
            assert!(
                first.contains("TLS session ticket lifetime hint"),
                "{first}"
            );
        }
        let again = s_client(
            t.tls,
            &["-servername", "a.test", version, "-sess_in", sess],
            &get,
        );
        assert!(again.contains(&format!("Reused, {name}")), "{again}");
        assert!(again.contains("HTTP/1.1 200"), "{again}");
    }
    // rustls: one config (its session store) for both connections.
    let config = client_config(&t.pki, &["h2"], None);
    let first = connect(t.tls, "a.test", &config).await.expect("handshake");
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
    // Reading the answer reads the tickets that came before it.
    assert_eq!(
        tls::get(first, "a.test", "/").await.expect("GET").status,
        200
    );
    let again = connect(t.tls, "a.test", &config).await.expect("handshake");
    assert_eq!(
        again.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    assert_eq!(
        tls::get(again, "a.test", "/").await.expect("GET").status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_stalls_is_cut_after_the_timeout() {
    let t = Https::start(r#"handshake_timeout: "500ms""#);
    let hello = tls::client_hello(&t.pki, "a.test");
    for sent in [&[][..], &hello[..hello.len() / 2]] {
        let mut s = TcpStream::connect(t.tls).await.expect("connect");
        s.write_all(sent).await.expect("write");
        let start = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        let took = start.elapsed();
        assert!(
            read.is_ok(),
            "a stalled handshake of {} bytes was never cut",
            sent.len()
        );
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "cut after {took:?}"
        );
    }
    assert_eq!(
        t.metric(r#"troupe_tls_handshakes_total{outcome="timeout"}"#),
        2.0
    );
    t.still_serves();
    assert!(t.metric(r#"troupe_tls_handshakes_total{outcome="ok"}"#) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_inside_one_tls_record_is_cut_by_the_header_timeout() {
    let t = Https::start(r#"header_timeout: "1s", keepalive_timeout: "30s""#);
    let config = client_config(&t.pki, &["http/1.1"], None);
    let mut stream = connect(t.tls, "a.test", &config).await.expect("handshake");
    // Under the TLS stream: a record header announcing 64 bytes, then a
    // byte every 100 ms, so no plaintext ever arrives.
    let tcp = stream.get_mut().0;
    let start = Instant::now();
    let mut cut = false;
    let record = [0x17u8, 0x03, 0x03, 0x00, 0x40]
        .into_iter()
        .chain(std::iter::repeat(0));
    for byte in record.take(60) {
        if tcp.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
        // Bytes are the session tickets sent after the handshake; only
        // the end of the stream (or a reset) is the server giving up.
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            cut = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(cut, "a trickled record was never cut off");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut after {took:?}: the header timeout, not the idle one"
    );
    t.still_serves();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_where_a_server_asks_for_them() {
    let t = Https::start("");
    // Signed by the configured CA: served.
    let trusted = client_config(&t.pki, &["h2"], Some("client"));
    let stream = connect(t.tls, "m.test", &trusted).await.expect("handshake");
    let resp = tls::get(stream, "m.test", "/").await.expect("GET");
    assert_eq!((resp.status, resp.text().as_str()), (StatusCode::OK, "m\n"));
    // None, or one from a CA the server does not trust: the handshake
    // fails (with TLS 1.3 the client may only learn it on its first read).
    for identity in [None, Some("rogue")] {
        let config = client_config(&t.pki, &["h2"], identity);
        let failed = match connect(t.tls, "m.test", &config).await {
            Err(_) => true,
            Ok(stream) => tls::get(stream, "m.test", "/").await.is_err(),
        };
        assert!(failed, "{identity:?} was served by m.test");
    }
    // Servers that do not ask take clients without one, and a client
    // without one cannot reach m.test through another server's handshake.
    let anonymous = client_config(&t.pki, &["h2"], None);
    let stream = connect(t.tls, "a.test", &anonymous)
        .await
        .expect("handshake");
    let resp = tls::get(stream, "a.test", "/").await.expect("GET");
    assert_eq!(resp.status, StatusCode::OK);
    let stream = connect(t.tls, "a.test", &anonymous)
        .await
        .expect("handshake");
    let resp = tls::get(stream, "m.test", "/").await.expect("GET");
    assert_eq!(resp.status, StatusCode::MISDIRECTED_REQUEST);
    // curl agrees.
    let (cert, key) = (t.pki.path("client.crt"), t.pki.path("client.key"));
    let with = curl_https(
        t.tls,
        &t.pki,
        "m.test",
        "/",
        &[
            "--cert",
            cert.to_str().expect("path"),
            "--key",
            key.to_str().expect("path"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&with.stdout), "m\n");
    let without = curl_https(t.tls, &t.pki, "m.test", "/", &[]);
    assert!(
        !without.status.success(),
        "curl without a certificate was served"
    );
}

/// Writes `bytes` (then, if `close`, half-closes) and reads until the
/// server closes, for at most `within`. `None` if the server never closed.
async fn answer_to(
    addr: SocketAddr,
    bytes: &[u8],
    close: bool,
    within: Duration,
) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may close before it has read everything: that is fine.
    let _ = s.write_all(bytes).await;
    if close {
        let _ = s.shutdown().await;
    }
    let mut buf = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut buf)).await {
        Ok(_) => Some(buf),
        Err(_) => None,
    }
}

/// Nothing, or a TLS alert record: never an HTTP answer.
fn closed_cleanly(what: &str, got: Option<Vec<u8>>) {
    let got = got.unwrap_or_else(|| panic!("{what}: the server did not close the connection"));
    assert!(
        got.is_empty() || got[0] == 0x15,
        "{what}: expected a TLS alert or nothing, got {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handshakes_are_closed_and_the_server_keeps_serving() {
    // The default handshake timeout (10 s): every close below is the
    // answer to the input, not the timer.
    let t = Https::start("");
    let quick = Duration::from_secs(3);
    let hello = tls::client_hello(&t.pki, "a.test");

    // A ClientHello cut short, then the client's end of the stream.
    let got = answer_to(t.tls, &hello[..hello.len() / 2], true, quick).await;
    closed_cleanly("truncated ClientHello", got);

    // Garbage.
    let mut x: u32 = 0x9e37_79b9;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    closed_cleanly("garbage", answer_to(t.tls, &garbage, false, quick).await);

    // Plain HTTP to the TLS port.
    let plain = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    closed_cleanly("plain HTTP", answer_to(t.tls, plain, false, quick).await);

    // An IP address as the SNI name (RFC 6066 forbids it; wrk and many
    // scripts send it): served with the default certificate, and not
    // worth a warning per connection.
    let named = tls::client_hello(&t.pki, "abc.test");
    let at = named
        .windows(8)
        .position(|w| w == b"abc.test")
        .expect("the name in the ClientHello");
    let mut ip = named.clone();
    ip[at..at + 8].copy_from_slice(b"10.0.0.1");
    let got = answer_to(t.tls, &ip, true, quick).await;
    assert_eq!(
        got.as_deref().and_then(|g| g.first()),
        Some(&0x16),
        "a ServerHello for an IP address as SNI"
    );

    // A ClientHello that claims 16 MiB, sent as 16 KiB records.
    let mut huge = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
    huge.resize(5 + 0x4000, 0);
    for _ in 0..63 {
        huge.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
        huge.extend(std::iter::repeat_n(0u8, 0x4000));
    }
    closed_cleanly(
        "huge ClientHello",
        answer_to(t.tls, &huge, false, quick).await,
    );

    t.still_serves();
    let logs = t.d.logs();
    assert!(
        logs.matches("TLS handshake did not finish").count() >= 4,
        "each refusal is logged at debug:\n{logs}"
    );
    for line in logs.lines() {
        assert!(
            !line.contains("WARN") && !line.contains("ERROR"),
            "hostile input logged above debug: {line}"
        );
    }
    assert!(t.metric(r#"troupe_tls_handshakes_total{outcome="failed"}"#) >= 4.0);
}

#[test]
fn plain_http_is_redirected_to_https_and_https_answers_carry_hsts() {
    let t = Https::start("");
    let plain = |host: &str, path: &str| {
        let out = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            &format!("Host: {host}"),
            &format!("http://{}{path}", t.plain),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        plain("s.test", "/x/y?z=1"),
        format!("308 https://s.test:{}/x/y?z=1", t.tls.port())
    );
    assert_eq!(
        plain("S.Test:8080", "/"),
        format!("308 https://S.Test:{}/", t.tls.port())
    );
    // A server without `redirect_http` answers plain HTTP itself.
    assert_eq!(plain("a.test", "/"), "200 ");

    let headers = |host: &str, version: &str| {
        t.curl(host, "/", &[version, "-D", "-", "-o", "/dev/null"])
            .to_ascii_lowercase()
    };
    for version in ["--http1.1", "--http2"] {
        let s = headers("s.test", version);
        assert!(
            s.contains("strict-transport-security: max-age=86400; includesubdomains\r\n"),
            "{version}: {s}"
        );
        let a = headers("a.test", version);
        assert!(!a.contains("strict-transport-security"), "{version}: {a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_certificate_and_sessions_still_resume() {
    let t = Https::start("");
    let before = client_config(&t.pki, &["h2"], None);
    let first = connect(t.tls, "a.test", &before).await.expect("handshake");
    let old_cert = first.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    assert_eq!(
        tls::get(first, "a.test", "/").await.expect("GET").status,
        200
    );

    // A client-auth server's session too: its CA stays, so its verifier
    // and ServerConfig do.
    let mutual = client_config(&t.pki, &["h2"], Some("client"));
    let m = connect(t.tls, "m.test", &mutual).await.expect("handshake");
    assert_eq!(tls::get(m, "m.test", "/").await.expect("GET").status, 200);

    let new_cert = t.pki.reissue("a", "a.test");
    assert_ne!(old_cert, new_cert);
    t.d.signal(libc::SIGHUP);
    assert!(
        t.d.wait_for_log("config reloaded", Duration::from_secs(10)),
        "{}",
        t.d.logs()
    );
    let after = client_config(&t.pki, &["h2"], None);
    let fresh = connect(t.tls, "a.test", &after).await.expect("handshake");
    assert_eq!(
        fresh.get_ref().1.peer_certificates().expect("certs")[0].to_vec(),
        new_cert,
        "new handshakes get the new certificate"
    );
    // The ticket keys outlived the swap: the old session resumes.
    let resumed = connect(t.tls, "a.test", &before).await.expect("handshake");
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    assert_eq!(
        tls::get(resumed, "a.test", "/").await.expect("GET").status,
        200
    );
    let m = connect(t.tls, "m.test", &mutual).await.expect("handshake");
    assert_eq!(m.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(tls::get(m, "m.test", "/").await.expect("GET").status, 200);
}

#[test]
fn dash_t_checks_the_certificate_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path());
    std::fs::write(pki.path("garbage.pem"), "not PEM at all\n").expect("write");
    let check = |listen: &str, tls: &str| {
        let cfg = dir.path().join("config.ron");
        let text = format!(
            "Config(\n    listen: [{listen}],\n    servers: [(\n        names: [\"a.test\"],\n        tls: ({tls}),\n        routes: [],\n    )],\n)\n"
        );
        let mut f = std::fs::File::create(&cfg).expect("config");
        f.write_all(text.as_bytes()).expect("write");
        daemon::check(&cfg)
    };
    let tls_listen = r#""127.0.0.1:0", "127.0.0.2:0 tls""#;
    let (code, err) = check(tls_listen, r#"cert: "a.crt", key: "a.key""#);
    assert_eq!(code, Some(0), "{err}");

    let refused = [
        (
            r#"cert: "missing.crt", key: "a.key""#,
            "config.ron:5:15",
            "missing.crt: cannot read it as PEM",
        ),
        (
            r#"cert: "a.crt", key: "b.key""#,
            "config.ron:5:30",
            "b.key: the private key does not match the certificate in",
        ),
        (
            r#"cert: "a.key", key: "a.key""#,
            "config.ron:5:15",
            "a.key: holds no certificate",
        ),
        (
            r#"cert: "a.crt", key: "a.crt""#,
            "config.ron:5:30",
            "a.crt: holds no private key",
        ),
        (
            r#"cert: "a.crt", key: "a.key", client_ca: "garbage.pem""#,
            "config.ron:5:44",
            "garbage.pem: holds no certificate",
        ),
        (
            r#"cert: "a.crt", key: "a.key", redirect_http: true, hsts: (), oops: 1"#,
            "config.ron:5:",
            "oops",
        ),
    ];
    for (tls, at, why) in refused {
        let (code, err) = check(tls_listen, tls);
        assert_eq!(code, Some(1), "{tls}: {err}");
        assert!(err.contains(at), "{tls}: expected {at} in {err}");
        assert!(err.contains(why), "{tls}: expected {why:?} in {err}");
    }
    // `redirect_http` needs a TLS address to send clients to; a TLS
    // address needs a server with a certificate; a listen option is `tls`.
    let (code, err) = check(
        r#""127.0.0.1:0""#,
        r#"cert: "a.crt", key: "a.key", redirect_http: true"#,
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("`redirect_http` needs a `tls` listen address"),
        "{err}"
    );
    let (code, err) = check(r#""127.0.0.1:0 ssl""#, r#"cert: "a.crt", key: "a.key""#);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("config.ron:2:") && err.contains("unknown listen option `ssl`"),
        "{err}"
    );
}

#[test]
fn a_tls_address_needs_a_server_with_a_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(listen: ["127.0.0.1:0 tls"], servers: [(routes: [])])"#,
    )
    .expect("write");
    let (code, err) = daemon::check(&cfg);
    assert_eq!(code, Some(1));
    assert!(err.contains("no server has a `tls` block"), "{err}");
}

#[test]
fn the_shipped_config_serves_https_and_redirects_secure_localhost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = Daemon::start(&shipped_config(dir.path()));
    let (plain, tls) = addrs(&d);
    let ca = modules::dir()
        .parent()
        .expect("target dir")
        .join("tls/ca.crt");
    let out = curl(&[
        "--cacert",
        ca.to_str().expect("path"),
        "--resolve",
        &format!("localhost:{}:{}", tls.port(), tls.ip()),
        "-w",
        "%{http_version}",
        &format!("https://localhost:{}/hello", tls.port()),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, World!\n2",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let redirect = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "-H",
        "Host: secure.localhost",
        &format!("http://{plain}/"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&redirect.stdout),
        format!("308 https://secure.localhost:{}/", tls.port())
    );
    // The plain address still serves the tutorial's requests.
    let hello = curl(&[&format!("http://{plain}/hello")]);
    assert_eq!(String::from_utf8_lossy(&hello.stdout), "Hello, World!\n");
}
