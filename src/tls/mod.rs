//! TLS (P7.3): certificates chosen by SNI, the rustls server configs, and
//! the handshake; what a finished handshake tells the request path.
//!
//! ```text
//! config/tls.rs      a server's `tls` block → files.rs (PEM parses, key
//!                    matches) → Certs, one per config generation
//! LiveCerts          the Certs in force: installed at start-up and by each
//!                    config reload; read again, server by server, by the
//!                    certificate actor (a file changed, SIGHUP, POST
//!                    /tls/reload), keeping a server's old certificate when
//!                    its new files are refused; GET /tls and the
//!                    troupe_tls_cert_* series show it
//! Tls::publish       Certs → CertStore, stored in the ArcSwap the
//!                    resolver reads
//! Tls::accept        per connection, under the handshake timeout: read
//!                    the ClientHello → its SNI picks the ServerConfig (the
//!                    shared one, or the server's own when it asks for
//!                    client certificates) → the rest of the handshake
//! SniResolver        rustls asks for the certificate: one load of the
//!                    store, exact name → `*.` wildcard → default server
//! Session            the SNI and ALPN, kept by the connection for the
//!                    pipeline (421, HSTS) and the HTTP version
//! client_config.rs   TLS *to* upstreams: the system's roots (read once)
//!                    and a ClientConfig per upstream group, with the same
//!                    provider (src/proxy/transport.rs connects with it)
//! acme/              certificates from an ACME CA: ordered by the acme
//!                    actor, written to its state directory, published by
//!                    the certificate actor like replaced files; its
//!                    Challenges are read by the resolver (TLS-ALPN-01)
//!                    and the plain-HTTP pipeline (HTTP-01)
//! ```
//!
//! The shared `ServerConfig` is built once per process and never again:
//! certificates change by publishing a new store, so its session cache
//! and ticket keys (resumption) survive a config reload and a certificate
//! swap by the certificate actor, which only has to publish.
//! Only the plain-HTTP path never comes here: `app.rs` branches on the
//! listen address before anything TLS is touched.

mod accept;
pub mod acme;
mod certs;
mod client_config;
pub(crate) mod files;
mod live;
mod resolver;
mod server_config;
mod store;

pub use accept::{HandshakeError, Tls};
pub use certs::{Certs, ClientCa, ServerCert};
pub use client_config::{roots_of, system_roots, upstream_client};
pub use live::{CertSource, CertStatus, LiveCerts};
pub use server_config::provider;

/// What a finished handshake settled, kept by its connection.
#[derive(Debug)]
pub struct Session {
    /// The server name the client asked for (SNI), lower case.
    sni: Option<Box<str>>,
    /// Whether ALPN chose HTTP/2.
    h2: bool,
}

impl Session {
    /// The server name the client asked for, if it sent one.
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// Whether the client and server agreed on HTTP/2 (ALPN `h2`).
    pub fn is_h2(&self) -> bool {
        self.h2
    }
}
