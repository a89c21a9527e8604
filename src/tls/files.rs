//! Certificates, keys and CAs read from PEM files and checked the way a
//! handshake would use them: every certificate parses, the key parses and
//! matches the first certificate, a CA file makes a client verifier. Every
//! error names the file (`troupe -t` prints it).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ParsedCertificate, WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};

use super::server_config::provider;

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not readable, or not PEM.
    #[error("{}: cannot read it as PEM: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: rustls::pki_types::pem::Error,
    },
    /// No certificate block.
    #[error("{}: holds no certificate (expected `-----BEGIN CERTIFICATE-----` blocks, the server's first)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate that does not parse as X.509.
    #[error("{}: certificate {index} does not parse: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Its position in the file, from 1.
        index: usize,
        /// Why.
        reason: rustls::Error,
    },
    /// No private key block.
    #[error("{}: holds no private key (expected a PEM `PRIVATE KEY`: PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A key of a kind the crypto provider cannot sign with.
    #[error("{}: the private key is not usable: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: rustls::Error,
    },
    /// The key is not the certificate's.
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// A CA file a client verifier cannot be built from.
    #[error("{}: not a usable CA for client certificates: {reason}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Every certificate in a PEM file, each checked to parse.
pub fn chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let read = |reason| FileError::Read {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(FileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    for (i, cert) in certs.iter().enumerate() {
        ParsedCertificate::try_from(cert).map_err(|reason| FileError::BadCertificate {
            path: path.to_owned(),
            index: i + 1,
            reason,
        })?;
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    PrivateKeyDer::from_pem_file(path).map_err(|reason| match reason {
        rustls::pki_types::pem::Error::NoItemsFound => FileError::NoKey {
            path: path.to_owned(),
        },
        reason => FileError::Read {
            path: path.to_owned(),
            reason,
        },
    })
}

/// A certificate chain with its key, checked to belong together.
pub fn certified_key(cert: &Path, key_file: &Path) -> Result<CertifiedKey, FileError> {
    let chain = chain(cert)?;
    let key = key(key_file)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|reason| FileError::BadKey {
            path: key_file.to_owned(),
            reason,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(FileError::Mismatch {
                key: key_file.to_owned(),
                cert: cert.to_owned(),
            })
        }
        // A key that cannot tell its public half: rustls accepts it too.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(reason) => Err(FileError::BadCertificate {
            path: cert.to_owned(),
            index: 1,
            reason,
        }),
    }
}

/// A verifier that requires a client certificate signed by a CA in `path`.
pub fn client_verifier(path: &Path) -> Result<Arc<dyn ClientCertVerifier>, FileError> {
    let mut roots = RootCertStore::empty();
    for cert in chain(path)? {
        roots.add(cert).map_err(|e| FileError::BadCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider().clone())
        .build()
        .map_err(|e| FileError::BadCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use rustls::{pki_types::PrivatePkcs8KeyDer, sign::SigningKey};

    use super::provider;

    /// A signing key, for tests that need a `CertifiedKey` but no
    /// certificate that parses.
    pub(crate) fn any_signing_key() -> Arc<dyn SigningKey> {
        let key = rcgen::KeyPair::generate().expect("key");
        provider()
            .key_provider
            .load_private_key(PrivatePkcs8KeyDer::from(key.serialize_der()).into())
            .expect("load")
    }
}
