//! The invariants the fuzz targets (`fuzz/`) and the property tests
//! (`tests/it/props.rs`) check, in one place, over the real code.
//!
//! Compiled only with the `fuzzing` feature: it is the one public seam
//! they need into crate-private parts (the connection loop, the static
//! resolver, the header checks). Each function takes outside input,
//! runs the code a request would run, and panics when an invariant
//! breaks; a panic in the code under test is a finding too. See
//! `docs/fuzzing.md` for the targets and how to run them.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{ConfigError, load_str},
    conn::{self, ConnConfig},
    error::HttpError,
    generation::Generation,
    handler::{Handler, HandlerFuture},
    handlers::static_files::{CacheLimits, StaticFiles},
    modules::process::wire::{Hook, ToChild},
    observe::metrics::HttpMetrics,
    pipeline::{
        Pipeline,
        path::normalize,
        request::Request,
        routes::{Match, Route, RouteTable},
    },
    proxy::headers::{Forwarding, Hop, add_forwarding, strip_hop_by_hop},
    tls::acme::Challenges,
};

/// The config the connection target serves: every core handler, a
/// regex route, a proxy to a closed port, and small limits so that a
/// slow input ends quickly.
pub const CONNECTION_CONFIG: &str = r#"Config(
    listen: ["127.0.0.1:0"],
    limits: (
        header_timeout: "2s",
        body_timeout: "2s",
        keepalive_timeout: "2s",
        max_body_bytes: 65536,
        max_header_bytes: 8192,
        max_headers: 32,
    ),
    log: (level: "off", access: Off),
    upstreams: {
        "gone": (backends: [(addr: "127.0.0.1:9")], connect_timeout: "1s", retry: (tries: 1)),
    },
    servers: [(
        names: ["localhost", "example.com"],
        default: true,
        routes: [
            (path: "/hello", handler: Return(status: 200, headers: {"content-type": "text/plain"}, body: "Hello\n")),
            (path: "/hello/{name}", methods: ["GET", "POST"], handler: Return(body: "Hello, $param_name! $arg_x\n")),
            (path: "/docs", handler: Redirect(to: "/index.html", status: 301)),
            (regex: "^/re/([a-z]+)/([0-9]+)$", handler: Return(body: "$1 $2\n")),
            (path: "/app/{*rest}", handler: Proxy(upstream: "gone")),
            (
                path: "/static/{*path}",
                handler: Static(root: "www", index: ["index.html"]),
                middleware: [SetHeaders({"x-content-type-options": "nosniff"})],
            ),
        ],
    )],
)"#;

/// How long one connection may take before it counts as a hang: far
/// beyond the config's 2 s timeouts.
const HANG: Duration = Duration::from_secs(10);

/// A directory tree for the targets that need files: a static root
/// (`www/`, with an index, a subdirectory, a link inside and a link out)
/// and a file outside it that must never be served.
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
    root: PathBuf,
    files: StaticFiles,
}

impl Fixture {
    /// Builds the tree in a fresh temporary directory (removed on drop).
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let www = dir.path().join("www");
        std::fs::create_dir_all(www.join("sub"))?;
        std::fs::create_dir_all(dir.path().join("outside"))?;
        std::fs::write(www.join("index.html"), "<h1>index</h1>\n")?;
        std::fs::write(www.join("a.txt"), "0123456789abcdefghij")?;
        std::fs::write(www.join("sub/index.html"), "sub\n")?;
        std::fs::write(www.join("sub/b.txt"), "b")?;
        std::fs::write(dir.path().join("outside/secret.txt"), "secret")?;
        std::os::unix::fs::symlink(dir.path().join("outside/secret.txt"), www.join("out"))?;
        std::os::unix::fs::symlink(dir.path().join("outside"), www.join("outdir"))?;
        std::os::unix::fs::symlink(www.join("a.txt"), www.join("in"))?;
        let root = std::fs::canonicalize(&www)?;
        let limits = CacheLimits {
            max_file_bytes: 1 << 16,
            total_bytes: 1 << 20,
            max_entries: 64,
        };
        let files = StaticFiles::new(root.clone(), vec!["index.html".into()], false, limits)?;
        Ok(Self { dir, root, files })
    }

    /// Where the fixture lives; configs are read as if from a file here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Config text → the same parse, checks and compilation as `troupe -t`
    /// (all but loading the modules it names: that runs their code).
    /// Invariants: no panic, and a refusal names the file, a line and a
    /// column.
    pub fn config(&self, text: &str) {
        let path = self.dir.path().join("fuzz.ron");
        match load_str(text, &path) {
            Ok(_) => {}
            Err(ConfigError::At {
                file, line, col, ..
            }) => {
                assert_eq!(file, path.display().to_string(), "the error names the file");
                assert!(line >= 1 && col >= 1, "1-based position, got {line}:{col}");
                assert!(
                    line <= text.lines().count() + 1,
                    "line {line} is past the text's end"
                );
            }
            Err(e @ ConfigError::Read { .. }) => panic!("load_str read a file: {e}"),
        }
    }

    /// A raw request path → normalization → the static resolver.
    /// Invariants: a path that is accepted has no dot segment and joins
    /// under the root with plain names only; a file that is resolved lies
    /// under the root once every link is followed.
    pub fn static_path(&self, raw: &str) {
        let Ok(norm) = normalize(raw) else {
            return;
        };
        assert!(norm.starts_with('/'), "{raw:?} → {norm:?}");
        assert!(
            !norm.contains('\0') && !norm.contains('\\'),
            "{raw:?} → {norm:?}"
        );
        assert!(
            norm.split('/').all(|s| s != ".." && s != "."),
            "{raw:?} → {norm:?} keeps a dot segment"
        );
        // What the handler joins: the path without its leading slashes.
        let rel = norm.trim_start_matches('/');
        let joined = self.root.join(rel);
        let tail = joined
            .strip_prefix(&self.root)
            .unwrap_or_else(|_| panic!("{raw:?} joins outside the root: {}", joined.display()));
        assert!(
            tail.components().all(|c| matches!(c, Component::Normal(_))),
            "{raw:?} → {} climbs",
            tail.display()
        );
        if let Some(file) = self.files.resolve_file(rel) {
            let real = std::fs::canonicalize(&file).expect("a resolved file exists");
            assert!(
                real.starts_with(&self.root),
                "{raw:?} resolved to {} outside the root",
                real.display()
            );
        }
    }
}

/// One route for [`routes`]: a matchit pattern or a regex, and the
/// methods it answers (`None`: any).
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// The pattern (`/a/{id}/{*rest}`) or the regex.
    pub pattern: String,
    /// Whether `pattern` is a regex.
    pub regex: bool,
    /// Method names; invalid ones are dropped.
    pub methods: Option<Vec<String>>,
}

/// A handler that is never called: routing is what is under test.
struct Unused;

impl Handler for Unused {
    fn call(&self, _req: Request) -> HandlerFuture {
        HandlerFuture::ready(Err(HttpError::NotFound))
    }
}

/// Route compilation and lookup, as a config's routes are compiled and
/// a normalized request path is routed. Invariants: no panic; a match
/// allows the method; a route without parameters matches only its own
/// path, a regex route only a path it matches; every parameter is a
/// piece of the path; a 405 lists methods, not the one asked.
pub fn routes(specs: &[RouteSpec], lookups: &[(String, String)]) {
    let handler: Arc<dyn Handler> = Arc::new(Unused);
    let route = |pattern: &str, methods: &Option<Vec<String>>| Route {
        pattern: pattern.into(),
        methods: methods.as_ref().map(|ms| {
            ms.iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect()
        }),
        limits: Box::default(),
        middleware: Arc::new([]),
        handler: handler.clone(),
        describe: "fuzz".into(),
        module: None,
        metrics: Default::default(),
    };
    let mut paths = Vec::new();
    let mut regexes = Vec::new();
    for spec in specs {
        if spec.regex {
            // The config's own limits: a huge pattern is refused there.
            let Ok(re) = regex::RegexBuilder::new(&spec.pattern)
                .size_limit(1 << 20)
                .build()
            else {
                continue;
            };
            regexes.push((re, route(&spec.pattern, &spec.methods)));
        } else {
            paths.push(route(&spec.pattern, &spec.methods));
        }
    }
    let path_count = paths.len();
    let Ok(table) = RouteTable::build(paths, regexes) else {
        return;
    };
    let regex_of = |pattern: &str| -> Option<Regex> {
        specs
            .iter()
            .find(|s| s.regex && s.pattern == pattern)
            .and_then(|s| Regex::new(&s.pattern).ok())
    };
    for (method, raw) in lookups {
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            continue;
        };
        let Ok(path) = normalize(raw) else {
            continue;
        };
        match table.lookup(&method, &path) {
            Match::Found { route, params } => {
                if let Some(ms) = &route.methods {
                    assert!(ms.contains(&method), "{method} routed to {ms:?}");
                }
                // Path routes come first in the table, then regex routes.
                let is_regex = table
                    .routes()
                    .iter()
                    .position(|r| std::ptr::eq(r, route))
                    .is_some_and(|i| i >= path_count);
                if is_regex {
                    if let Some(re) = regex_of(&route.pattern) {
                        assert!(re.is_match(&path), "{path:?} routed to /{}/", route.pattern);
                    }
                } else if !route.pattern.contains('{') {
                    assert_eq!(&*route.pattern, &*path, "a static route took another path");
                }
                for (name, value) in &params {
                    assert!(
                        path.contains(value.as_str()),
                        "{name}={value:?} is not in {path:?}"
                    );
                }
            }
            Match::WrongMethod { allow } => {
                let allow = allow.to_str().expect("method names are text");
                assert!(!allow.is_empty(), "an empty Allow");
                assert!(
                    !allow.split(", ").any(|m| m == method.as_str()),
                    "405 for {method}, which Allow lists: {allow}"
                );
            }
            Match::NotFound => {}
        }
    }
}

/// The smuggling sniff against a real parser: a head httparse reads in
/// one piece, that carries both `Content-Length` and `Transfer-Encoding`,
/// must be marked (the layer then refuses it with 400).
pub fn smuggling(bytes: &[u8]) {
    let marked = crate::pipeline::layers::smuggling::sniff(bytes);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if let Ok(httparse::Status::Complete(_)) = req.parse(bytes) {
        let has = |name: &str| {
            req.headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name))
        };
        if has("content-length") && has("transfer-encoding") {
            assert!(marked, "a head with both was not marked: {bytes:?}");
        }
    }
}

/// The `Host` check. Invariants: no panic; an HTTP/1.1 request without
/// `Host`, or with two, is refused; an accepted value holds nothing that
/// ends a host (`/ ? # @`, a backslash, space or a control).
pub fn host(values: &[&[u8]], version: Version) {
    let mut builder = http::Request::builder().version(version);
    let mut kept = 0;
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            builder = builder.header(header::HOST, v);
            kept += 1;
        }
    }
    let Ok(req) = builder.body(()) else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let verdict = crate::pipeline::layers::host::check(&parts);
    if kept > 1 || (kept == 0 && version == Version::HTTP_11) {
        assert!(
            verdict.is_err(),
            "{kept} Host fields accepted on {version:?}"
        );
    }
    if verdict.is_ok()
        && let Some(h) = parts.headers.get(header::HOST)
    {
        assert!(
            !h.as_bytes()
                .iter()
                .any(|&b| b"/?#@\\ \t".contains(&b) || b.is_ascii_control() || b >= 0x80),
            "accepted Host {h:?}"
        );
    }
}

/// Hop-by-hop stripping and the forwarding headers, as a proxied request
/// gets them. Invariants: no hop-by-hop header survives (`TE` only as
/// `trailers`); `Host` is kept; from an untrusted peer the forwarding
/// headers say only what this hop saw; from a trusted one the peer is
/// appended.
pub fn forwarding(fields: &[(&[u8], &[u8])], peer: IpAddr, trusted: bool, tls: bool) {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let host = headers.get(header::HOST).cloned();
    strip_hop_by_hop(&mut headers);
    add_forwarding(
        &mut headers,
        Hop {
            peer,
            trusted,
            tls,
            host: host.as_ref(),
        },
        Forwarding::ALL,
    );
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(!headers.contains_key(name), "{name} survived");
    }
    let te: Vec<_> = headers.get_all(header::TE).iter().collect();
    assert!(te.is_empty() || te == [HeaderValue::from_static("trailers")]);
    assert_eq!(headers.get(header::HOST), host.as_ref(), "Host changed");
    let ip = peer.to_string();
    let xff: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff.len(), 1, "one X-Forwarded-For");
    let xff = xff[0].to_str().expect("ASCII");
    let proto = if tls { "https" } else { "http" };
    let fwd: Vec<_> = headers.get_all(header::FORWARDED).iter().collect();
    assert_eq!(fwd.len(), 1, "one Forwarded");
    let fwd = fwd[0].to_str().expect("ASCII");
    if trusted {
        assert!(xff.ends_with(&ip), "{xff} does not end with {ip}");
    } else {
        assert_eq!(xff, ip, "an untrusted peer's X-Forwarded-For");
        assert!(fwd.starts_with("for="), "{fwd}");
        // A trusted proxy's own value is passed on as it came; ours is
        // always well quoted.
        assert_eq!(fwd.matches('"').count() % 2, 0, "unbalanced quotes: {fwd}");
        assert_eq!(
            headers.get("x-forwarded-proto").map(|v| v.as_bytes()),
            Some(proto.as_bytes())
        );
        assert_eq!(headers.get("x-forwarded-host"), host.as_ref());
    }
}

/// The static handler's `Range` rule. Invariants: no panic; a range it
/// serves lies inside the file; anything it refuses is a 416.
pub fn range(raw: &str, len: u64) {
    match StaticFiles::byte_range(raw, len) {
        Ok(None) => {}
        Ok(Some((start, end))) => assert!(start <= end && end < len, "{raw:?} → {start}-{end}"),
        Err(e) => assert_eq!(e.status().as_u16(), 416, "{raw:?} → {e}"),
    }
}

/// The compression middleware's `Accept-Encoding` negotiation, over the
/// codings `offered` picks (bit 0 zstd, 1 br, 2 gzip, in an order `order`
/// picks). Invariants, which hold without a second parser to agree with:
/// no panic; the answer is one of the codings offered; it is the answer
/// for that coding alone (acceptable by itself, not beaten by identity);
/// it wins every pair it is in, kept in the server's order (the highest
/// weight, or the server's first choice among equals, beats each other
/// coding alone); no
/// answer means no coding offered is acceptable alone; and the answer
/// does not depend on letter case (tokens and `q` are case-insensitive).
pub fn accept_encoding(value: &[u8], offered: u8, order: u8) {
    use crate::middleware::compress::{Encoding, negotiate::choose};

    let mut all = [Encoding::Zstd, Encoding::Brotli, Encoding::Gzip];
    all.rotate_left(usize::from(order % 3));
    if order & 4 != 0 {
        all.swap(0, 1);
    }
    let offered: Vec<Encoding> = all
        .into_iter()
        .filter(|e| offered & (1 << (*e as u8)) != 0)
        .collect();
    let Ok(header) = HeaderValue::from_bytes(value) else {
        return;
    };
    let pick = |codings: &[Encoding]| choose(Some(&header), codings);
    let chosen = pick(&offered);
    match chosen {
        Some(e) => {
            assert!(offered.contains(&e), "{header:?}: {e:?} was not offered");
            assert_eq!(pick(&[e]), Some(e), "{header:?}: {e:?} alone");
            for &other in offered.iter().filter(|&&o| o != e) {
                let first =
                    offered.iter().position(|&o| o == e) < offered.iter().position(|&o| o == other);
                let pair = if first { [e, other] } else { [other, e] };
                assert_eq!(pick(&pair), Some(e), "{header:?}: {pair:?}");
            }
        }
        None => {
            for &e in &offered {
                assert_eq!(
                    pick(&[e]),
                    None,
                    "{header:?}: {e:?} alone but not among {offered:?}"
                );
            }
        }
    }
    let upper = HeaderValue::from_bytes(&value.to_ascii_uppercase()).ok();
    assert_eq!(
        choose(upper.as_ref(), &offered),
        chosen,
        "{header:?} in capitals"
    );
}

/// The real pipeline over an in-memory connection, with
/// [`CONNECTION_CONFIG`]: everything `troupe` runs for a plain
/// connection but the accept loop and the supervision tree (so modules
/// are not loaded). The client closes its side once it has sent its
/// input, and is answered because served connections allow half-closes
/// (`ConnConfig::new`).
pub struct Server {
    runtime: tokio::runtime::Runtime,
    pipeline: Arc<Pipeline>,
    conn: Arc<ConnConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Compiles [`CONNECTION_CONFIG`] against `fixture`'s directory.
    pub fn new(fixture: &Fixture) -> Result<Self, String> {
        let loaded = load_str(CONNECTION_CONFIG, &fixture.dir().join("fuzz.ron"))
            .map_err(|e| e.to_string())?;
        let generation = Generation::new(loaded);
        let conn = Arc::new(ConnConfig::new(&generation.config.limits));
        let metrics = HttpMetrics::new(&prometheus::Registry::new()).map_err(|e| e.to_string())?;
        let pipeline = Arc::new(Pipeline::new(
            Arc::new(ArcSwap::from_pointee(generation)),
            None,
            metrics,
            Arc::new(Challenges::default()),
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            runtime,
            pipeline,
            conn,
        })
    }

    /// Sends `input` on a fresh connection, closes the sending side and
    /// returns every byte the server wrote until it closed. Panics if
    /// that takes longer than a hang bound, or if the connection's task
    /// panicked.
    pub fn exchange(&self, input: &[u8]) -> Vec<u8> {
        self.runtime.block_on(async {
            let (client, server) = tokio::io::duplex(1 << 16);
            let shutdown = troupe_actors::ConnShutdown {
                drain: CancellationToken::new(),
                cut: CancellationToken::new(),
            };
            let peer = SocketAddr::from(([192, 0, 2, 1], 40000));
            let task = tokio::spawn(conn::serve_io(
                self.pipeline.clone(),
                self.conn.clone(),
                server,
                peer,
                shutdown,
            ));
            let (mut rd, mut wr) = tokio::io::split(client);
            let write = async {
                // The server may close first: what it wrote is still read.
                let _ = wr.write_all(input).await;
                let _ = wr.shutdown().await;
            };
            let read = async {
                let mut out = Vec::new();
                let _ = rd.read_to_end(&mut out).await;
                out
            };
            let both = async { tokio::join!(write, read).1 };
            let out = tokio::time::timeout(HANG, both)
                .await
                .unwrap_or_else(|_| panic!("the connection hung on {input:?}"));
            if let Err(e) = tokio::time::timeout(HANG, task)
                .await
                .unwrap_or_else(|_| panic!("the connection task hung on {input:?}"))
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
            out
        })
    }

    /// [`Server::exchange`], then checks that what came back is a run of
    /// well-formed HTTP/1.x responses (nothing at all is allowed: a
    /// connection closed before a request). An h2c connection is only
    /// run, not parsed.
    pub fn connection(&self, input: &[u8]) {
        let out = self.exchange(input);
        if input.starts_with(b"PRI ") {
            return;
        }
        if let Err(why) = responses(&out, contains(input, b"HEAD")) {
            panic!(
                "bad output ({why}) for {:?}: {:?}",
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out)
            );
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Parses `out` as a run of HTTP/1.x responses; returns how many. A body
/// is framed by `Transfer-Encoding: chunked`, `Content-Length` (none
/// after a HEAD: `head` says one may have been sent, and then an empty
/// body is taken when the next response starts at once) or the close.
pub fn responses(mut out: &[u8], head: bool) -> Result<usize, String> {
    let mut n = 0;
    while !out.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut fields);
        let len = match resp.parse(out) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Err(format!("response {n}: a cut head")),
            Err(e) => return Err(format!("response {n}: {e}")),
        };
        let code = resp.code.unwrap_or(0);
        if !(100..=599).contains(&code) {
            return Err(format!("response {n}: status {code}"));
        }
        n += 1;
        let field = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let rest = &out[len..];
        if code == 101 {
            // Another protocol follows.
            return Ok(n);
        }
        if (100..200).contains(&code) || code == 204 || code == 304 {
            out = rest;
            continue;
        }
        if field("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            out = chunked(rest).map_err(|e| format!("response {n}: {e}"))?;
            continue;
        }
        if let Some(cl) = field("content-length") {
            let cl: usize = cl
                .trim()
                .parse()
                .map_err(|_| format!("response {n}: Content-Length {cl:?}"))?;
            if head && (rest.is_empty() || rest.starts_with(b"HTTP/1.")) {
                out = rest;
                continue;
            }
            if rest.len() < cl {
                return Err(format!("response {n}: {} body bytes of {cl}", rest.len()));
            }
            out = &rest[cl..];
            continue;
        }
        // Delimited by the close.
        return Ok(n);
    }
    Ok(n)
}

/// Skips a chunked body and its trailers; returns what follows.
fn chunked(mut b: &[u8]) -> Result<&[u8], String> {
    loop {
        let (start, size) = match httparse::parse_chunk_size(b) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) => return Err("a cut chunk size".into()),
            Err(_) => return Err("a bad chunk size".into()),
        };
        let size = usize::try_from(size).map_err(|_| "a huge chunk")?;
        b = &b[start..];
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let end = b
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .ok_or("cut trailers")?;
                let line = &b[..end];
                b = &b[end + 2..];
                if line.is_empty() {
                    return Ok(b);
                }
            }
        }
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return Err("a cut chunk".into());
        }
        b = &b[size + 2..];
    }
}

/// One request as a client may send it, for [`module_request`]: what
/// hyper would have parsed, before any check.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The method token.
    pub method: &'a [u8],
    /// The request target.
    pub target: &'a [u8],
    /// The version.
    pub version: Version,
    /// Header fields, in order.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// The body.
    pub body: &'a [u8],
    /// The client's address.
    pub peer: SocketAddr,
}

/// A request the pipeline would hand a module, or `None` where hyper or
/// the core refuses it first (an invalid method or target, a path
/// `normalize` refuses, a `Host` the host check refuses); with the header
/// fields hyper would have kept (name lower-cased, value as sent).
fn routed(input: &ClientRequest<'_>) -> Option<(http::request::Parts, Option<String>, Fields)> {
    let method = Method::from_bytes(input.method).ok()?;
    let uri = http::Uri::try_from(input.target).ok()?;
    let (mut head, ()) = http::Request::builder()
        .method(method)
        .uri(uri)
        .version(input.version)
        .body(())
        .ok()?
        .into_parts();
    let mut kept = Vec::new();
    for (name, value) in input.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            kept.push((n.as_str().as_bytes().to_vec(), value.to_vec()));
            head.headers.append(n, v);
        }
    }
    crate::pipeline::layers::host::check(&head).ok()?;
    let normalized = match normalize(head.uri.path()).ok()? {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(p) => Some(p),
    };
    kept.sort();
    Some((head, normalized, kept))
}

/// Header fields as (lower-case name, value) pairs, sorted.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn sorted(pairs: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Fields {
    let mut v: Fields = pairs.collect();
    v.sort();
    v
}

/// The pieces of the C ABI's view of a request, copied out.
#[allow(unsafe_code)]
fn abi_view(raw: &troupe_abi::Request) -> [Vec<u8>; 5] {
    // SAFETY: `raw` is valid for the callback that passes it, and so are
    // the strings and pairs it points at.
    unsafe {
        [
            raw.method.as_bytes().to_vec(),
            raw.path.as_bytes().to_vec(),
            raw.query.as_bytes().to_vec(),
            raw.body.as_bytes().to_vec(),
            raw.peer.as_bytes().to_vec(),
        ]
    }
}

/// The header fields of the C ABI's view, copied out and sorted.
#[allow(unsafe_code)]
fn abi_headers(raw: &troupe_abi::Request) -> Fields {
    let pairs = if raw.headers_len == 0 {
        &[][..]
    } else {
        // SAFETY: as above: `headers_len` pairs at `headers`.
        unsafe { std::slice::from_raw_parts(raw.headers, raw.headers_len) }
    };
    // SAFETY: as above.
    sorted(
        pairs
            .iter()
            .map(|p| unsafe { (p.name.as_bytes().to_vec(), p.value.as_bytes().to_vec()) }),
    )
}

/// A request converted into each module runtime's form: the C ABI's
/// `troupe_request` (in process), the process runtime's call frame (encoded,
/// decoded as the child does, and its `troupe_request` there), Lua's `req`
/// and a WebAssembly component's `incoming-request` (each read back as a
/// script or a guest reads it). Invariants: no panic, no refusal (a
/// refusal would answer the client 500); the method, path, query, body,
/// peer and every header field arrive as the bytes they were (obs-text
/// included), except the fields wasi:http withholds from a guest (its
/// connection fields and `Host`, which it reads as the authority).
/// Returns whether the request got that far (`false`: hyper or the core
/// would have refused it first).
pub fn module_request(input: &ClientRequest<'_>) -> bool {
    let Some((head, normalized, kept)) = routed(input) else {
        return false;
    };
    let build = || {
        Request::new(
            head.clone(),
            normalized.clone(),
            vec![("p".to_owned(), "v".to_owned())],
            bytes::Bytes::copy_from_slice(input.body),
            input.peer,
        )
    };
    let req = build();
    let path = req.path().as_bytes().to_vec();
    let query = head.uri.query().unwrap_or("").as_bytes().to_vec();
    let peer = input.peer.to_string().into_bytes();
    let want = [
        head.method.as_str().as_bytes().to_vec(),
        path.clone(),
        query,
        input.body.to_vec(),
        peer.clone(),
    ];

    // Native, in the server's process.
    crate::modules::inprocess::with_raw(&req, |raw| {
        assert_eq!(abi_view(raw), want, "the C ABI view");
        assert_eq!(abi_headers(raw), kept, "the C ABI's header fields");
        assert_eq!(raw.params_len, 1);
    });

    // Native, in a child process: the frame, and the child's view.
    let mut buf = [0u8; 64];
    let peer_text = crate::modules::native::peer_text(input.peer, &mut buf);
    let frame = crate::modules::process::call_frame(7, Hook::RequestFilter, &req, peer_text);
    let Ok(ToChild::Call {
        id: 7,
        hook: Hook::RequestFilter,
        req: wire,
    }) = postcard::from_bytes::<ToChild>(&frame)
    else {
        panic!("the call frame does not decode as the call it is");
    };
    assert_eq!(
        sorted(
            wire.headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
        ),
        kept,
        "the wire's header fields"
    );
    crate::modules::process::child::with_wire_request(&wire, |raw| {
        assert_eq!(abi_view(raw), want, "the child's C ABI view");
        assert_eq!(abi_headers(raw), kept, "the child's header fields");
    });

    #[cfg(feature = "lua")]
    {
        let names: Vec<&str> = req.headers().keys().map(HeaderName::as_str).collect();
        let firsts: Vec<Option<Vec<u8>>> = req
            .headers()
            .keys()
            .map(|n| req.headers().get(n).map(|v| v.as_bytes().to_vec()))
            .collect();
        let seen = crate::modules::lua::fuzz::seen(build(), &names)
            .unwrap_or_else(|e| panic!("Lua's req: {e}"));
        assert_eq!(seen.method, want[0], "Lua's req.method");
        assert_eq!(seen.path, path, "Lua's req.path");
        assert_eq!(seen.body, input.body, "Lua's req.body");
        assert_eq!(seen.peer, peer, "Lua's req.peer");
        assert_eq!(seen.header, firsts, "Lua's req:header");
        assert_eq!(seen.table, firsts, "Lua's req.headers");
    }

    #[cfg(feature = "wasm")]
    {
        use crate::modules::wasm::fuzz;
        let seen = fuzz::seen(head.clone(), bytes::Bytes::copy_from_slice(input.body))
            .unwrap_or_else(|e| panic!("the component's request: {e}"));
        assert_eq!(seen.method.as_bytes(), want[0], "wasi:http method");
        assert_eq!(
            seen.path_with_query.as_deref(),
            head.uri.path_and_query().map(|p| p.as_str()),
            "wasi:http path-with-query"
        );
        let authority = match head.uri.authority() {
            Some(a) => a.as_str().to_owned(),
            None => head
                .headers
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                .unwrap_or_default(),
        };
        assert_eq!(seen.authority, Some(authority), "wasi:http authority");
        let shown: Fields = kept
            .iter()
            .filter(|(n, _)| HeaderName::from_bytes(n).is_ok_and(|n| !fuzz::dropped(&n)))
            .cloned()
            .collect();
        assert_eq!(
            sorted(seen.headers.into_iter().map(|(n, v)| (n.into_bytes(), v))),
            shown,
            "wasi:http header fields"
        );
    }
    true
}
