//! The admin web page (P8.7): three files embedded in the binary (written
//! here, no framework), served by the admin listener at `/`. They hold no
//! data, so they are served without the token; the page asks for the token
//! once and sends it with each API call it makes.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

/// The page's files: path → (content type, text).
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "/ui/app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "/ui/style.css",
        "text/css; charset=utf-8",
        include_str!("ui/style.css"),
    ),
];

/// The file at `path`, if it is one of the page's.
pub(super) fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    let (_, content_type, text) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A new binary may ship a new page: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Only our own script and style run, and no other site may frame it.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}
