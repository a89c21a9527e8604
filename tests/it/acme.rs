//! Issue 12, automatic HTTPS: certificates from a real ACME CA, Debian's
//! `pebble`, started here with `pebble-challtestsrv` as its DNS (every
//! name resolves to 127.0.0.1) and its validation ports pointed at the
//! server's listeners, so each challenge is answered by Troupe itself:
//! HTTP-01 on the plain address for `site.troupe.test`, TLS-ALPN-01 on the
//! `tls` address for `alpn.troupe.test`. A third server's CA cannot be
//! reached, so it keeps its self-signed stand-in.
//!
//! One run shows issue (stand-in first, then a certificate a client
//! trusting pebble's root verifies), renewal (a short `renew_before`
//! against pebble's short validity: a new serial while an open connection
//! keeps being served), and a restart on the same state directory that
//! serves the stored certificate at once and orders nothing. Skipped, with
//! a message, where pebble is not installed and cannot be.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tempfile::TempDir;

use crate::support::{
    daemon::{self, Daemon},
    eventually_sync,
    tls::{connect, curl, get},
};

const SITE: &str = "site.troupe.test";
const ALPN: &str = "alpn.troupe.test";
const DEAD: &str = "dead.troupe.test";
/// pebble's certificates live this long (its `certificateValidityPeriod`).
const VALIDITY_SECS: u64 = 300;

/// A port free right now (pebble must be told the server's ports before
/// the server binds them).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Whether `pebble` is installed, installing it if it is not.
fn pebble_installed() -> bool {
    let have = || {
        Command::new("sh")
            .args(["-c", "command -v pebble && command -v pebble-challtestsrv"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have() {
        return true;
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "pebble"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    have()
}

/// pebble and its DNS, killed on drop.
struct Pebble {
    children: Vec<Child>,
    /// The directory URL.
    directory: String,
    /// The CA that signed pebble's own HTTPS certificate (`ca_root`).
    https_ca: PathBuf,
    /// pebble's management interface (issuing roots).
    management: SocketAddr,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// pebble's HTTPS certificate, which the package does not ship: a CA and
/// a certificate for 127.0.0.1 from it, as PEM files in `dir`.
fn pebble_https_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, "pebble HTTPS CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).expect("params");
    leaf.distinguished_name.push(DnType::CommonName, "pebble");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("key");
    let cert = leaf.signed_by(&key, &ca).expect("sign");
    let paths = (
        dir.join("pebble-ca.pem"),
        dir.join("pebble.crt"),
        dir.join("pebble.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http` and TLS-ALPN-01 on
    /// `tls` (the server's ports), with certificates of [`VALIDITY_SECS`].
    fn start(dir: &Path, http: u16, tls: u16) -> Self {
        let (https_ca, cert, key) = pebble_https_pki(dir);
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = dir.join("pebble.json");
        let json = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http,
                "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": VALIDITY_SECS,
            }
        });
        std::fs::write(&config, json.to_string()).expect("write pebble config");
        let mut children = Vec::new();
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        children.push(dns_server);
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random sleep before validating, no nonces refused at
            // random: the test is about Troupe, not client retries.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        children.push(pebble);
        let pebble = Self {
            children,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            https_ca,
            management: ([127, 0, 0, 1], management).into(),
        };
        let up = |port: u16| TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert!(
            eventually_sync(Duration::from_secs(10), || up(listen)
                && up(management)
                && up(dns_management)),
            "pebble did not start"
        );
        pebble
    }

    /// The root pebble issues under (it makes a new one each start).
    fn issuing_root(&self) -> CertificateDer<'static> {
        let out = curl(&[
            "-sS",
            "--cacert",
            &self.https_ca.display().to_string(),
            &format!("https://{}/roots/0", self.management),
        ]);
        assert!(out.status.success(), "{out:?}");
        CertificateDer::from_pem_slice(&out.stdout).expect("pebble's root")
    }
}

/// Accepts any certificate: to look at the stand-in, which no one signed.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        troupe::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client(roots: Option<CertificateDer<'static>>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(troupe::tls::provider().clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let mut config = match roots {
        Some(root) => {
            let mut store = RootCertStore::empty();
            store.add(root).expect("root");
            builder.with_root_certificates(store).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The serial and whether the certificate is self-signed (issuer ==
/// subject).
fn serial_and_self_signed(der: &[u8]) -> (Vec<u8>, bool) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("x509");
    (
        cert.raw_serial().to_vec(),
        cert.issuer().as_raw() == cert.subject().as_raw(),
    )
}

/// The leaf a handshake for `name` gets, verified against `roots` (or
/// not verified at all when `None`), and the page it serves.
async fn fetch(
    addr: SocketAddr,
    name: &str,
    roots: Option<CertificateDer<'static>>,
) -> Result<(Vec<u8>, String), String> {
    let stream = connect(addr, name, &client(roots))
        .await
        .map_err(|e| e.to_string())?;
    let leaf = stream.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    let resp = get(stream, name, "/").await?;
    Ok((leaf, String::from_utf8_lossy(&resp.body).into_owned()))
}

/// Polls until a handshake for `name` verifies against `root`.
async fn until_verified(addr: SocketAddr, name: &str, root: &CertificateDer<'static>) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match fetch(addr, name, Some(root.clone())).await {
            Ok((leaf, body)) => {
                assert_eq!(body, format!("{name}\n"));
                return leaf;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no verified certificate for {name}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A value of the admin API's `/metrics`.
fn metric(admin: &str, series: &str) -> Option<f64> {
    let out = curl(&["-sS", &format!("http://{admin}/metrics")]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The server's config: `site` by HTTP-01 (renewing `renew_before` its
/// end when given; its plain HTTP redirects to HTTPS, which must not take
/// the challenge), `alpn` by TLS-ALPN-01, `dead` from a CA that is not
/// there.
fn config(pebble: &Pebble, http: u16, tls: u16, renew_before: Option<&str>) -> String {
    let ca = pebble.https_ca.display();
    let dir = &pebble.directory;
    let renew = renew_before.map_or(String::new(), |r| format!(", renew_before: \"{r}\""));
    format!(
        r#"Config(
    listen: ["127.0.0.1:{http}", "127.0.0.1:{tls} tls"],
    log: (access: Off),
    admin: (listen: "127.0.0.1:0"),
    servers: [
        (names: ["{SITE}"], default: true,
         tls: (acme: (directory: "{dir}", email: "ops@troupe.test", ca_root: "{ca}", state_dir: "state"{renew}),
               redirect_http: true),
         routes: [(path: "/", handler: Return(body: "{SITE}\n"))]),
        (names: ["{ALPN}"],
         tls: (acme: (directory: "{dir}", ca_root: "{ca}", challenge: TlsAlpn01, state_dir: "state")),
         routes: [(path: "/", handler: Return(body: "{ALPN}\n"))]),
        (names: ["{DEAD}"],
         tls: (acme: (directory: "https://127.0.0.1:9/dir", ca_root: "{ca}", state_dir: "state")),
         routes: [(path: "/", handler: Return(body: "{DEAD}\n"))]),
    ],
)"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_issued_renewed_and_kept_across_a_restart() {
    if !pebble_installed() {
        eprintln!(
            "SKIPPED certificates_are_issued_renewed_and_kept_across_a_restart: \
             Debian's `pebble` is not installed and `apt-get install -y pebble` failed"
        );
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let (http, tls) = (free_port(), free_port());
    let pebble = Pebble::start(dir.path(), http, tls);
    let cfg = dir.path().join("config.ron");
    // Renewal falls due 5 s after issue.
    let renew_before = format!("{}s", VALIDITY_SECS - 5);
    std::fs::write(&cfg, config(&pebble, http, tls, Some(&renew_before))).expect("config");
    let d = Daemon::start_logging(&cfg, "info,troupe=debug");
    let tls_addr: SocketAddr = ([127, 0, 0, 1], tls).into();
    let admin = d.admin_addr();

    // Until its CA answers, a server serves a self-signed stand-in: the
    // listener works from the first second.
    let (leaf, body) = fetch(tls_addr, DEAD, None).await.expect("stand-in");
    assert!(
        serial_and_self_signed(&leaf).1,
        "the stand-in is self-signed"
    );
    assert_eq!(body, format!("{DEAD}\n"));
    assert!(
        d.wait_for_log("ACME order failed", Duration::from_secs(10)),
        "{}",
        d.logs()
    );

    // Issue: a client that trusts pebble's root verifies both names,
    // one proved over HTTP-01, the other over TLS-ALPN-01.
    let root = pebble.issuing_root();
    let first = until_verified(tls_addr, SITE, &root).await;
    let alpn = until_verified(tls_addr, ALPN, &root).await;
    assert!(!serial_and_self_signed(&first).1);
    assert_ne!(first, alpn);
    // Offering `acme-tls/1` with no validation in flight gets no
    // certificate at all (never the server's own under that protocol).
    let mut acme_alpn = ClientConfig::clone(&client(None));
    acme_alpn.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    assert!(connect(tls_addr, SITE, &Arc::new(acme_alpn)).await.is_err());
    // The HTTP-01 answer came before the redirect every other plain
    // request of that server gets.
    let out = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Host: {SITE}"),
        &format!("http://127.0.0.1:{http}/.well-known/acme-challenge/unknown"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "308");
    let state = dir.path().join("state");
    let mode = |p: PathBuf| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(state.join(format!("certs/{SITE}/key.pem"))), 0o600);
    assert_eq!(mode(state.clone()), 0o700);
    // One account, registered at pebble (the dead CA never answered).
    let accounts: Vec<_> = std::fs::read_dir(state.join("accounts"))
        .expect("accounts")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(mode(accounts[0].clone()), 0o600);

    // Renew: a connection opened on the first certificate stays up while
    // new handshakes get a certificate with another serial.
    let open = connect(tls_addr, SITE, &client(Some(root.clone())))
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(20);
    let renewed = loop {
        let (leaf, _) = fetch(tls_addr, SITE, Some(root.clone()))
            .await
            .expect("verified while renewing");
        if leaf != first {
            break leaf;
        }
        assert!(Instant::now() < deadline, "not renewed:\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(
        serial_and_self_signed(&renewed).0,
        serial_and_self_signed(&first).0
    );
    let resp = get(open, SITE, "/").await.expect("the open connection");
    assert_eq!(String::from_utf8_lossy(&resp.body), format!("{SITE}\n"));
    assert!(metric(&admin, "troupe_acme_orders_total{outcome=\"issued\"}").unwrap_or(0.0) >= 3.0);
    assert!(metric(&admin, "troupe_acme_orders_total{outcome=\"failed\"}").unwrap_or(0.0) >= 1.0);
    let out = curl(&["-sS", &format!("http://{admin}/tls")]);
    let tls_status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("GET /tls");
    let site = tls_status["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["names"][0] == SITE))
        .unwrap_or_else(|| panic!("{tls_status}"));
    assert_eq!(site["acme"], pebble.directory.as_str(), "{tls_status}");
    assert!(site["last_error"].is_null(), "{tls_status}");
    let days = metric(
        &admin,
        &format!("troupe_tls_cert_expiry_days{{server=\"{SITE}\"}}"),
    )
    .expect("expiry gauge");
    assert!(days > 0.0 && days < 1.0, "{days}");
    let mut d = d;
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(10)).is_some(), "did not stop");

    // Restart on the same state directory (without the short renewal):
    // the stored certificates serve from the first handshake, no order.
    std::fs::write(&cfg, config(&pebble, http, tls, None)).expect("config");
    let stored = std::fs::read(state.join(format!("certs/{SITE}/cert.pem"))).expect("stored");
    let stored = CertificateDer::from_pem_slice(&stored)
        .expect("pem")
        .to_vec();
    let d = Daemon::start_logging(&cfg, "info,troupe=debug");
    let admin = d.admin_addr();
    let (leaf, _) = fetch(tls_addr, SITE, Some(root.clone()))
        .await
        .expect("verified at once after the restart");
    assert_eq!(leaf, stored);
    fetch(tls_addr, ALPN, Some(root.clone()))
        .await
        .expect("verified at once after the restart");
    // The dead CA's server orders (and fails) again; the others do not.
    assert!(d.wait_for_log("ACME order failed", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    let logs = d.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("ordering") && !l.contains(DEAD)),
        "{logs}"
    );
    assert_eq!(
        metric(&admin, "troupe_acme_orders_total{outcome=\"issued\"}"),
        Some(0.0)
    );
    assert_eq!(
        fetch(tls_addr, SITE, Some(root)).await.expect("again").0,
        stored
    );
}

/// `troupe -t` checks an `acme` block without contacting the CA.
#[test]
fn dash_t_checks_the_acme_block() {
    let dir = TempDir::new().expect("temp dir");
    let cfg = dir.path().join("config.ron");
    let write = |acme: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"Config(
    listen: ["127.0.0.1:0", "127.0.0.2:0 tls"],
    servers: [
        (names: ["a.troupe.test"],
         tls: (acme: ({acme})),
         routes: [(path: "/", handler: Return(body: "a"))]),
    ],
)"#
            ),
        )
        .expect("write");
    };
    // Fine (no CA runs at port 9): the default state directory is made.
    write(r#"directory: "https://127.0.0.1:9/dir""#);
    let (code, err) = daemon::check(&cfg);
    assert_eq!(code, Some(0), "{err}");
    assert!(dir.path().join("acme/certs").is_dir());

    let refused = |acme: &str, line_col: &str, says: &str| {
        write(acme);
        let (code, err) = daemon::check(&cfg);
        assert_ne!(code, Some(0), "{acme}");
        assert!(err.contains(line_col), "{acme}: {err}");
        assert!(err.contains(says), "{acme}: {err}");
    };
    refused(
        r#"directory: "http://ca.test/dir""#,
        "config.ron:5:",
        "is not an https:// URL",
    );
    refused(
        r#"directory: "https://ca.test/dir", oops: 1"#,
        "config.ron:5:",
        "oops",
    );
    std::fs::write(dir.path().join("file"), "").expect("write");
    refused(
        r#"directory: "https://ca.test/dir", state_dir: "file/acme""#,
        "config.ron:5:",
        "cannot make the ACME state directory",
    );
    refused(
        r#"directory: "https://ca.test/dir", ca_root: "missing.pem""#,
        "config.ron:5:",
        "missing.pem",
    );
}
