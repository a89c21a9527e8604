//! Certificates Troupe makes itself (rcgen): the self-signed stand-in an
//! ACME server serves until its first certificate arrives, and the
//! TLS-ALPN-01 validation certificate (RFC 8737: the name, and the
//! `acmeIdentifier` extension holding the SHA-256 of the key
//! authorization).

use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair};
use rustls::{
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    sign::CertifiedKey,
};
use time::{Duration, OffsetDateTime};

use crate::tls::server_config::provider;

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// rcgen refused the names or failed to sign.
    #[error("cannot make a certificate for {names}: {reason}")]
    Make {
        /// The names asked for.
        names: String,
        /// Why.
        reason: rcgen::Error,
    },
    /// The crypto provider refused the key rcgen made.
    #[error("cannot use the key made for {names}: {reason}")]
    Key {
        /// The names asked for.
        names: String,
        /// Why.
        reason: rustls::Error,
    },
}

/// A self-signed certificate for `names`, valid for a week: browsers warn,
/// but the listener answers from the first second, and a client that
/// does not check (or an operator's curl -k) sees the server is up.
pub fn self_signed(names: &[String]) -> Result<CertifiedKey, StandInError> {
    make(names, None)
}

/// The TLS-ALPN-01 certificate for `name` proving `digest` (the SHA-256
/// of the key authorization).
pub fn tls_alpn01(name: &str, digest: &[u8]) -> Result<CertifiedKey, StandInError> {
    make(&[name.to_owned()], Some(digest))
}

fn make(names: &[String], acme_digest: Option<&[u8]>) -> Result<CertifiedKey, StandInError> {
    let fail = |reason| StandInError::Make {
        names: names.join(", "),
        reason,
    };
    let mut params = CertificateParams::new(names.to_vec()).map_err(fail)?;
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, first);
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(7);
    if let Some(digest) = acme_digest {
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    }
    let key = KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|reason| StandInError::Key {
            names: names.join(", "),
            reason,
        })?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_covers_its_names_and_its_key_matches() {
        let key = self_signed(&["a.test".into(), "b.test".into()]).expect("stand-in");
        key.keys_match().expect("key matches");
        let end = crate::tls::files::not_after(&key.cert[0]).expect("not after");
        assert!(end > OffsetDateTime::now_utc() + Duration::days(6));
        // webpki refuses to parse the critical acmeIdentifier extension
        // (so `keys_match` cannot be asked); the CA reads it. Look for it:
        // OID 1.3.6.1.5.5.7.1.31, then the critical flag.
        let alpn = tls_alpn01("a.test", &[7; 32]).expect("alpn cert");
        let oid = [
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f, 0x01, 0x01, 0xff,
        ];
        assert!(alpn.cert[0].as_ref().windows(oid.len()).any(|w| w == oid));
    }
}
