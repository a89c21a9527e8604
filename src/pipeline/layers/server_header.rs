//! `Server: troupe` on every response, errors and refusals included.

use http::request::Parts;
use http::{HeaderValue, header};

use super::{Connection, Exchange, Layer};
use crate::handler::Response;

const SERVER: HeaderValue = HeaderValue::from_static("troupe");

/// The layer.
#[derive(Debug)]
pub(crate) struct ServerHeader;

impl<C: Connection> Layer<C> for ServerHeader {
    type Trail = ();

    #[inline(always)]
    fn down(&self, _req: &Parts, _ex: &mut Exchange, _conn: &C) {}

    #[inline(always)]
    fn up(&self, (): (), resp: &mut Response, _ex: &Exchange, _conn: &C) {
        resp.headers_mut().insert(header::SERVER, SERVER);
    }
}

#[cfg(test)]
mod tests {
    use http::{Version, header};

    use super::ServerHeader;
    use crate::{
        handler::Response,
        pipeline::layers::{
            Layer,
            testing::{conn, exchange, head},
        },
    };

    #[test]
    fn every_answer_names_the_server() {
        let c = conn(100);
        let mut ex = exchange(Version::HTTP_11);
        ServerHeader.down(&head(Version::HTTP_11, &[]), &mut ex, &c);
        let mut resp = Response::default();
        ServerHeader.up((), &mut resp, &ex, &c);
        assert_eq!(resp.headers()[header::SERVER], "troupe");
    }
}
