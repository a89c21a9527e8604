//! Certificates, keys and CAs read from PEM files and checked the way a
//! handshake would use them: every certificate parses, the key parses and
//! matches the first certificate, which has not expired; a CA file makes a
//! client verifier. Every error names the file (`troupe -t` prints it, a
//! certificate reload logs it).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ParsedCertificate, WebPkiClientVerifier},
    sign::CertifiedKey,
};

use time::OffsetDateTime;

use super::{certs::ClientCa, server_config::provider};

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
    /// The server's certificate is past its not-after date: clients would
    /// refuse it.
    #[error("{}: the certificate expired on {not_after}", path.display())]
    Expired {
        /// The file.
        path: PathBuf,
        /// When, RFC 3339.
        not_after: String,
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

/// When a certificate stops being valid (its `notAfter`); see
/// [`validity`].
pub fn not_after(cert: &CertificateDer<'_>) -> Option<OffsetDateTime> {
    validity(cert).map(|(_, end)| end)
}

/// A certificate's `notBefore` and `notAfter`, read from its DER without
/// a full X.509 parse (`chain` has already checked that it parses);
/// `None` if the fields cannot be found.
pub fn validity(cert: &CertificateDer<'_>) -> Option<(OffsetDateTime, OffsetDateTime)> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    // OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
    // notBefore, notAfter }, … }, … }
    let (_, cert, _) = der(cert.as_ref(), 0x30)?;
    let (_, mut tbs, _) = der(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs, 0xa0)?.2;
    }
    let (_, _serial, rest) = der(tbs, 0x02)?;
    let (_, _signature, rest) = der(rest, 0x30)?;
    let (_, _issuer, rest) = der(rest, 0x30)?;
    let (_, validity, _) = der(rest, 0x30)?;
    let (tag, start, rest) = any_der(validity)?;
    let start = time_of(tag, start)?;
    let (tag, end, _) = any_der(rest)?;
    Some((start, time_of(tag, end)?))
}

/// A DER UTCTime (tag 0x17) or GeneralizedTime (0x18), as UTC.
fn time_of(tag: u8, time: &[u8]) -> Option<OffsetDateTime> {
    let digits = std::str::from_utf8(time.strip_suffix(b"Z")?).ok()?;
    let (year, rest) = match tag {
        // UTCTime: two-digit years, 50–99 meaning 19xx (RFC 5280).
        0x17 => {
            let yy: i32 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        0x18 => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |at: usize| -> Option<u8> { rest.get(at..at + 2)?.parse().ok() };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(field(0)?).ok()?, field(2)?)
            .ok()?;
    let clock = time::Time::from_hms(field(4)?, field(6)?, field(8)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

/// One DER element of tag `want` at the start of `input`: (tag, content,
/// what follows).
fn der(input: &[u8], want: u8) -> Option<(u8, &[u8], &[u8])> {
    let found = any_der(input)?;
    (found.0 == want).then_some(found)
}

/// The DER element at the start of `input`, of any tag.
fn any_der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A certificate chain with its key, checked to belong together, the
/// server's certificate not expired.
pub fn certified_key(cert: &Path, key_file: &Path) -> Result<CertifiedKey, FileError> {
    let chain = chain(cert)?;
    if let Some(end) = chain.first().and_then(not_after)
        && end <= OffsetDateTime::now_utc()
    {
        return Err(FileError::Expired {
            path: cert.to_owned(),
            not_after: end
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| end.to_string()),
        });
    }
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

/// The CA in `path` and a verifier that requires a client certificate
/// signed by it.
pub fn client_ca(path: &Path) -> Result<ClientCa, FileError> {
    let bad = |reason: String| FileError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let certs = chain(path)?;
    let mut roots = RootCertStore::empty();
    for cert in &certs {
        roots.add(cert.clone()).map_err(|e| bad(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider().clone())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(ClientCa {
        file: path.to_owned(),
        roots: certs,
        verifier,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    #[test]
    fn not_after_is_read_from_the_der() {
        for (year, month, day) in [(2049, 12, 31), (2050, 1, 2), (2031, 6, 15)] {
            let mut params = rcgen::CertificateParams::new(vec!["x.test".into()]).expect("params");
            params.not_after = rcgen::date_time_ymd(year, month, day);
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = params.self_signed(&key).expect("cert");
            let end = super::not_after(cert.der()).expect("not after");
            assert_eq!(
                (end.year(), end.month() as u8, end.day()),
                (year, month, day)
            );
        }
        assert_eq!(super::not_after(&vec![0x30, 0x03, 0x02, 0x01].into()), None);
    }

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
