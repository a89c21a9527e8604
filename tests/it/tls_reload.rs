//! Issue 12, certificates that change without a restart, on the real
//! binary: the certificate actor reads the files again when they are
//! replaced on disk (a rename over the old file), on SIGHUP and on `POST
//! /tls/reload`; new handshakes get the new certificate while an open
//! connection goes on and a session made before resumes after; a bad
//! replacement (key of another certificate, PEM that does not decode, a
//! missing file, an expired certificate) is refused with the file and the
//! reason, the old certificate keeps serving (and a client-auth server's
//! sessions resume too), and `GET /tls` and the
//! `troupe_tls_cert_*` series show it; `troupe -t` refuses an expired
//! certificate. A client-auth server's CA file is read again too: clients
//! of the new CA get in, those of the old one (and their sessions) no
//! longer, and a bad CA file is refused like a bad certificate.
//!
//! `a.test`'s files sit in a watched directory (`live/`); `b.test`'s are
//! symlinks in `links/` to files in `store/`, which no one watches, so a
//! change there is seen only when SIGHUP or the admin API asks.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{HandshakeKind, pki_types::CertificateDer, pki_types::pem::PemObject};
use serde_json::Value;
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::support::{
    daemon::{self, Daemon},
    tls::{self, Pki, client_config, connect, curl},
};

/// A new certificate for `name`, valid until `not_after`, from a fresh CA
/// added to the PKI's `ca.pem`: `(certificate PEM, key PEM, DER)`.
fn issue(pki: &Pki, name: &str, not_after: OffsetDateTime) -> (String, String, Vec<u8>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, "reload CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(400);
    params.not_after = not_after;
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("sign");
    let mut bundle = std::fs::read_to_string(pki.path("ca.pem")).expect("ca.pem");
    bundle.push_str(&ca.pem());
    std::fs::write(pki.path("ca.pem"), bundle).expect("write");
    let der = CertificateDer::from_pem_slice(cert.pem().as_bytes())
        .expect("pem")
        .to_vec();
    (cert.pem(), key.serialize_pem(), der)
}

/// A client certificate from a fresh CA, written as `<stem>.crt` and
/// `<stem>.key` (so `client_config(pki, .., Some(stem))` presents it);
/// returns the CA's PEM.
fn client_of_new_ca(pki: &Pki, stem: &str) -> String {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("{stem} CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, stem);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("sign");
    std::fs::write(pki.path(&format!("{stem}.crt")), cert.pem()).expect("write");
    std::fs::write(pki.path(&format!("{stem}.key")), key.serialize_pem()).expect("write");
    ca.pem()
}

/// Writes `text` to `path` the way certificate tools do: a temporary file
/// renamed over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// In `days` days.
fn days(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(days)
}

struct Server {
    d: Daemon,
    pki: Pki,
    tls: SocketAddr,
    admin: String,
    dir: TempDir,
}

impl Server {
    /// `a.test` (default, files in `live/`, valid 90 days), `b.test`
    /// (symlinked files in `links/` → `store/`) and `m.test` (asks for
    /// client certificates, so it has a `ServerConfig` of its own).
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(dir.path());
        for sub in ["live", "links", "store"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let (cert, key, _) = issue(&pki, "a.test", days(90));
        std::fs::write(dir.path().join("live/a.crt"), cert).expect("write");
        std::fs::write(dir.path().join("live/a.key"), key).expect("write");
        for ext in ["crt", "key"] {
            std::fs::copy(
                pki.path(&format!("b.{ext}")),
                dir.path().join(format!("store/b.{ext}")),
            )
            .expect("copy");
            std::os::unix::fs::symlink(
                dir.path().join(format!("store/b.{ext}")),
                dir.path().join(format!("links/b.{ext}")),
            )
            .expect("symlink");
        }
        let cfg = dir.path().join("config.ron");
        std::fs::write(
            &cfg,
            r#"Config(
    listen: ["127.0.0.2:0 tls"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    servers: [
        (names: ["a.test"], default: true, tls: (cert: "live/a.crt", key: "live/a.key"),
         routes: [(path: "/", handler: Return(body: "a\n"))]),
        (names: ["b.test"], tls: (cert: "links/b.crt", key: "links/b.key"),
         routes: [(path: "/", handler: Return(body: "b\n"))]),
        (names: ["m.test"], tls: (cert: "m.crt", key: "m.key", client_ca: "client-ca.pem"),
         routes: [(path: "/", handler: Return(body: "m\n"))]),
    ],
)"#,
        )
        .expect("write config");
        let d = Daemon::start_logging(&cfg, "info,troupe=debug");
        let tls = d.listening()[0];
        let admin = d.admin_addr();
        Self {
            d,
            pki,
            tls,
            admin,
            dir,
        }
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    /// The certificate a new handshake for `sni` gets (DER).
    async fn served(&self, sni: &str) -> Vec<u8> {
        let config = client_config(&self.pki, &["http/1.1"], None);
        let stream = connect(self.tls, sni, &config).await.expect("handshake");
        stream.get_ref().1.peer_certificates().expect("certs")[0].to_vec()
    }

    /// Waits until new handshakes for `sni` get `der`.
    async fn wait_served(&self, sni: &str, der: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.served(sni).await != der {
            assert!(
                Instant::now() < deadline,
                "{sni}: the new certificate was not served:\n{}",
                self.d.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An admin endpoint's JSON: `GET` or `POST`.
    fn admin(&self, method: &str, path: &str) -> (u16, Value) {
        let out = curl(&[
            "-X",
            method,
            "-H",
            "content-type: application/json",
            "-w",
            "\n%{http_code}",
            &format!("http://{}{path}", self.admin),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (
            code.parse().expect("status"),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// A value of `/metrics`.
    fn metric(&self, series: &str) -> Option<f64> {
        let out = curl(&[&format!("http://{}/metrics", self.admin)]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// `GET /tls`'s entry for the server named `name`.
    fn status(&self, name: &str) -> Value {
        let (code, body) = self.admin("GET", "/tls");
        assert_eq!(code, 200, "{body}");
        body["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["names"][0] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    }
}

/// Whether `m.test` (client certificates from `client-ca.pem`) serves a
/// client with `config`: with TLS 1.3 a refused client certificate may
/// show only on the client's first read, so a request is made.
async fn m_serves(t: &Server, config: &std::sync::Arc<rustls::ClientConfig>) -> bool {
    // A refusal is an answer; a server that never answers is a failure,
    // not a refusal.
    match connect(t.tls, "m.test", config).await {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => panic!("{e}\n{}", t.d.logs()),
        Err(_) => false,
        Ok(stream) => match tls::get(stream, "m.test", "/").await {
            Err(e) if e.starts_with(tls::NO_ANSWER) => panic!("{e}\n{}", t.d.logs()),
            r => r.is_ok_and(|r| r.status == 200),
        },
    }
}

/// An HTTP/1.1 request on an open connection.
async fn ask(send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> String {
    let req = Request::get("/")
        .header("host", "a.test")
        .body(Empty::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_on_disk_is_served_to_new_handshakes_while_old_ones_go_on() {
    let t = Server::start();
    // Made before the swap: a session to resume, an open connection.
    let before = client_config(&t.pki, &["http/1.1"], None);
    let open = connect(t.tls, "a.test", &before).await.expect("handshake");
    let old = open.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(open))
        .await
        .expect("http1");
    tokio::spawn(conn);
    assert_eq!(ask(&mut send).await, "a\n");
    let mutual = client_config(&t.pki, &["http/1.1"], Some("client"));
    let m = connect(t.tls, "m.test", &mutual).await.expect("handshake");
    assert_eq!(tls::get(m, "m.test", "/").await.expect("GET").status, 200);
    let days_before = t
        .metric("troupe_tls_cert_expiry_days{server=\"a.test\"}")
        .expect("expiry metric");
    assert!((89.9..=90.0).contains(&days_before), "{days_before}");

    let (cert, key, new) = issue(&t.pki, "a.test", days(30));
    assert_ne!(old, new);
    replace(&t.path("live/a.key"), &key);
    replace(&t.path("live/a.crt"), &cert);
    t.wait_served("a.test", &new).await;
    assert!(
        t.d.wait_for_log("certificate file changed", Duration::from_secs(5)),
        "{}",
        t.d.logs()
    );

    // The connection opened before goes on, with its certificate.
    assert_eq!(ask(&mut send).await, "a\n");
    // The session made before resumes: the ServerConfig was not rebuilt.
    let resumed = connect(t.tls, "a.test", &before).await.expect("handshake");
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    // So does one with the client-auth server, whose config was kept too.
    let m = connect(t.tls, "m.test", &mutual).await.expect("handshake");
    assert_eq!(m.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(tls::get(m, "m.test", "/").await.expect("GET").status, 200);
    // `b.test` was untouched.
    assert_eq!(
        t.served("b.test").await,
        std::fs::read(t.pki.path("b.crt"))
            .ok()
            .and_then(|pem| CertificateDer::from_pem_slice(&pem).ok())
            .expect("b.crt")
            .to_vec()
    );
    let left = t
        .metric("troupe_tls_cert_expiry_days{server=\"a.test\"}")
        .expect("expiry metric");
    assert!((29.9..=30.0).contains(&left), "{left}");
    let status = t.status("a.test");
    assert!(status["last_error"].is_null(), "{status}");
    assert!(
        status["days_left"]
            .as_f64()
            .is_some_and(|d| (29.9..=30.0).contains(&d)),
        "{status}"
    );
    assert!(
        t.metric("troupe_tls_cert_reload_total{outcome=\"ok\"}")
            .is_some_and(|n| n >= 1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_the_admin_api_read_the_certificates_again() {
    let t = Server::start();
    let old = t.served("b.test").await;

    // Changed where no one watches: only asking reloads it.
    let (cert, key, first) = issue(&t.pki, "b.test", days(60));
    std::fs::write(t.path("store/b.crt"), &cert).expect("write");
    std::fs::write(t.path("store/b.key"), &key).expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(t.served("b.test").await, old, "nothing asked yet");
    let (code, body) = t.admin("POST", "/tls/reload");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["reloaded"], true, "{body}");
    assert!(
        body["changes"]
            .as_str()
            .is_some_and(|c| c.contains("b.test")),
        "{body}"
    );
    assert_eq!(t.served("b.test").await, first);
    let (_, tls) = t.admin("GET", "/tls");
    assert_eq!(tls["last_reload"]["trigger"], "admin", "{tls}");

    let (cert, key, second) = issue(&t.pki, "b.test", days(60));
    std::fs::write(t.path("store/b.crt"), &cert).expect("write");
    std::fs::write(t.path("store/b.key"), &key).expect("write");
    t.d.signal(libc::SIGHUP);
    t.wait_served("b.test", &second).await;
    let (_, tls) = t.admin("GET", "/tls");
    assert_eq!(tls["last_reload"]["trigger"], "signal", "{tls}");
    assert!(
        t.d.logs().contains("certificates reloaded"),
        "{}",
        t.d.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_replacement_is_refused_and_the_old_certificate_keeps_serving() {
    let t = Server::start();
    let old = t.served("b.test").await;
    let a_old = t.served("a.test").await;
    let (expired_cert, expired_key, _) = issue(&t.pki, "b.test", days(-1));
    let (other_cert, _, _) = issue(&t.pki, "b.test", days(60));
    let original_key = std::fs::read_to_string(t.path("store/b.key")).expect("key");
    let original_cert = std::fs::read_to_string(t.path("store/b.crt")).expect("cert");
    let bad_pem = "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n";
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "mismatched key",
            &other_cert,
            &original_key,
            "does not match",
        ),
        (
            "unparsable PEM",
            bad_pem,
            &original_key,
            "cannot read it as PEM",
        ),
        ("expired", &expired_cert, &expired_key, "expired on"),
        (
            "missing file",
            "",
            &original_key,
            "links/b.crt: cannot read",
        ),
    ];
    for (n, (what, cert, key, reason)) in cases.into_iter().enumerate() {
        if what == "missing file" {
            std::fs::remove_file(t.path("store/b.crt")).expect("remove");
        } else {
            std::fs::write(t.path("store/b.crt"), cert).expect("write");
        }
        std::fs::write(t.path("store/b.key"), key).expect("write");
        let (code, body) = t.admin("POST", "/tls/reload");
        assert_eq!(code, 422, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{what}: {body}");
        assert!(error.contains("links/b."), "{what}: names the file: {body}");
        assert_eq!(t.served("b.test").await, old, "{what}: the old one serves");
        let status = t.status("b.test");
        assert!(
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(reason)),
            "{what}: {status}"
        );
        assert!(t.status("a.test")["last_error"].is_null());
        assert_eq!(
            t.metric("troupe_tls_cert_reload_total{outcome=\"refused\"}"),
            Some((n + 1) as f64),
            "{what}"
        );
        assert!(
            t.d.logs().contains(reason),
            "{what}: logged:\n{}",
            t.d.logs()
        );
    }
    // The good files again: taken, and the error is cleared.
    std::fs::write(t.path("store/b.crt"), &original_cert).expect("write");
    let (code, body) = t.admin("POST", "/tls/reload");
    assert_eq!(code, 200, "{body}");
    assert!(t.status("b.test")["last_error"].is_null());
    assert_eq!(t.served("b.test").await, old);

    // A bad file renamed into the watched directory: refused too.
    replace(&t.path("live/a.crt"), bad_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.status("a.test")["last_error"].is_null() {
        assert!(Instant::now() < deadline, "{}", t.status("a.test"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.served("a.test").await, a_old);
}

#[test]
fn dash_t_refuses_an_expired_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path());
    let (cert, key, _) = issue(&pki, "a.test", days(-2));
    std::fs::write(pki.path("old.crt"), cert).expect("write");
    std::fs::write(pki.path("old.key"), key).expect("write");
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        r#"Config(
    listen: ["127.0.0.1:8443 tls"],
    servers: [(names: ["a.test"], tls: (cert: "old.crt", key: "old.key"),
               routes: [(path: "/", handler: Return(body: "a\n"))])],
)"#,
    )
    .expect("write config");
    let (code, err) = daemon::check(&cfg);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("old.crt") && err.contains("expired on"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_client_ca_is_read_again_and_a_bad_one_refused() {
    let t = Server::start();
    let old = client_config(&t.pki, &["http/1.1"], Some("client"));
    assert!(m_serves(&t, &old).await, "{}", t.d.logs());
    // `old` holds a session now, and it resumes while the CA stays.
    let again = connect(t.tls, "m.test", &old).await.expect("handshake");
    assert_eq!(
        again.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    drop(again);
    let a = client_config(&t.pki, &["http/1.1"], None);
    let first = connect(t.tls, "a.test", &a).await.expect("handshake");
    assert_eq!(
        tls::get(first, "a.test", "/").await.expect("GET").status,
        200
    );
    let ca = client_of_new_ca(&t.pki, "fresh");
    let fresh = client_config(&t.pki, &["http/1.1"], Some("fresh"));
    assert!(!m_serves(&t, &fresh).await, "served before its CA was");

    // Renamed over the old CA file, which is watched like the
    // certificates: read again with no one asking.
    replace(&t.path("client-ca.pem"), &ca);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m_serves(&t, &fresh).await {
        assert!(
            Instant::now() < deadline,
            "the new client CA was not taken:\n{}",
            t.d.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t.d.logs().contains("new client CA for m.test"),
        "{}",
        t.d.logs()
    );
    // The old CA's client is refused, session or not: a session made
    // under the old CA must not resume (resumption skips verification).
    assert!(!m_serves(&t, &old).await, "the old CA's client was served");
    let status = t.status("m.test");
    assert!(status["last_error"].is_null(), "{status}");
    assert!(
        status["client_ca"]
            .as_str()
            .is_some_and(|f| f.ends_with("client-ca.pem")),
        "{status}"
    );
    // The other servers kept their configs: a session made with `a.test`
    // before the swap resumes.
    let a_again = connect(t.tls, "a.test", &a).await.expect("handshake");
    assert_eq!(
        a_again.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );

    // Another CA, and the admin API asks (if the watcher has not already).
    let ca = client_of_new_ca(&t.pki, "third");
    let third = client_config(&t.pki, &["http/1.1"], Some("third"));
    replace(&t.path("client-ca.pem"), &ca);
    let (code, body) = t.admin("POST", "/tls/reload");
    assert_eq!(code, 200, "{body}");
    assert!(m_serves(&t, &third).await, "{}", t.d.logs());
    assert!(
        !m_serves(&t, &fresh).await,
        "the replaced CA's client was served"
    );

    // A CA file that does not parse: refused, named, the last CA serves.
    replace(
        &t.path("client-ca.pem"),
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    );
    let (code, body) = t.admin("POST", "/tls/reload");
    assert_eq!(code, 422, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("client-ca.pem") && error.contains("cannot read it as PEM"),
        "{body}"
    );
    assert!(
        m_serves(&t, &third).await,
        "the last good CA stopped serving"
    );
    assert!(!m_serves(&t, &fresh).await);
    assert!(
        t.status("m.test")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("client-ca.pem")),
        "{}",
        t.status("m.test")
    );
    // An empty file (no certificate at all): refused as well.
    replace(&t.path("client-ca.pem"), "");
    let (code, body) = t.admin("POST", "/tls/reload");
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("client-ca.pem: holds no certificate")),
        "{body}"
    );
    assert!(m_serves(&t, &third).await);
}
