//! [`Tls`]: the process's TLS acceptor: the published certificate store,
//! the shared `ServerConfig`, and the handshake of one connection.

use std::{
    io,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    server::{Acceptor, danger::ClientCertVerifier},
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{LazyConfigAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;

use crate::observe::metrics::TlsMetrics;

use super::{
    Session,
    acme::{ACME_TLS_ALPN, Challenges},
    certs::Certs,
    resolver::{SniResolver, is_acme_validation},
    server_config,
    store::{CertStore, Entry},
};

/// Why a handshake did not finish. Each is the client's doing (or the
/// server stopping), so it is logged at debug, never higher.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Not finished within `limits.handshake_timeout`.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The listener started draining first.
    #[error("the server is shutting down")]
    Draining,
    /// The client sent something that is not TLS, a ClientHello rustls
    /// refused (after an alert), or went away.
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
    /// An ACME CA's TLS-ALPN-01 validation: it ends with the handshake
    /// (RFC 8737), and a connection that got the validation certificate
    /// skipped any client-certificate check, so it never carries HTTP.
    #[error("ACME TLS-ALPN-01 validation done; connection closed")]
    AcmeValidation,
}

/// A client-auth server's verifier and the config made for it.
type ClientAuthConfig = (Arc<dyn ClientCertVerifier>, Arc<ServerConfig>);

/// Accepts TLS connections with the certificates last published.
///
/// Made once per process (`app.rs`); a config reload and the certificate
/// actor (through `LiveCerts`) only call [`Tls::publish`], so the shared
/// config's session cache and ticket keys outlive every certificate change.
#[derive(Debug)]
pub struct Tls {
    store: Arc<ArcSwap<CertStore>>,
    resolver: Arc<SniResolver>,
    /// For every server that does not ask for client certificates. Made
    /// by the first [`Tls::publish`] with a certificate: its ticket keys
    /// are the process's first random bytes from aws-lc, whose entropy
    /// source takes a while to start (~0.4 G instructions), which a server
    /// without TLS should not pay.
    shared: OnceLock<Arc<ServerConfig>>,
    /// The config of each client-auth server last published, by its
    /// verifier: a certificate reload that leaves the CA file as it was
    /// keeps the verifier, so it keeps the config too, and with it the
    /// sessions (`LiveCerts` keeps the verifier across a config reload
    /// too). A new CA makes a new verifier, and so a new config with new
    /// ticket keys and an empty session cache: a resumed session is not
    /// verified again, so one made under the old CA must not resume.
    client_auth: Mutex<Vec<ClientAuthConfig>>,
    /// Handshakes by outcome.
    pub metrics: TlsMetrics,
}

impl Tls {
    /// An acceptor with no certificate yet (every handshake fails until
    /// [`Tls::publish`]), answering the TLS-ALPN-01 `challenges` the ACME
    /// side publishes.
    pub fn new(metrics: TlsMetrics, challenges: Arc<Challenges>) -> Self {
        let store = Arc::new(ArcSwap::from_pointee(CertStore::default()));
        let resolver = Arc::new(SniResolver {
            store: store.clone(),
            challenges,
        });
        Self {
            store,
            resolver,
            shared: OnceLock::new(),
            client_auth: Mutex::default(),
            metrics,
        }
    }

    /// The shared config, made on first use and kept for good.
    fn shared(&self) -> Result<&Arc<ServerConfig>, rustls::Error> {
        if let Some(shared) = self.shared.get() {
            return Ok(shared);
        }
        let made = Arc::new(server_config::build(self.resolver.clone(), None)?);
        Ok(self.shared.get_or_init(|| made))
    }

    /// Makes `certs` the certificates of the next handshakes. A server
    /// that asks for client certificates gets a `ServerConfig` of its own
    /// (rustls verifies clients per config, not per certificate), made
    /// here, with its own ticket keys, unless its verifier already has one.
    pub fn publish(&self, certs: &Certs) -> Result<(), rustls::Error> {
        if !certs.servers.is_empty() {
            self.shared()?;
        }
        let mut store = CertStore::default();
        let mut entries = Vec::with_capacity(certs.servers.len());
        let mut client_auth = self.client_auth.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = Vec::new();
        for server in &certs.servers {
            let config = match server.client_ca.as_ref().map(|ca| &ca.verifier) {
                Some(verifier) => {
                    let same = |(v, _): &&ClientAuthConfig| {
                        std::ptr::addr_eq(Arc::as_ptr(v), Arc::as_ptr(verifier))
                    };
                    let config = match client_auth.iter().find(same) {
                        Some((_, config)) => config.clone(),
                        None => Arc::new(server_config::build(
                            self.resolver.clone(),
                            Some(verifier.clone()),
                        )?),
                    };
                    kept.push((verifier.clone(), config.clone()));
                    Some(config)
                }
                None => None,
            };
            let entry = Arc::new(Entry {
                key: server.key.clone(),
                config,
            });
            store.insert(&server.names, &entry);
            entries.push(entry);
        }
        if let Some(entry) = certs.default.and_then(|i| entries.get(i)) {
            store.set_default(entry.clone());
        }
        *client_auth = kept;
        self.store.store(Arc::new(store));
        Ok(())
    }

    /// The handshake of one connection, within `within` from now, given
    /// up when `drain` fires. The ClientHello is read first, so its server
    /// name can pick the config (client certificates or not) before rustls
    /// answers; on bad input rustls sends an alert before the error
    /// returns.
    pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: IO,
        within: Duration,
        drain: &CancellationToken,
    ) -> Result<(TlsStream<IO>, Session), HandshakeError> {
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
                .await
                .map_err(HandshakeError::Failed)?;
            let sni: Option<Box<str>> = start
                .client_hello()
                .server_name()
                .map(|name| name.to_ascii_lowercase().into_boxed_str());
            // A CA validating TLS-ALPN-01 has no client certificate to show:
            // the shared config answers it for every server.
            let own = if is_acme_validation(&start.client_hello()) {
                None
            } else {
                self.store
                    .load()
                    .find(sni.as_deref())
                    .and_then(|entry| entry.config.clone())
            };
            // No certificate was ever published: the config check makes
            // that impossible on a `tls` address, but fail cleanly anyway.
            let config = match own.or_else(|| self.shared.get().cloned()) {
                Some(config) => config,
                None => return Err(HandshakeError::Failed(io::Error::other("no certificate"))),
            };
            let stream = start
                .into_stream(config)
                .await
                .map_err(HandshakeError::Failed)?;
            let alpn = stream.get_ref().1.alpn_protocol();
            if alpn == Some(ACME_TLS_ALPN) {
                return Err(HandshakeError::AcmeValidation);
            }
            let h2 = alpn == Some(b"h2");
            Ok((stream, Session { sni, h2 }))
        };
        tokio::select! {
            biased;
            _ = drain.cancelled() => Err(HandshakeError::Draining),
            done = tokio::time::timeout(within, handshake) => {
                done.unwrap_or(Err(HandshakeError::Timeout))
            }
        }
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        // A client-auth entry's config holds the resolver, which holds the
        // store that holds the entry: empty the store to break the cycle.
        self.store.store(Arc::default());
        self.client_auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
