//! The rustls side of TLS *to* upstreams: the roots a backend's
//! certificate is verified with, and the `ClientConfig` each upstream
//! group gets (built once, at config load, with the process's provider).

use std::sync::{Arc, OnceLock};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer},
    version::{TLS12, TLS13},
};

use super::server_config::provider;

/// The system's trusted roots (the OS store, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`), read once per process: reading them costs
/// milliseconds, and a config reload should not pay it again. An
/// unreadable store gives an empty set, so every verification fails
/// (logged once) rather than the process refusing to start.
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "cannot read a system root certificate");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system roots read for upstream TLS");
            Arc::new(roots)
        })
        .clone()
}

/// Roots holding exactly the certificates of a configured CA file.
pub fn roots_of(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
    }
    Ok(roots)
}

/// A client config for one upstream group: TLS 1.3 and 1.2, verifying
/// with `roots`, presenting `client_auth` (chain, key) when given, and
/// offering `alpn` (most preferred first). SNI is on (rustls sends it for
/// a DNS name, never for an IP address).
pub fn upstream_client(
    roots: Arc<RootCertStore>,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider().clone())
        .with_protocol_versions(&[&TLS13, &TLS12])?
        .with_root_certificates(roots);
    let mut config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
