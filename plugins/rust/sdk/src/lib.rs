//! The Rust SDK for Troupe modules.
//!
//! Implement [`Module`] for a type, export it with [`export_module!`], and
//! build the crate as a `cdylib`. The macro writes the C ABI of
//! `plugins/include/troupe_module.h` underneath and runs every hook inside
//! `catch_unwind`: a panic becomes an error result (the request gets 500
//! and the module is restarted) and never unwinds into the server.
//!
//! # Example
//! ```
//! use troupe_module::{export_module, Error, Host, Module, Request, Response};
//!
//! struct Hello {
//!     host: Host,
//!     greeting: String,
//! }
//!
//! impl Module for Hello {
//!     fn init(host: Host, config: &str) -> Result<Self, Error> {
//!         let greeting = if config.is_empty() { "Hello" } else { config };
//!         Ok(Hello { host, greeting: greeting.to_owned() })
//!     }
//!
//!     fn handle(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Result<(), Error> {
//!         let name = req.param("name").unwrap_or("world");
//!         self.host.metric("greetings", 1);
//!         resp.header("content-type", "text/plain");
//!         resp.body(format!("{}, {name}!\n", self.greeting));
//!         Ok(())
//!     }
//! }
//!
//! export_module!(Hello);
//! ```
//!
//! A WebSocket echo (route it with `handler: WebSocket(module: "echo")`):
//! ```
//! use troupe_module::{export_module, Error, Hooks, Host, Module, WebSocket, WsMessage};
//!
//! struct Echo;
//!
//! impl Module for Echo {
//!     const HOOKS: Hooks = Hooks::WEBSOCKET;
//!
//!     fn init(_host: Host, _config: &str) -> Result<Self, Error> {
//!         Ok(Echo)
//!     }
//!
//!     fn ws_message(&self, ws: WebSocket, msg: WsMessage<'_>) -> Result<(), Error> {
//!         // Fails only for a client that is gone or not reading.
//!         let _ = ws.send(msg);
//!         Ok(())
//!     }
//! }
//!
//! export_module!(Echo);
//! ```
#![deny(missing_docs)]

#[doc(hidden)]
#[path = "export.rs"]
pub mod __export;
mod host;
mod query;
mod request;
mod ws;

pub use host::{Host, KvError, Level};
pub use query::query_param;
pub use request::{LogEntry, Request, Response};
pub use ws::{WebSocket, WsError, WsMessage};

#[doc(hidden)]
pub use troupe_abi as abi;

/// Why a hook failed. The host answers the request with 500, logs the
/// message, and restarts the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with a message.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

/// What a request filter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Go on to the next middleware and the handler.
    Continue,
    /// Answer with the response built so far.
    Respond,
}

/// Which hooks a module offers. The server only calls the ones listed, and
/// refuses to route to a module that lacks the hook a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks {
    /// [`Module::handle`]: the module answers requests.
    pub handle: bool,
    /// [`Module::request_filter`]: middleware before the handler.
    pub request_filter: bool,
    /// [`Module::response_filter`]: middleware after the handler.
    pub response_filter: bool,
    /// [`Module::log`]: called after every response.
    pub log: bool,
    /// [`Module::ws_open`], [`Module::ws_message`] and [`Module::ws_close`]:
    /// the module handles WebSockets (`handler: WebSocket(module: ..)`).
    pub websocket: bool,
}

impl Hooks {
    /// A handler and nothing else (the default).
    pub const HANDLER: Hooks = Hooks {
        handle: true,
        request_filter: false,
        response_filter: false,
        log: false,
        websocket: false,
    };

    /// WebSockets and nothing else.
    pub const WEBSOCKET: Hooks = Hooks {
        handle: false,
        request_filter: false,
        response_filter: false,
        log: false,
        websocket: true,
    };
}

/// A Troupe module written in Rust.
///
/// Every hook may be called from many threads at once, so the type must be
/// `Send + Sync`: keep mutable state behind a lock or atomics. Only the
/// hooks named in [`Module::HOOKS`] are called.
pub trait Module: Send + Sync + Sized + 'static {
    /// The hooks this module offers.
    const HOOKS: Hooks = Hooks::HANDLER;

    /// Creates the module from its `config` text (the `config` of its entry
    /// in `config.ron`). `host` stays valid until the module is dropped.
    fn init(host: Host, config: &str) -> Result<Self, Error>;

    /// Answers a request routed to the module.
    fn handle(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Result<(), Error> {
        let _ = (req, resp);
        Err(Error::new("this module has no request handler"))
    }

    /// Runs before the handler; return [`Filter::Respond`] to answer with
    /// `resp` instead (an authentication check, say).
    fn request_filter(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Result<Filter, Error> {
        let _ = (req, resp);
        Ok(Filter::Continue)
    }

    /// Runs after the handler: may change the status and the headers.
    fn response_filter(&self, resp: &mut Response<'_>) -> Result<(), Error> {
        let _ = resp;
        Ok(())
    }

    /// Sees every finished request of a server that lists this module in
    /// its `loggers`.
    fn log(&self, entry: &LogEntry<'_>) {
        let _ = entry;
    }

    /// A client asks to open the WebSocket `ws` (with [`Hooks::websocket`]).
    /// [`Filter::Continue`] accepts it (headers set on `resp` go with the
    /// answer; messages sent now wait for the handshake);
    /// [`Filter::Respond`] refuses it with `resp`. Default: accept.
    fn ws_open(
        &self,
        ws: WebSocket,
        req: &Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Filter, Error> {
        let _ = (ws, req, resp);
        Ok(Filter::Continue)
    }

    /// One whole message on `ws`. Calls for one socket never overlap. An
    /// `Err` closes the socket with 1011.
    fn ws_message(&self, ws: WebSocket, msg: WsMessage<'_>) -> Result<(), Error> {
        let _ = (ws, msg);
        Err(Error::new("this module has no WebSocket handler"))
    }

    /// `ws` is gone, with this close code (1001 the server is stopping,
    /// 1012 the module was reloaded, 1006 the connection broke).
    fn ws_close(&self, ws: WebSocket, code: u16) {
        let _ = (ws, code);
    }

    /// Runs once, after the last hook call, before the module is dropped.
    fn shutdown(&self) {}
}
