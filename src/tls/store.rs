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
