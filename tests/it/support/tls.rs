//! TLS in the tests: certificates made here with rcgen (a server CA, a
//! certificate per test server name, a wildcard, a client CA with a client
//! certificate, and a rogue client certificate no configured CA signed),
//! written as PEM files; and three clients: hyper over tokio-rustls, curl
//! and `openssl s_client`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::Arc,
};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::client::Resp;

/// The server names the test PKI has certificates for, and their files'
/// stems: `a.crt` and `a.key` are `a.test`'s.
pub const SERVERS: [(&str, &str); 5] = [
    ("a", "a.test"),
    ("b", "b.test"),
    ("wild", "*.wild.test"),
    ("m", "m.test"),
    ("s", "s.test"),
];

/// Certificates and keys as PEM files in one directory: `ca.pem` (the
/// server CA), `<stem>.crt`/`<stem>.key` per [`SERVERS`] entry,
/// `client-ca.pem`, `client.crt`/`client.key` (signed by it) and
/// `rogue.crt`/`rogue.key` (signed by a CA no server trusts).
pub struct Pki {
    pub dir: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate for `names` (the first is its common name) signed by
/// `issuer`; `(certificate PEM, key PEM)`.
fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// Makes every certificate and writes it into `dir`.
    pub fn new(dir: &Path) -> Self {
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
        let server_ca = ca("Troupe test CA");
        write("ca.pem", &server_ca.pem());
        for (stem, name) in SERVERS {
            let (cert, key) = leaf(&[name], ExtendedKeyUsagePurpose::ServerAuth, &server_ca);
            write(&format!("{stem}.crt"), &cert);
            write(&format!("{stem}.key"), &key);
        }
        let client_ca = ca("Troupe test client CA");
        write("client-ca.pem", &client_ca.pem());
        let (cert, key) = leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth, &client_ca);
        write("client.crt", &cert);
        write("client.key", &key);
        let rogue_ca = ca("Rogue CA");
        let (cert, key) = leaf(&["rogue"], ExtendedKeyUsagePurpose::ClientAuth, &rogue_ca);
        write("rogue.crt", &cert);
        write("rogue.key", &key);
        Self {
            dir: dir.to_owned(),
        }
    }

    /// A file of the PKI.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A new certificate for `name` from the same server CA, written over
    /// `<stem>.crt` and `<stem>.key`; returns its DER.
    pub fn reissue(&self, stem: &str, name: &str) -> Vec<u8> {
        // rcgen cannot reload a CA key it did not make, so the replacement
        // comes from a fresh CA, added to `ca.pem` beside the old one.
        let fresh = ca("Troupe test CA 2");
        let (cert, key) = leaf(&[name], ExtendedKeyUsagePurpose::ServerAuth, &fresh);
        let mut bundle = std::fs::read_to_string(self.path("ca.pem")).expect("ca.pem");
        bundle.push_str(&fresh.pem());
        std::fs::write(self.path("ca.pem"), bundle).expect("write");
        std::fs::write(self.path(&format!("{stem}.crt")), &cert).expect("write");
        std::fs::write(self.path(&format!("{stem}.key")), &key).expect("write");
        CertificateDer::from_pem_slice(cert.as_bytes())
            .expect("pem")
            .to_vec()
    }
}

/// A client config trusting the PKI's `ca.pem`, offering `alpn`, and
/// presenting `identity` (`"client"` or `"rogue"`) when given. Its session
/// store is rustls's default in-memory one, so a second connection with
/// the same config tries to resume.
pub fn client_config(pki: &Pki, alpn: &[&str], identity: Option<&str>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path("ca.pem")).expect("ca.pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let builder = ClientConfig::builder_with_provider(troupe::tls::provider().clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(who) => {
            let chain = CertificateDer::pem_file_iter(pki.path(&format!("{who}.crt")))
                .expect("client cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("client cert");
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{who}.key"))).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// How long one handshake or one exchange may take before the helpers
/// give up: a stuck peer fails the test with its reason instead of
/// holding the suite until CI's limit.
const STUCK: std::time::Duration = std::time::Duration::from_secs(20);

/// How [`get`]'s error for a peer that never answered begins.
pub const NO_ANSWER: &str = "no answer";

/// Connects and finishes the handshake, asking for `sni`.
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let handshake = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(sni.to_owned()).expect("server name");
        TlsConnector::from(config.clone()).connect(name, tcp).await
    };
    tokio::time::timeout(STUCK, handshake).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no handshake with {addr} ({sni}) within {STUCK:?}"),
        )
    })?
}

/// `GET path` for `host` on a TLS connection, over HTTP/2 when ALPN chose
/// it (`:authority` is `host`), else HTTP/1.1 (`Host: host`).
pub async fn get(stream: TlsStream<TcpStream>, host: &str, path: &str) -> Result<Resp, String> {
    tokio::time::timeout(STUCK, exchange(stream, host, path))
        .await
        .map_err(|_| format!("{NO_ANSWER} to GET {path} ({host}) within {STUCK:?}"))?
}

async fn exchange(stream: TlsStream<TcpStream>, host: &str, path: &str) -> Result<Resp, String> {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(format!("https://{host}{path}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .expect("request");
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    })
}

/// Runs curl with `args`.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

/// `curl` for `https://{host}:{port}{path}`, sent to `addr` whatever
/// `host` resolves to, trusting the PKI's CA; `extra` goes before the URL.
/// Returns stdout (with `-w`, what it wrote last).
pub fn curl_https(addr: SocketAddr, pki: &Pki, host: &str, path: &str, extra: &[&str]) -> Output {
    let resolve = format!("{host}:{}:{}", addr.port(), addr.ip());
    let url = format!("https://{host}:{}{path}", addr.port());
    let ca = pki.path("ca.pem");
    let mut args = vec![
        "--resolve",
        &resolve,
        "--cacert",
        ca.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// Runs `openssl s_client -connect addr` with `args`, feeding it `input`
/// (it stays connected until the server closes, `-ign_eof`). Returns what
/// it printed, stdout and stderr.
pub fn s_client(addr: SocketAddr, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A request s_client sends, asking the server to close after answering
/// (so s_client reads the session tickets that came first, then exits).
pub fn http_close(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// The first bytes a real client sends: a ClientHello for `sni`, as TLS
/// records (from a rustls client that never hears back).
pub fn client_hello(pki: &Pki, sni: &str) -> Vec<u8> {
    let config = client_config(pki, &["h2", "http/1.1"], None);
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write_tls");
    }
    out
}
