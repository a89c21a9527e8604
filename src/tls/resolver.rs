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

use super::store::CertStore;

/// Picks the certificate for a ClientHello's server name.
#[derive(Debug)]
pub(super) struct SniResolver {
    pub store: Arc<ArcSwap<CertStore>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // `None` (no certificate at all) makes rustls refuse the handshake
        // with an alert.
        self.store
            .load()
            .find(hello.server_name())
            .map(|e| e.key.clone())
    }
}
