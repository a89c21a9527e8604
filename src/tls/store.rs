//! [`CertStore`]: the published certificate table the handshake reads.
//!
//! Built from a generation's [`Certs`](super::Certs) by `Tls::publish`
//! and swapped whole into an `ArcSwap`: a handshake loads it once. Lookup
//! follows the virtual hosts' rules (`pipeline/vhost.rs`), so the
//! certificate and the server block a name selects agree: an exact name,
//! then the longest matching `*.` wildcard, then the default.

use std::{collections::HashMap, sync::Arc};

use rustls::{ServerConfig, sign::CertifiedKey};

/// One server block's certificate and handshake settings.
#[derive(Debug)]
pub(super) struct Entry {
    /// The chain and key served.
    pub key: Arc<CertifiedKey>,
    /// The config to finish the handshake with when it differs from the
    /// shared one (the server asks for client certificates).
    pub config: Option<Arc<ServerConfig>>,
}

/// Certificates by server name.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<Entry>>,
    /// `(".example.com", entry)`, longest suffix first.
    wildcards: Vec<(String, Arc<Entry>)>,
    /// For clients without SNI and names no server has.
    default: Option<Arc<Entry>>,
}

impl CertStore {
    /// Adds `entry` under each of `names` (lower case; `*.x` is a wildcard).
    pub(super) fn insert(&mut self, names: &[String], entry: &Arc<Entry>) {
        for name in names {
            match name.strip_prefix('*') {
                Some(suffix) => self.wildcards.push((suffix.to_owned(), entry.clone())),
                None => {
                    self.exact.insert(name.clone(), entry.clone());
                }
            }
        }
        self.wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
    }

    /// Sets the entry for clients without SNI and for unknown names.
    pub(super) fn set_default(&mut self, entry: Arc<Entry>) {
        self.default = Some(entry);
    }

    /// The entry for a server name (SNI), or the default.
    pub(super) fn find(&self, sni: Option<&str>) -> Option<&Arc<Entry>> {
        let Some(name) = sni else {
            return self.default.as_ref();
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        self.exact
            .get(name)
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| {
                        name.len() > suffix.len() && name.ends_with(suffix.as_str())
                    })
                    .map(|(_, e)| e)
            })
            .or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose entries are told apart by their certificate's bytes.
    fn store() -> CertStore {
        let entry = |tag: u8| {
            let key = crate::tls::files::tests::any_signing_key();
            Arc::new(Entry {
                key: Arc::new(CertifiedKey::new(vec![vec![tag].into()], key)),
                config: None,
            })
        };
        let mut s = CertStore::default();
        let default = entry(0);
        s.insert(&["default.test".into()], &default);
        s.insert(&["example.com".into(), "*.example.com".into()], &entry(1));
        s.insert(&["*.api.example.com".into()], &entry(2));
        s.set_default(default);
        s
    }

    fn pick(s: &CertStore, sni: Option<&str>) -> Option<u8> {
        s.find(sni).map(|e| e.key.cert[0].as_ref()[0])
    }

    #[test]
    fn exact_then_longest_wildcard_then_default() {
        let s = store();
        assert_eq!(pick(&s, Some("example.com")), Some(1));
        assert_eq!(pick(&s, Some("Example.COM.")), Some(1));
        assert_eq!(pick(&s, Some("a.example.com")), Some(1));
        assert_eq!(pick(&s, Some("v1.api.example.com")), Some(2));
        assert_eq!(pick(&s, Some("other.org")), Some(0));
        assert_eq!(pick(&s, None), Some(0));
        assert_eq!(pick(&CertStore::default(), Some("example.com")), None);
    }
}
