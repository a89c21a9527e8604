//! The HTTP rules for a resolved file: conditional requests (304), ranges
//! (206/416), HEAD, and the choice between a cached body and a stream.

use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode, header};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::{
    cache::CachedFile,
    resolve::FileMeta,
    stream::{BufPool, FileBody},
};
use crate::{
    error::HttpError,
    handler::{HandlerFuture, HandlerResult, Response},
    pipeline::{
        body::Body,
        conditional,
        range::{self, Part},
        request::Request,
    },
    sendfile::OpenFile,
};

/// What is escaped in a redirect's path, besides controls and non-ASCII.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A directory asked for without its slash: redirect, as nginx does.
///
/// The target is built from the normalized path, never the raw one: a raw
/// `//evil.com/..%2F..%2Fdir` would otherwise come back as a
/// protocol-relative `Location: //evil.com/…`, an open redirect.
pub(super) fn to_directory(req: &Request) -> HandlerResult {
    let mut location = utf8_percent_encode(req.path(), PATH).to_string();
    location.push('/');
    if let Some(q) = req.query() {
        location.push('?');
        location.push_str(q);
    }
    let loc = HeaderValue::try_from(location)
        .map_err(|_| HttpError::BadRequest("path is not a valid header"))?;
    let mut resp = http::Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    resp.headers_mut().insert(header::LOCATION, loc);
    Ok(resp)
}

/// Answers a request for a resolved file: at once, unless part of it must
/// be streamed from disk.
pub(super) fn file(req: Request, file: Arc<CachedFile>, pool: &Arc<BufPool>) -> HandlerFuture {
    match plan(&req, &file) {
        Err(err) => HandlerFuture::ready(Err(err)),
        Ok(Plan::Done(resp)) => HandlerFuture::ready(Ok(resp)),
        Ok(Plan::Stream { resp, start, count }) => {
            HandlerFuture::ready(stream(&req, &file, resp, start, count, pool))
        }
    }
}

/// Opens the file for a planned answer and puts it in as the body. If the
/// file changed since it was cached, the headers are made again from the
/// file opened, whose bytes are the ones sent.
fn stream(
    req: &Request,
    file: &CachedFile,
    resp: Response,
    start: u64,
    count: u64,
    pool: &Arc<BufPool>,
) -> Result<Response, HttpError> {
    let opened = file.open().map_err(super::resolve::io_status)?;
    let stamp = opened.stamp();
    if stamp != file.meta.stamp() {
        let fresh = CachedFile::new(FileMeta::new(file.meta.path.clone(), stamp), None, 0);
        match plan(req, &fresh)? {
            Plan::Done(resp) => return Ok(resp),
            Plan::Stream {
                resp: again,
                start: s,
                count: c,
            } => return Ok(with_body(again, opened, s, c, pool)),
        }
    }
    Ok(with_body(resp, opened, start, count, pool))
}

fn with_body(
    mut resp: Response,
    file: Arc<OpenFile>,
    start: u64,
    count: u64,
    pool: &Arc<BufPool>,
) -> Response {
    *resp.body_mut() = Body::file(FileBody::new(file, start, count, pool.clone()));
    resp
}

/// A response that is complete, or whose body still has to be opened.
enum Plan {
    Done(Response),
    Stream {
        resp: Response,
        start: u64,
        count: u64,
    },
}

fn plan(req: &Request, file: &CachedFile) -> Result<Plan, HttpError> {
    let headers = req.headers();
    if conditional::not_modified(headers, Some(&file.etag), Some(file.meta.modified)) {
        let mut resp = http::Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        let h = resp.headers_mut();
        h.insert(header::ETAG, file.etag.clone());
        h.insert(header::LAST_MODIFIED, file.last_modified.clone());
        return Ok(Plan::Done(resp));
    }
    let len = file.meta.len;
    let part = if req.method() == Method::GET {
        range::requested(headers, len, Some(&file.etag), Some(&file.last_modified))?
    } else {
        Part::Whole
    };
    let (status, start, count) = match part {
        Part::Whole => (StatusCode::OK, 0, len),
        Part::Range(s, e) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
    };
    let streamed = req.method() != Method::HEAD && file.body.is_none();
    let body = match &file.body {
        Some(bytes) if req.method() != Method::HEAD => {
            Body::full(bytes.slice(start as usize..(start + count) as usize))
        }
        _ => Body::Empty,
    };
    let mut resp: Response = http::Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.reserve(8);
    h.insert(header::CONTENT_TYPE, file.content_type.clone());
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ETAG, file.etag.clone());
    h.insert(header::LAST_MODIFIED, file.last_modified.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            range::content_range(start, start + count - 1, len),
        );
    }
    Ok(if streamed {
        Plan::Stream { resp, start, count }
    } else {
        Plan::Done(resp)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::conditional::etag_list_matches;

    #[test]
    fn weak_etags_match() {
        let tag = HeaderValue::from_static("\"5f-10\"");
        assert!(etag_list_matches("\"x\", W/\"5f-10\"", &tag));
        assert!(etag_list_matches("*", &tag));
        assert!(!etag_list_matches("\"5f-11\"", &tag));
    }
}
