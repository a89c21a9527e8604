//! [`SniResolver`]: rustls's certificate callback, over the published
//! [`CertStore`]: one atomic load per handshake, no lock, and a new store
//! takes effect for the next handshake without touching the
//! `ServerConfig` (whose session cache and ticket keys live on).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::{
    acme::{ACME_TLS_ALPN, Challenges},
    store::CertStore,
};

/// Picks the certificate for a ClientHello's server name.
#[derive(Debug)]
pub(super) struct SniResolver {
    pub store: Arc<ArcSwap<CertStore>>,
    /// TLS-ALPN-01 answers in flight.
    pub challenges: Arc<Challenges>,
}

/// Whether a ClientHello is an ACME CA validating TLS-ALPN-01 (RFC 8737:
/// it offers `acme-tls/1`, and only that).
pub(super) fn is_acme_validation(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if is_acme_validation(&hello) {
            // Only the validation certificate: never the server's own
            // under a protocol that serves no HTTP.
            return self.challenges.tls_alpn01(hello.server_name()?);
        }
        // `None` (no certificate at all) makes rustls refuse the handshake
        // with an alert.
        self.store
            .load()
            .find(hello.server_name())
            .map(|e| e.key.clone())
    }
}
