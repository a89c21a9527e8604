//! Backends for the proxy tests: small hyper servers on loopback.
//!
//! Every answer carries `x-backend: NAME`. The path's last segment
//! picks what it does (`/any/prefix/headers` is `/headers`):
//! - `/headers`: the request's head as text, one `name: value` a line
//!   (the request line first);
//! - `/big?n=BYTES`: that many bytes, streamed in 64 KiB chunks, with a
//!   Content-Length;
//! - `/upload`: reads the body as it comes and answers its length;
//! - `/pattern?n=BYTES`: that many bytes of `support::pattern`, streamed,
//!   with a Content-Length;
//! - `/sink`: reads the body as it comes, checking it against
//!   `support::pattern`, and answers `LEN` or `LEN bad at OFFSET`;
//! - `/slow?ms=N`: answers after N ms;
//! - `/die`: reads the request, then drops the connection unanswered;
//! - `/hop`: an answer with hop-by-hop headers of its own;
//! - `/trailers`: `abc`, chunked, then the trailer `x-checksum: 42`;
//! - `/healthz`: `ok`, or 503 while [`TestBackend::sick`] is set (the
//!   other paths answer as ever);
//! - anything else: `hello from NAME`.
//!
//! `delay` slows every answer; `max_age` closes each connection that
//! long after it opened (once idle); `keep_alive` closes each
//! connection that has been idle that long since its last answer, as a
//! backend with a short keep-alive timeout does (counted in
//! [`TestBackend::idle_closed`]).
//!
//! A backend speaks HTTP/1.1 on plain TCP by default; `h2` makes it
//! speak HTTP/2 (prior knowledge), `tls` puts TLS under it (HTTP/2 when
//! ALPN chose `h2`, or when `h2` is set and ALPN chose nothing), and every
//! answer on TLS carries `x-sni: NAME` when the client sent SNI.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;

use super::{pattern, tls::Pki};

/// How a backend behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Added to every answer.
    pub delay: Duration,
    /// Connections are closed this long after they open.
    pub max_age: Option<Duration>,
    /// Connections idle this long after their last answer are closed.
    pub keep_alive: Option<Duration>,
    /// TLS under HTTP; `None`: plain TCP.
    pub tls: Option<Arc<ServerConfig>>,
    /// HTTP/2 with prior knowledge (over TLS: when ALPN chose nothing).
    pub h2: bool,
    /// HTTP/2's `SETTINGS_MAX_CONCURRENT_STREAMS`; `None`: hyper's.
    pub max_streams: Option<u32>,
}

/// A backend's TLS: the PKI's certificate `stem` (`a` is `a.test`'s),
/// offering `alpn` (none: ALPN not answered).
pub fn tls_server(pki: &Pki, stem: &str, alpn: &[&str]) -> Arc<ServerConfig> {
    tls_server_with(pki, stem, alpn, false)
}

/// [`tls_server`] that requires a client certificate signed by the PKI's
/// `client-ca.pem` (mutual TLS).
pub fn tls_server_asking(pki: &Pki, stem: &str) -> Arc<ServerConfig> {
    tls_server_with(pki, stem, &["http/1.1"], true)
}

fn tls_server_with(pki: &Pki, stem: &str, alpn: &[&str], ask: bool) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(pki.path(&format!("{stem}.crt")))
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{stem}.key"))).expect("key");
    let builder = ServerConfig::builder_with_provider(troupe::tls::provider().clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if ask {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(pki.path("client-ca.pem")).expect("client CA") {
            roots.add(cert.expect("cert")).expect("root");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            troupe::tls::provider().clone(),
        )
        .build()
        .expect("verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).expect("certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// The counters a connection updates.
#[derive(Clone)]
struct Counters {
    hits: Arc<AtomicU64>,
    sick: Arc<AtomicBool>,
    idle_closed: Arc<AtomicU64>,
}

/// One connection's activity, for `keep_alive`: requests being answered,
/// and when the last answer was made.
#[derive(Default)]
struct Activity {
    busy: std::sync::atomic::AtomicU32,
    last: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Serves one connection, HTTP/2 when `h2`; every answer names `sni`.
async fn serve<I>(io: I, h2: bool, sni: Option<String>, n: String, c: Counters, b: Behaviour)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max_age = b.max_age;
    let keep_alive = b.keep_alive;
    let max_streams = b.max_streams;
    let activity = Arc::new(Activity::default());
    let (h, ill, seen) = (c.hits.clone(), c.sick.clone(), activity.clone());
    let svc = hyper::service::service_fn(move |req| {
        let (n, h, b, sni) = (n.clone(), h.clone(), b.clone(), sni.clone());
        let sick = ill.load(Ordering::Relaxed);
        let seen = seen.clone();
        seen.busy.fetch_add(1, Ordering::Relaxed);
        async move {
            let resp = answer(req, &n, &h, &b, sick).await;
            *seen.last.lock().expect("activity") = Some(tokio::time::Instant::now());
            seen.busy.fetch_sub(1, Ordering::Relaxed);
            let mut resp = resp?;
            if let Some(v) = sni.and_then(|s| http::HeaderValue::try_from(s).ok()) {
                resp.headers_mut().insert("x-sni", v);
            }
            Ok::<_, std::io::Error>(resp)
        }
    });
    let io = TokioIo::new(io);
    if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        if let Some(m) = max_streams {
            builder.max_concurrent_streams(m);
        }
        let _ = builder.serve_connection(io, svc).await;
        return;
    }
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    if let Some(idle) = keep_alive {
        let opened = tokio::time::Instant::now();
        let last = || activity.last.lock().expect("activity").unwrap_or(opened);
        loop {
            let since = last();
            // While a request is answered, the clock starts again.
            let until = match activity.busy.load(Ordering::Relaxed) {
                0 => since + idle,
                _ => tokio::time::Instant::now() + idle,
            };
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep_until(until) => {}
            }
            if activity.busy.load(Ordering::Relaxed) == 0
                && last() == since
                && since.elapsed() >= idle
            {
                // Idle for the whole timeout: close, as a server's
                // keep-alive timeout does, whatever the client is sending.
                c.idle_closed.fetch_add(1, Ordering::Relaxed);
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
        }
    }
    match max_age {
        None => {
            let _ = conn.await;
        }
        Some(age) => {
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = tokio::time::sleep(age) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
    }
}

/// A running backend; dropping it (or [`TestBackend::kill`]) closes its
/// listener and every connection at once.
pub struct TestBackend {
    pub addr: SocketAddr,
    /// Requests it received (read whole, answered or not).
    pub hits: Arc<AtomicU64>,
    /// Connections it accepted.
    pub conns: Arc<AtomicU64>,
    /// Connections open now.
    pub open: Arc<AtomicI64>,
    /// While set, `/healthz` answers 503.
    pub sick: Arc<AtomicBool>,
    /// Connections it closed for `keep_alive`.
    pub idle_closed: Arc<AtomicU64>,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

type Out = BoxBody<Bytes, Infallible>;

impl TestBackend {
    /// Starts one on a free loopback port.
    pub async fn start(name: &str, behaviour: Behaviour) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().expect("addr"), behaviour).await
    }

    /// Starts one on `addr` (again, after a kill).
    pub async fn start_on(name: &str, addr: SocketAddr, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicI64::new(0));
        let sick = Arc::new(AtomicBool::new(false));
        let idle_closed = Arc::new(AtomicU64::new(0));
        let (n, accepted, opened) = (name.to_owned(), conns.clone(), open.clone());
        let counters = Counters {
            hits: hits.clone(),
            sick: sick.clone(),
            idle_closed: idle_closed.clone(),
        };
        let tasks = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let (n, c, b) = (n.clone(), counters.clone(), behaviour.clone());
                let opened = opened.clone();
                opened.fetch_add(1, Ordering::Relaxed);
                conns.spawn(async move {
                    match b.tls.clone() {
                        None => {
                            let h2 = b.h2;
                            serve(tcp, h2, None, n, c, b).await;
                        }
                        Some(config) => {
                            if let Ok(tls) = TlsAcceptor::from(config).accept(tcp).await {
                                let session = tls.get_ref().1;
                                let sni = session.server_name().map(str::to_owned);
                                let h2 = match session.alpn_protocol() {
                                    Some(p) => p == b"h2",
                                    None => b.h2,
                                };
                                serve(tls, h2, sni, n, c, b).await;
                            }
                        }
                    }
                    opened.fetch_sub(1, Ordering::Relaxed);
                });
                // Reap finished connections as we go.
                while conns.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            hits,
            conns,
            open,
            sick,
            idle_closed,
            tasks: Some(tasks),
        }
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Stops at once: the listener and every open connection close.
    pub fn kill(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn full(b: impl Into<Bytes>) -> Out {
    Full::new(b.into()).boxed()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok())?
    })
}

async fn answer(
    req: Request<Incoming>,
    name: &str,
    hits: &AtomicU64,
    b: &Behaviour,
    sick: bool,
) -> Result<Response<Out>, std::io::Error> {
    // The last segment picks the behaviour, so any prefix routes to it.
    let path = format!("/{}", req.uri().path().rsplit('/').next().unwrap_or(""));
    let head = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
    let headers: String = req
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("?")))
        .collect();
    let n = query(&req, "n");
    let ms = query(&req, "ms");
    // Read the body as it comes, keeping only its length (and, for
    // `/sink`, whether it was the pattern).
    let mut body = req.into_body();
    let mut len = 0u64;
    let mut check = (path == "/sink").then(pattern::Check::default);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                let data = f.data_ref().map_or(&[][..], |d| &d[..]);
                len += data.len() as u64;
                if let Some(c) = &mut check {
                    c.feed(data);
                }
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
    hits.fetch_add(1, Ordering::Relaxed);
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let resp = Response::builder().header("x-backend", name);
    let resp = match path.as_str() {
        "/headers" => resp.body(full(head + &headers)),
        "/upload" => resp.body(full(len.to_string())),
        "/sink" => resp.body(full(check.map(|c| c.verdict()).unwrap_or_default())),
        "/pattern" => {
            let n = n.unwrap_or(0);
            resp.header("content-length", n)
                .body(BodyExt::boxed(StreamBody::new(pattern::frames(n))))
        }
        "/big" => {
            let n = n.unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let frames =
                futures_util::stream::iter((0..n.div_ceil(chunk.len() as u64)).map(move |i| {
                    let left = (n - i * chunk.len() as u64).min(chunk.len() as u64);
                    Ok::<_, Infallible>(Frame::data(chunk.slice(..left as usize)))
                }));
            resp.header("content-length", n)
                .body(BodyExt::boxed(StreamBody::new(frames)))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(1000))).await;
            resp.body(full("slow"))
        }
        // The backend's own error answer (`?n=503`).
        "/status" => resp
            .status(n.and_then(|n| u16::try_from(n).ok()).unwrap_or(500))
            .body(full("the backend's own page")),
        "/healthz" if sick => resp.status(503).body(full("sick")),
        "/healthz" => resp.body(full("ok")),
        "/die" => return Err(std::io::Error::other("dying on purpose")),
        "/trailers" => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-checksum", http::HeaderValue::from_static("42"));
            let frames = futures_util::stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"abc"))),
                Ok(Frame::trailers(trailers)),
            ]);
            // hyper sends only the trailers the head declares.
            resp.header("trailer", "x-checksum")
                .body(BodyExt::boxed(StreamBody::new(frames)))
        }
        "/hop" => resp
            .header("connection", "x-internal")
            .header("x-internal", "secret")
            .header("keep-alive", "timeout=5")
            .body(full("hop")),
        _ => resp.body(full(format!("hello from {name}"))),
    };
    Ok(resp.expect("response"))
}
