//! Issue 15, compression: negotiation by `Accept-Encoding`, what is never
//! compressed, `Vary` and weak `ETag`s, chunks flushed as they come,
//! modules' and proxied responses, precompressed siblings and
//! `troupe precompress`, and config errors; on the real binary, with
//! hyper, curl and REDbot.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, GzipEncoder, ZstdDecoder};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::support::{
    client::{self, Resp},
    daemon::{Daemon, bin},
    redbot,
};

/// A page worth compressing: 8 KiB of text that compresses well.
fn page() -> String {
    (0..200)
        .map(|i| format!("<p>line {i} of a page worth compressing</p>\n"))
        .collect()
}

/// Writes `config` (with `{page}` standing for [`page`]) into a fresh
/// directory holding a `www/` docroot, and starts the binary on it.
fn start(config: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config.replace("{page}", &page())).unwrap();
    let d = Daemon::start(&path);
    (dir, d)
}

/// Decodes a body sent with `Content-Encoding: coding`.
async fn decode(coding: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(data),
        Some("gzip") => {
            GzipDecoder::new(data).read_to_end(&mut out).await.unwrap();
        }
        Some("br") => {
            BrotliDecoder::new(data)
                .read_to_end(&mut out)
                .await
                .unwrap();
        }
        Some("zstd") => {
            ZstdDecoder::new(data).read_to_end(&mut out).await.unwrap();
        }
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    client::get_with(&format!("http://{addr}{path}"), headers).await
}

fn vary_lists_accept_encoding(r: &Resp) -> bool {
    r.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    })
}

const ONE_SERVER: &str = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(
        compression: (),
        routes: [
            (path: "/page", handler: Return(headers: {"content-type": "text/html; charset=utf-8", "etag": "\"v1\""}, body: "{page}")),
            (path: "/gzip-first", handler: Return(headers: {"content-type": "text/html"}, body: "{page}"),
                compression: (algorithms: [Gzip, Brotli])),
            (path: "/off", handler: Return(headers: {"content-type": "text/html"}, body: "{page}"),
                compression: (enabled: false)),
            (path: "/small", handler: Return(headers: {"content-type": "text/plain"}, body: "tiny")),
            (path: "/png", handler: Return(headers: {"content-type": "image/png"}, body: "{page}")),
            (path: "/no-transform", handler: Return(headers: {"content-type": "text/html", "cache-control": "public, no-transform"}, body: "{page}")),
            (path: "/encoded", handler: Return(headers: {"content-type": "text/html", "content-encoding": "br"}, body: "{page}")),
            (path: "/empty", handler: Return(status: 204, headers: {"content-type": "text/html"})),
            (path: "/missing", handler: Return(status: 404, headers: {"content-type": "text/html"}, body: "{page}")),
            (path: "/files/{*path}", handler: Static(root: "www")),
        ],
    )],
)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coding_follows_q_values_then_the_servers_order() {
    let (_dir, d) = start(ONE_SERVER);
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/page", "gzip, deflate, br, zstd", Some("zstd")),
        ("/page", "gzip", Some("gzip")),
        ("/page", "x-gzip", Some("gzip")),
        ("/page", "br", Some("br")),
        ("/page", "gzip;q=1.0, br;q=0.5, zstd;q=0.2", Some("gzip")),
        ("/page", "*", Some("zstd")),
        ("/page", "*;q=0.5, zstd;q=0", Some("br")),
        ("/page", "zstd;q=0.1, identity", None),
        ("/page", "identity;q=0", None),
        ("/page", "gzip;q=0, br;q=0, zstd;q=0", None),
        ("/page", "deflate", None),
        ("/gzip-first", "zstd, br, gzip", Some("gzip")),
        ("/gzip-first", "*", Some("gzip")),
        ("/gzip-first", "zstd", None),
        ("/missing", "gzip", Some("gzip")),
    ];
    for &(path, accept, want) in cases {
        let r = get(d.addr, path, &[("accept-encoding", accept)]).await;
        let what = format!("{path} with Accept-Encoding: {accept}");
        assert_eq!(r.header("content-encoding"), want, "{what}");
        assert!(vary_lists_accept_encoding(&r), "{what}: no Vary");
        if want.is_some() {
            assert_eq!(r.header("content-length"), None, "{what}");
            assert!(
                r.body.len() < page().len() / 4,
                "{what}: {} bytes",
                r.body.len()
            );
        }
        let body = decode(want, &r.body).await;
        assert_eq!(String::from_utf8(body).unwrap(), page(), "{what}");
    }
    // The same over HTTP/2 (h2c).
    let h2 = client::send(
        &client::h2(),
        Request::get(format!("http://{}/page", d.addr))
            .header("accept-encoding", "br, gzip")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.header("content-encoding"), Some("br"));
    assert_eq!(decode(Some("br"), &h2.body).await, page().as_bytes());
    // Without Accept-Encoding: identity, and still Vary.
    let plain = get(d.addr, "/page", &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("etag"), Some("\"v1\""));
    assert!(vary_lists_accept_encoding(&plain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_must_not_be_compressed_is_not() {
    let (dir, d) = start(ONE_SERVER);
    std::fs::write(dir.path().join("www/page.html"), page()).unwrap();
    std::fs::write(dir.path().join("www/blob.bin"), page()).unwrap();
    let all = ("accept-encoding", "gzip, br, zstd");
    for (path, extra, why) in [
        (
            "/off",
            None,
            "a route that turns its server's compression off",
        ),
        ("/small", None, "under min_length"),
        ("/png", None, "a type not on the list"),
        ("/files/blob.bin", None, "application/octet-stream"),
        ("/no-transform", None, "Cache-Control: no-transform"),
        ("/page", Some(("range", "bytes=0-9")), "a Range request"),
        (
            "/page",
            Some(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")),
            "a WebSocket handshake",
        ),
        ("/files/page.html", Some(("range", "bytes=0-9")), "a 206"),
    ] {
        let mut headers = vec![all];
        headers.extend(extra);
        let r = get(d.addr, path, &headers).await;
        assert_eq!(r.header("content-encoding"), None, "{why}");
        assert!(r.status.is_success(), "{why}: {}", r.status);
    }
    let off = get(d.addr, "/off", &[all]).await;
    assert!(
        !vary_lists_accept_encoding(&off),
        "compression off: no Vary"
    );
    let partial = get(d.addr, "/files/page.html", &[all, ("range", "bytes=0-9")]).await;
    assert_eq!(partial.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(partial.text(), &page()[..10]);

    // Already encoded: passed on untouched.
    let encoded = get(d.addr, "/encoded", &[all]).await;
    assert_eq!(encoded.header("content-encoding"), Some("br"));
    assert_eq!(encoded.text(), page());
    // 204: nothing to encode.
    let empty = get(d.addr, "/empty", &[all]).await;
    assert_eq!(empty.status, StatusCode::NO_CONTENT);
    assert_eq!(empty.header("content-encoding"), None);

    // HEAD: the same head as identity, no body.
    let head = client::send(
        &client::h1(),
        Request::head(format!("http://{}/page", d.addr))
            .header("accept-encoding", "gzip")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-encoding"), None);
    assert!(vary_lists_accept_encoding(&head));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_file_has_a_weak_etag_and_answers_304_to_it() {
    let (dir, d) = start(ONE_SERVER);
    std::fs::write(dir.path().join("www/page.html"), page()).unwrap();
    let gz = [("accept-encoding", "gzip")];
    let plain = get(d.addr, "/files/page.html", &[]).await;
    let strong = plain.header("etag").unwrap().to_owned();
    assert!(strong.starts_with('"'), "{strong}");
    assert_eq!(plain.header("accept-ranges"), Some("bytes"));
    assert!(vary_lists_accept_encoding(&plain));

    let packed = get(d.addr, "/files/page.html", &gz).await;
    assert_eq!(packed.header("content-encoding"), Some("gzip"));
    assert_eq!(packed.header("etag"), Some(format!("W/{strong}").as_str()));
    assert_eq!(packed.header("accept-ranges"), None);
    assert_eq!(packed.header("content-length"), None);
    assert_eq!(packed.header("content-type"), Some("text/html"));
    assert_eq!(decode(Some("gzip"), &packed.body).await, page().as_bytes());

    // Revalidating the compressed copy: 304, with the tag it holds.
    let weak = format!("W/{strong}");
    let again = get(
        d.addr,
        "/files/page.html",
        &[gz[0], ("if-none-match", weak.as_str())],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.header("etag"), Some(weak.as_str()));
    assert!(vary_lists_accept_encoding(&again));
    // And the identity copy with its strong tag.
    let same = get(
        d.addr,
        "/files/page.html",
        &[("if-none-match", strong.as_str())],
    )
    .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert_eq!(same.header("etag"), Some(strong.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_decodes_each_coding() {
    let (_dir, d) = start(ONE_SERVER);
    for coding in ["gzip", "br", "zstd"] {
        let out = Command::new("curl")
            .args(["-s", "--compressed", "--max-time", "10", "-D", "-", "-H"])
            .arg(format!("Accept-Encoding: {coding}"))
            .arg(format!("http://{}/page", d.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-encoding: {coding}")),
            "{head}"
        );
        assert_eq!(body, page(), "curl's decoding of {coding}");
    }
}

/// An upstream on loopback that answers one request per connection with
/// `head` and then each chunk of `chunks` (chunked coding), waiting before
/// each chunk after the first for a go from `go`.
async fn trickling_upstream(
    head: &'static str,
    chunks: Vec<Bytes>,
    mut go: tokio::sync::mpsc::Receiver<()>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed before its request");
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(head.as_bytes()).await.unwrap();
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 && go.recv().await.is_none() {
                return;
            }
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            s.write_all(&framed).await.unwrap();
            s.flush().await.unwrap();
        }
        s.write_all(b"0\r\n\r\n").await.unwrap();
        let _ = s.shutdown().await;
    });
    addr
}

fn proxy_config(upstream: SocketAddr, extra_routes: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    upstreams: {{ "up": (backends: [(addr: "{upstream}")]) }},
    servers: [(
        compression: (min_length: 1),
        routes: [
            (path: "/{{*rest}}", handler: Proxy(upstream: "up")),
            {extra_routes}
        ],
    )],
)"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_compressed_and_flushed_chunk_by_chunk() {
    for coding in ["gzip", "br", "zstd"] {
        let (go, wait) = tokio::sync::mpsc::channel(1);
        let events: Vec<Bytes> = (0..3)
            .map(|i| Bytes::from(format!("data: event {i}\n\n")))
            .collect();
        let upstream = trickling_upstream(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
            events.clone(),
            wait,
        )
        .await;
        let (_dir, d) = start(&proxy_config(upstream, ""));
        let resp = client::h1()
            .request(
                Request::get(format!("http://{}/events", d.addr))
                    .header("accept-encoding", coding)
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-encoding"].to_str().unwrap(), coding);
        // Decode as the bytes come; each event must be readable before
        // the upstream is allowed to send the next one.
        let stream = resp.into_body().into_data_stream().map_err_io();
        let reader = tokio_util::io::StreamReader::new(stream);
        let mut decoded: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match coding {
            "gzip" => Box::new(GzipDecoder::new(reader)),
            "br" => Box::new(BrotliDecoder::new(reader)),
            _ => Box::new(ZstdDecoder::new(reader)),
        };
        let mut seen = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let want: Vec<u8> = events[..=i].concat();
            tokio::time::timeout(Duration::from_secs(5), async {
                let mut buf = [0u8; 1024];
                while seen.len() < want.len() {
                    let n = decoded.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the stream ended early");
                    seen.extend_from_slice(&buf[..n]);
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{coding}: event {i} held back ({event:?})"));
            assert_eq!(seen, want);
            let _ = go.send(()).await;
        }
        let mut rest = Vec::new();
        decoded.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}

/// `map_err` of a data stream to `io::Error`, for `StreamReader`.
trait MapErrIo {
    fn map_err_io(self) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Unpin;
}

impl<S> MapErrIo for S
where
    S: futures_util::Stream<Item = Result<Bytes, hyper::Error>> + Send + Unpin,
{
    fn map_err_io(self) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
        use futures_util::TryStreamExt;
        self.map_err(std::io::Error::other)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_own_gzip_passes_through_untouched() {
    let mut packed = Vec::new();
    GzipEncoder::new(page().as_bytes())
        .read_to_end(&mut packed)
        .await
        .unwrap();
    let (_go, wait) = tokio::sync::mpsc::channel(1);
    let upstream = trickling_upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-encoding: gzip\r\netag: \"up1\"\r\ntransfer-encoding: chunked\r\n\r\n",
        vec![Bytes::from(packed.clone())],
        wait,
    )
    .await;
    let (_dir, d) = start(&proxy_config(upstream, ""));
    let r = get(d.addr, "/page", &[("accept-encoding", "zstd, br, gzip")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some("\"up1\""));
    assert_eq!(
        r.body.as_ref(),
        packed.as_slice(),
        "the upstream's own bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_and_a_module_response_are_compressed() {
    let (_go, wait) = tokio::sync::mpsc::channel(1);
    let upstream = trickling_upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        vec![Bytes::from(format!("{{\"page\": {:?}}}", page()))],
        wait,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("page.lua");
    std::fs::write(
        &script,
        format!(
            "function handle(req)\n  return {{ status = 200, headers = {{ [\"content-type\"] = \"text/html\" }}, body = string.rep({:?}, 100) }}\nend\n",
            "<p>from Lua</p>\n"
        ),
    )
    .unwrap();
    let config = format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [(name: "page", source: Lua({script:?}))],
    upstreams: {{ "up": (backends: [(addr: "{upstream}")]) }},
    servers: [(
        compression: (),
        routes: [
            (path: "/lua", handler: Module("page")),
            (path: "/api/{{*rest}}", handler: Proxy(upstream: "up")),
        ],
    )],
)"#
    );
    let path = dir.path().join("config.ron");
    std::fs::write(&path, config).unwrap();
    let d = Daemon::start(&path);
    let lua = get(d.addr, "/lua", &[("accept-encoding", "br")]).await;
    assert_eq!(lua.header("content-encoding"), Some("br"));
    assert_eq!(
        decode(Some("br"), &lua.body).await,
        "<p>from Lua</p>\n".repeat(100).as_bytes()
    );
    let api = get(d.addr, "/api/x", &[("accept-encoding", "gzip")]).await;
    assert_eq!(api.header("content-encoding"), Some("gzip"));
    let json = String::from_utf8(decode(Some("gzip"), &api.body).await).unwrap();
    assert!(json.starts_with("{\"page\": \"<p>line 0"), "{json}");
}

/// Writes `data` encoded with `coding` to `path`.
async fn write_encoded(path: &Path, coding: &str, data: &[u8]) {
    use async_compression::tokio::bufread::{BrotliEncoder, ZstdEncoder};
    let mut out = Vec::new();
    match coding {
        "gzip" => GzipEncoder::new(data).read_to_end(&mut out).await,
        "br" => BrotliEncoder::new(data).read_to_end(&mut out).await,
        _ => ZstdEncoder::new(data).read_to_end(&mut out).await,
    }
    .unwrap();
    std::fs::write(path, out).unwrap();
}

fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_siblings_are_served_unless_stale() {
    let config = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(routes: [
        (path: "/{*path}", handler: Static(root: "www", precompressed: [Zstd, Brotli, Gzip])),
    ])],
)"#;
    let (dir, d) = start(config);
    let www = dir.path().join("www");
    let html = www.join("page.html");
    std::fs::write(&html, page()).unwrap();
    let now = SystemTime::now();
    set_mtime(&html, now - Duration::from_secs(60));
    write_encoded(&www.join("page.html.br"), "br", page().as_bytes()).await;
    write_encoded(&www.join("page.html.gz"), "gzip", page().as_bytes()).await;
    // A stale zstd copy of an older page: must never be served.
    write_encoded(&www.join("page.html.zst"), "zstd", b"OLD PAGE").await;
    set_mtime(&www.join("page.html.zst"), now - Duration::from_secs(3600));

    let plain = get(d.addr, "/page.html", &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert!(vary_lists_accept_encoding(&plain));
    let mut tags = vec![plain.header("etag").unwrap().to_owned()];
    for (accept, want) in [
        ("zstd, br, gzip", "br"),
        ("zstd, gzip", "gzip"),
        ("br", "br"),
    ] {
        let r = get(d.addr, "/page.html", &[("accept-encoding", accept)]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-encoding"), Some(want), "{accept}");
        assert_eq!(r.header("content-type"), Some("text/html"), "{accept}");
        assert!(vary_lists_accept_encoding(&r), "{accept}");
        assert_eq!(
            decode(Some(want), &r.body).await,
            page().as_bytes(),
            "{accept}"
        );
        let tag = r.header("etag").unwrap().to_owned();
        // Revalidation of the sibling's own tag.
        let again = get(
            d.addr,
            "/page.html",
            &[("accept-encoding", accept), ("if-none-match", tag.as_str())],
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{accept}");
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    assert_eq!(tags.len(), 3, "one tag per variant: {tags:?}");
    // Only the stale one is offered: the file itself.
    let stale = get(d.addr, "/page.html", &[("accept-encoding", "zstd")]).await;
    assert_eq!(stale.header("content-encoding"), None);
    assert_eq!(stale.text(), page());
    // A range is of the file itself.
    let part = get(
        d.addr,
        "/page.html",
        &[("accept-encoding", "br"), ("range", "bytes=0-2")],
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.text(), "<p>");
}

fn precompress(dir: &Path) -> String {
    let out = Command::new(bin())
        .arg("precompress")
        .arg(dir)
        .output()
        .expect("troupe precompress");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn siblings(path: &Path) -> Vec<PathBuf> {
    ["zst", "br", "gz"]
        .iter()
        .map(|ext| PathBuf::from(format!("{}.{ext}", path.display())))
        .filter(|p| p.exists())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troupe_precompress_writes_siblings_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("css")).unwrap();
    let html = dir.path().join("index.html");
    let css = dir.path().join("css/site.css");
    let png = dir.path().join("logo.png");
    let tiny = dir.path().join("tiny.txt");
    std::fs::write(&html, page()).unwrap();
    std::fs::write(&css, "body { margin: 0 }\n".repeat(100)).unwrap();
    std::fs::write(&png, page()).unwrap();
    std::fs::write(&tiny, "hi").unwrap();

    let first = precompress(dir.path());
    assert!(first.contains("6 written"), "{first}");
    for (file, ext) in [(&html, "zst"), (&html, "br"), (&html, "gz"), (&css, "br")] {
        let sib = PathBuf::from(format!("{}.{ext}", file.display()));
        let coding = match ext {
            "zst" => "zstd",
            "gz" => "gzip",
            other => other,
        };
        let data = std::fs::read(&sib).unwrap();
        assert_eq!(
            decode(Some(coding), &data).await,
            std::fs::read(file).unwrap()
        );
    }
    assert!(siblings(&png).is_empty(), "an image is not on the list");
    assert!(siblings(&tiny).is_empty(), "too small");

    let second = precompress(dir.path());
    assert!(second.contains("0 written, 6 up to date"), "{second}");

    // An edited file gets new siblings; the others are kept.
    std::fs::write(&html, page().repeat(2)).unwrap();
    let third = precompress(dir.path());
    assert!(third.contains("3 written, 3 up to date"), "{third}");
    let gz = std::fs::read(format!("{}.gz", html.display())).unwrap();
    assert_eq!(decode(Some("gzip"), &gz).await, page().repeat(2).as_bytes());
}

/// `troupe -t` on a config whose compression line is `setting`: the
/// error's `file:line:col`, and its message.
fn config_error(setting: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    let config = format!(
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    servers: [(\n        compression: {setting},\n        routes: [(path: \"/\", handler: Return(body: \"x\"))],\n    )],\n)\n"
    );
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin())
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    (
        path.display().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_the_file_line_and_column() {
    for (setting, line, words) in [
        ("(brotli_level: 11)", 4, "invalid brotli level 11"),
        ("(gzip_level: 0)", 4, "invalid gzip level 0"),
        ("(zstd_level: 22)", 4, "invalid zstd level 22"),
        ("(algorithms: [Deflate])", 4, "Deflate"),
        ("(types: [\"text\"])", 4, "invalid media type `text`"),
        ("(algorithms: [])", 4, "`algorithms` is empty"),
    ] {
        let (file, stderr) = config_error(setting);
        let at = format!("{file}:{line}:");
        assert!(
            stderr.contains(&at),
            "{setting}: expected `{at}` in:\n{stderr}"
        );
        assert!(
            stderr.contains(words),
            "{setting}: expected `{words}` in:\n{stderr}"
        );
    }
}

#[test]
fn redbot_finds_nothing_wrong_with_compressed_and_precompressed_files() {
    let config = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [(routes: [
        (path: "/fly/{*path}", handler: Static(root: "www"), compression: ()),
        (path: "/pre/{*path}", handler: Static(root: "www", precompressed: [Zstd, Brotli, Gzip])),
    ])],
)"#;
    let (dir, d) = start(config);
    let www = dir.path().join("www");
    std::fs::write(www.join("page.html"), page()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for coding in ["gzip", "br", "zstd"] {
        let ext = match coding {
            "gzip" => "gz",
            "zstd" => "zst",
            other => other,
        };
        rt.block_on(write_encoded(
            &www.join(format!("page.html.{ext}")),
            coding,
            page().as_bytes(),
        ));
    }
    for path in ["/fly/page.html", "/pre/page.html"] {
        let notes = redbot::notes(&format!("http://{}{path}", d.addr));
        assert!(
            notes
                .iter()
                .any(|(_, id, _)| id.starts_with("CONNEG_GZIP_GOOD")),
            "{path}: REDbot saw no gzip negotiation: {notes:#?}"
        );
        let bad = redbot::complaints(
            &notes,
            &[
                "conneg", "vary", "etag", "encoding", "gzip", "inm", "validat",
            ],
        );
        assert!(bad.is_empty(), "{path}: {bad:#?}\nall notes: {notes:#?}");
    }
}
