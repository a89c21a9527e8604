//! A native instance called directly from the request's task (`InProcess`).
//!
//! The call is synchronous and needs no allocation beyond the request's
//! header view, so a module answers as fast as a core handler. A panic in
//! a Rust module is caught inside the module (the SDK's doing) and comes
//! back as an error code; a segfault here takes the server down, which is
//! what `Process` isolation is for.
//!
//! [`InProcessRuntime`] loads the library (a restart initialises a new
//! instance from the copy already mapped; only a reload maps a new one).

use std::{path::Path, sync::Arc};

use troupe_abi as abi;
use troupe_actors::Failures;

use super::{
    entry::ModuleEntry,
    hostapi::Builder,
    instance::{Filtered, Hooks, Instance, Opening, WsData, WsOpen, into_response, steer},
    native::{self, CallError, Library, Native, RequestParts, peer_text, with_raw_request},
    runtime::{LoadCx, Loaded, Memo, Refused, Role, Runtime, no_outbound},
};
use crate::{
    HttpError,
    config::schema::ModuleSpec,
    handler::{BoxFuture, HandlerFuture, HandlerResult, Response},
    pipeline::{log_hook::LogLine, request::Request},
};

/// The runtime of `source: Native(..)` modules in the server's process.
pub(crate) struct InProcessRuntime;

impl Runtime for InProcessRuntime {
    fn file_word(&self) -> &'static str {
        "library"
    }

    fn roles(&self) -> &'static [Role] {
        &[
            Role::Handler,
            Role::Middleware,
            Role::Logger,
            Role::WebSocket,
        ]
    }

    fn check(&self, spec: &ModuleSpec, _file: &Path) -> Result<Option<Hooks>, Refused> {
        no_outbound(spec)?;
        // Its hooks are in the library, and mapping it is not free (a Rust
        // library is never unmapped): only `troupe -t` and a load look.
        Ok(None)
    }

    fn probe(&self, entry: &ModuleEntry) -> Result<Hooks, String> {
        native::probe(&entry.path)
    }

    fn load(
        &self,
        entry: Arc<ModuleEntry>,
        cx: LoadCx,
    ) -> BoxFuture<'static, Result<Loaded, String>> {
        Box::pin(async move {
            let blocking = entry.spec.blocking;
            let failures = cx.failures.clone();
            // dlopen and init may block: off the runtime's threads.
            let (native, read_file) = tokio::task::spawn_blocking(move || {
                let (lib, read_file) = library(&cx.memo, &entry.path, cx.reload)?;
                Native::init(lib, entry.slot.name().clone(), &entry.config, cx.services)
                    .map(|native| (native, read_file))
                    .map_err(|err| format!("{}: {err}", entry.path.display()))
            })
            .await
            .map_err(|e| e.to_string())??;
            Ok(Loaded {
                instance: Arc::new(InProcess::new(native, failures, blocking)),
                read_file,
            })
        })
    }
}

/// The library to initialise from: the one mapped before, unless this is
/// a reload (or the first load); and whether the file was read now.
/// Blocking: copies the file and `dlopen`s it.
fn library(memo: &Memo, file: &Path, reload: bool) -> Result<(Arc<Library>, bool), String> {
    match memo.get::<Library>() {
        Some(lib) if !reload => Ok((lib, false)),
        _ => {
            let lib = Arc::new(Library::open(file).map_err(|e| e.to_string())?);
            memo.set(lib.clone());
            Ok((lib, true))
        }
    }
}

/// A native instance in the server's process.
pub struct InProcess {
    native: Arc<Native>,
    failures: Failures,
    blocking: bool,
}

impl InProcess {
    /// Wraps an initialised instance; `blocking` moves calls to the
    /// blocking pool.
    pub fn new(native: Native, failures: Failures, blocking: bool) -> Self {
        Self {
            native: Arc::new(native),
            failures,
            blocking,
        }
    }

    /// `ws_open` of the C or Rust module.
    fn open_socket(&self, socket: u64, req: &Request) -> Result<WsOpen, HttpError> {
        match with_raw(req, |raw| self.native.ws_open(socket, raw)) {
            Ok((true, b)) => {
                b.status_code().map_err(|w| HttpError::Internal(w.into()))?;
                Ok(WsOpen::Accept(b.headers))
            }
            Ok((false, b)) => answer(Ok(b), &self.failures).map(WsOpen::Refuse),
            Err(e) => Err(fail(e, &self.failures)),
        }
    }
}

/// Calls `f` with the request in the ABI's shape.
pub(crate) fn with_raw<R>(req: &Request, f: impl FnOnce(&abi::Request) -> R) -> R {
    let mut buf = [0u8; 64];
    let parts = RequestParts {
        method: req.method().as_str(),
        path: req.path(),
        query: req.query().unwrap_or(""),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        params: req.params().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        body: req.body(),
        peer: peer_text(req.peer(), &mut buf),
    };
    with_raw_request(parts, f)
}

/// Turns a hook's result into the request's answer, reporting failures.
fn answer(result: Result<Builder, CallError>, failures: &Failures) -> HandlerResult {
    match result {
        Ok(b) => {
            let status = b.status_code().map_err(|w| HttpError::Internal(w.into()))?;
            Ok(into_response(status, b.headers, b.body))
        }
        Err(e) => Err(fail(e, failures)),
    }
}

fn fail(e: CallError, failures: &Failures) -> HttpError {
    let why = e.to_string();
    if e.restarts() {
        failures.report(why.clone());
    }
    HttpError::Internal(why)
}

impl Instance for InProcess {
    fn hooks(&self) -> Hooks {
        self.native.hooks()
    }

    fn handle(&self, req: Request) -> HandlerFuture {
        if !self.blocking {
            return HandlerFuture::ready(answer(
                with_raw(&req, |raw| self.native.handle(raw)),
                &self.failures,
            ));
        }
        let (native, failures) = (self.native.clone(), self.failures.clone());
        HandlerFuture::new(async move {
            let result =
                tokio::task::spawn_blocking(move || with_raw(&req, |raw| native.handle(raw)))
                    .await
                    .map_err(|e| HttpError::Internal(e.to_string()))?;
            answer(result, &failures)
        })
    }

    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        let result = with_raw(&req, |raw| self.native.request_filter(raw));
        let failures = self.failures.clone();
        let module = self.native.module().clone();
        Box::pin(async move {
            match result {
                Ok((false, b)) => Ok(Filtered::Continue(steer(
                    req, &module, b.upstream, b.rate_key,
                ))),
                Ok((true, b)) => answer(Ok(b), &failures).map(Filtered::Respond),
                Err(e) => Err(fail(e, &failures)),
            }
        })
    }

    fn response_filter(&self, mut resp: Response) -> HandlerFuture {
        let head = Builder::head(resp.status().as_u16(), std::mem::take(resp.headers_mut()));
        HandlerFuture::ready(match self.native.response_filter(head) {
            Ok(b) => b
                .status_code()
                .map_err(|w| HttpError::Internal(w.into()))
                .map(|status| {
                    *resp.status_mut() = status;
                    *resp.headers_mut() = b.headers;
                    resp
                }),
            Err(e) => Err(fail(e, &self.failures)),
        })
    }

    fn log(&self, line: &LogLine) {
        let mut buf = [0u8; 64];
        let peer = peer_text(line.peer, &mut buf);
        self.native.log(&abi::LogEntry {
            method: abi::Str::new(line.method.as_str().as_bytes()),
            path: abi::Str::new(line.path.as_bytes()),
            query: abi::Str::new(line.query.as_bytes()),
            peer: abi::Str::new(peer.as_bytes()),
            status: line.status,
            bytes: line.bytes,
            duration_us: u64::try_from(line.duration.as_micros()).unwrap_or(u64::MAX),
        });
    }

    fn ws_open(&self, socket: u64, req: &Request) -> Opening {
        // The C hook answers on this thread, as its `handle` does.
        Box::pin(std::future::ready(self.open_socket(socket, req)))
    }

    fn ws_message(&self, socket: u64, msg: WsData<'_>) -> Result<(), String> {
        let (kind, data) = match msg {
            WsData::Text(t) => (abi::WS_TEXT, t.as_bytes()),
            WsData::Binary(b) => (abi::WS_BINARY, b),
        };
        // A failed message closes its socket; it does not restart the
        // module (a client could otherwise restart it at will).
        self.native
            .ws_message(socket, kind, data)
            .map_err(|e| e.to_string())
    }

    fn ws_close(&self, socket: u64, code: u16) {
        self.native.ws_close(socket, code);
    }
}
