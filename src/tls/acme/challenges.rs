//! [`Challenges`]: the answers to the ACME challenges in flight, published
//! by the ACME side and read by the request path without a lock or an
//! actor: the plain-HTTP pipeline looks up an HTTP-01 token, the TLS
//! resolver a TLS-ALPN-01 certificate, each with one atomic load.
//!
//! Both maps are empty nearly always; an order adds its entries before
//! telling the CA it is ready and removes them when it ends, however it
//! ends ([`Published`]).

use std::{collections::HashMap, sync::Arc};

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

/// Where an HTTP-01 challenge is fetched (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of a TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenge answers in flight.
#[derive(Debug, Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: ArcSwap<HashMap<String, String>>,
    /// TLS-ALPN-01: name (lower case) → the certificate with the
    /// `acmeIdentifier` extension.
    alpn: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The key authorization for an HTTP-01 token, if one is in flight.
    pub fn http01(&self, token: &str) -> Option<String> {
        let map = self.http.load();
        if map.is_empty() {
            return None;
        }
        map.get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for a name, if one is in flight.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.alpn.load();
        if map.is_empty() {
            return None;
        }
        map.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Publishes an HTTP-01 answer until the guard is dropped.
    pub(super) fn publish_http01(self: &Arc<Self>, token: String, answer: String) -> Published {
        self.http.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(token.clone(), answer.clone());
            map
        });
        Published {
            challenges: self.clone(),
            key: Key::Http(token),
        }
    }

    /// Publishes a TLS-ALPN-01 certificate until the guard is dropped.
    pub(super) fn publish_tls_alpn01(
        self: &Arc<Self>,
        name: &str,
        cert: Arc<CertifiedKey>,
    ) -> Published {
        let name = name.to_ascii_lowercase();
        self.alpn.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(name.clone(), cert.clone());
            map
        });
        Published {
            challenges: self.clone(),
            key: Key::Alpn(name),
        }
    }
}

enum Key {
    Http(String),
    Alpn(String),
}

/// One published answer; dropping it takes the answer down.
pub(super) struct Published {
    challenges: Arc<Challenges>,
    key: Key,
}

impl Drop for Published {
    fn drop(&mut self) {
        match &self.key {
            Key::Http(token) => {
                self.challenges.http.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    map.remove(token);
                    map
                });
            }
            Key::Alpn(name) => {
                self.challenges.alpn.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    map.remove(name);
                    map
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_lives_as_long_as_its_guard() {
        let c = Arc::new(Challenges::default());
        assert_eq!(c.http01("t"), None);
        let guard = c.publish_http01("t".into(), "t.thumb".into());
        assert_eq!(c.http01("t").as_deref(), Some("t.thumb"));
        assert_eq!(c.http01("u"), None);
        drop(guard);
        assert_eq!(c.http01("t"), None);
    }
}
