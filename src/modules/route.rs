//! How routes reach modules: a [`Handler`], a [`Middleware`] and a
//! [`LogHook`], each holding the module's [`Slot`] and reading it once per
//! request.

use std::sync::Arc;

use super::{instance::Filtered, slot::Slot};
use crate::{
    HttpError,
    handler::{Handler, HandlerFuture, Middleware, Next},
    pipeline::{
        log_hook::{LogHook, LogLine},
        request::Request,
    },
};

/// `handler: Module("name")`.
#[derive(Debug)]
pub struct ModuleHandler {
    slot: Arc<Slot>,
}

impl ModuleHandler {
    /// A handler answering through the module published in `slot`.
    pub fn new(slot: Arc<Slot>) -> Self {
        Self { slot }
    }
}

impl Handler for ModuleHandler {
    fn call(&self, req: Request) -> HandlerFuture {
        let state = self.slot.load();
        match state.instance() {
            Ok(i) if i.hooks().handle => i.handle(req),
            Ok(_) => HandlerFuture::ready(Err(no_hook(&self.slot, "handle"))),
            Err(e) => HandlerFuture::ready(Err(e)),
        }
    }
}

fn no_hook(slot: &Slot, hook: &str) -> HttpError {
    HttpError::Internal(format!("module `{}` has no {hook} hook", slot.name()))
}

/// `middleware: [Module("name")]`: the module's request filter before the
/// rest of the chain, its response filter after. A module offering neither
/// is passed through.
#[derive(Debug)]
pub struct ModuleFilter {
    slot: Arc<Slot>,
}

impl ModuleFilter {
    /// A middleware running the filters of the module published in `slot`.
    pub fn new(slot: Arc<Slot>) -> Self {
        Self { slot }
    }
}

impl Middleware for ModuleFilter {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let state = self.slot.load();
        let instance = match state.instance() {
            Ok(i) => i.clone(),
            Err(e) => return HandlerFuture::ready(Err(e)),
        };
        let hooks = instance.hooks();
        if !hooks.request_filter && !hooks.response_filter {
            return next.run(req);
        }
        if let Some(m) = self.slot.metrics() {
            m.calls.inc();
        }
        // Only the module's own failures count as its errors, not the
        // handler's after it.
        let slot = self.slot.clone();
        let failed = move |e: HttpError| {
            if let Some(m) = slot.metrics()
                && e.status().is_server_error()
            {
                m.errors.inc();
            }
            e
        };
        HandlerFuture::new(async move {
            let req = if hooks.request_filter {
                match instance.request_filter(req).await.map_err(&failed)? {
                    Filtered::Continue(req) => req,
                    Filtered::Respond(resp) => return Ok(resp),
                }
            } else {
                req
            };
            let resp = next.run(req).await?;
            if hooks.response_filter {
                instance.response_filter(resp).await.map_err(&failed)
            } else {
                Ok(resp)
            }
        })
    }
}

/// One module in a server's `loggers`: its log hook after each response.
#[derive(Debug)]
pub struct ModuleLogger {
    slot: Arc<Slot>,
}

impl ModuleLogger {
    /// A log hook calling the module published in `slot`.
    pub fn new(slot: Arc<Slot>) -> Self {
        Self { slot }
    }
}

impl LogHook for ModuleLogger {
    /// A module that is down misses the line; logging never fails a
    /// request.
    fn log(&self, line: &LogLine) {
        if let Ok(i) = self.slot.load().instance()
            && i.hooks().log
        {
            if let Some(m) = self.slot.metrics() {
                m.calls.inc();
            }
            i.log(line);
        }
    }
}
