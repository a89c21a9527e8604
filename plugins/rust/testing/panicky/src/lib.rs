//! TEST-ONLY: panics when the query has `panic=1`, else answers `ok`.
//! Also a request filter that refuses requests without `x-token` (and
//! makes the token the request's rate-limit key), and a response filter
//! that tags answers, to exercise the middleware hooks.

use troupe_module::{Error, Filter, Hooks, Host, Module, Request, Response, export_module};

struct Panicky;

impl Module for Panicky {
    const HOOKS: Hooks = Hooks {
        handle: true,
        request_filter: true,
        response_filter: true,
        log: false,
        websocket: false,
    };

    fn init(_host: Host, _config: &str) -> Result<Self, Error> {
        Ok(Self)
    }

    fn handle(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Result<(), Error> {
        if req.query_param("panic").as_deref() == Some("1") {
            panic!("asked to panic");
        }
        resp.body("ok\n");
        Ok(())
    }

    fn request_filter(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Result<Filter, Error> {
        if req.query_param("panic").as_deref() == Some("filter") {
            panic!("asked to panic in the filter");
        }
        if let Some(token) = req.header("x-token") {
            if !token.is_empty() {
                resp.set_rate_key(token);
            }
            return Ok(Filter::Continue);
        }
        resp.set_status(401).body("token required\n");
        Ok(Filter::Respond)
    }

    fn response_filter(&self, resp: &mut Response<'_>) -> Result<(), Error> {
        resp.set_header("x-filtered-by", "panicky");
        Ok(())
    }
}

export_module!(Panicky);
