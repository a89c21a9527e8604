//! [`Certs`]: what a config's `tls` blocks compile into, once per
//! generation: each TLS server's names, its checked certificate and key,
//! and its client-certificate verifier. `Tls::publish` turns it into the
//! store the handshake reads.

use std::{path::PathBuf, sync::Arc};

use rustls::{pki_types::CertificateDer, server::danger::ClientCertVerifier, sign::CertifiedKey};

use super::acme::AcmeServer;

/// The CA a server checks client certificates against (mutual TLS).
#[derive(Debug, Clone)]
pub struct ClientCa {
    /// The CA file, as the certificate actor reads it again.
    pub file: PathBuf,
    /// The certificates it held, to tell whether a reload changed it.
    pub roots: Vec<CertificateDer<'static>>,
    /// Made from `roots`. `Tls::publish` keeps a server's `ServerConfig`
    /// (and so its sessions) for as long as this `Arc` stays the same.
    pub verifier: Arc<dyn ClientCertVerifier>,
}

/// One server block's TLS material.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// Its names, lower case, as the virtual hosts know them.
    pub names: Vec<String>,
    /// The certificate file, as the certificate actor reads it again.
    pub cert_file: PathBuf,
    /// The key file.
    pub key_file: PathBuf,
    /// The chain and key, checked to match.
    pub key: Arc<CertifiedKey>,
    /// Client certificates it requires, if any.
    pub client_ca: Option<ClientCa>,
    /// Where its certificate is ordered, if from an ACME CA (`cert_file`
    /// and `key_file` are then in its state directory, and missing until
    /// the first certificate arrives).
    pub acme: Option<Arc<AcmeServer>>,
}

/// Every TLS server block of a config.
#[derive(Debug, Default, Clone)]
pub struct Certs {
    /// In file order.
    pub servers: Vec<ServerCert>,
    /// The one served without SNI or for an unknown name: the default
    /// server's, else the first.
    pub default: Option<usize>,
}
