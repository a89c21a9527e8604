//! Automatic HTTPS: certificates ordered from an ACME CA (RFC 8555) with
//! instant-acme, kept on disk, renewed before they expire, Caddy-style.
//!
//! ```text
//! config/tls.rs   a server's `tls: (acme: (…))` → AcmeServer: names, CA,
//!                 state directory (made, 0700); the certificate on disk if
//!                 it is good and for these names, else a self-signed
//!                 stand-in (standin.rs), so the listener answers at once
//! the acme actor  (troupe_actors::acme) calls Acme::run at start, when a
//!                 renewal falls due, after a config reload; one run at a
//!                 time, as a task off the request path
//! Acme::run       per ACME server: read its files (disk.rs); missing, for
//!                 other names, or due (renew.rs: renew_before, ARI, 2/3 of
//!                 the lifetime) → order (order.rs: challenges published
//!                 in Challenges, the request path answers them) → write
//!                 key and chain (0600) → the actor asks the certificate
//!                 actor to reload, which publishes them like replaced
//!                 files (the store swaps; ServerConfigs and sessions stay)
//! failures        logged, counted (troupe_acme_orders_total{outcome}),
//!                 retried with doubling backoff (renew.rs)
//! ```
//!
//! The request path reads only [`Challenges`]: the plain-HTTP pipeline for
//! `/.well-known/acme-challenge/<token>` (HTTP-01), the TLS resolver for a
//! ClientHello offering ALPN `acme-tls/1` (TLS-ALPN-01).

mod challenges;
mod client;
pub(crate) mod disk;
mod order;
mod renew;
mod standin;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use instant_acme::Account;
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};
use time::OffsetDateTime;
use troupe_actors::{AcmeRun, Authority, BoxFuture};

pub use challenges::{ACME_TLS_ALPN, Challenges, HTTP01_PREFIX};
pub use disk::StateDir;
pub use standin::{StandInError, self_signed};

use super::{LiveCerts, files, server_config::provider};
use crate::{config::schema::AcmeChallenge, observe::metrics::AcmeMetrics};

/// One server block whose certificate comes from an ACME CA, as compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeServer {
    /// The names to certify (the server's names, lower case; no wildcard).
    pub names: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// The CA certificate trusted for the directory's HTTPS, if not the
    /// system's roots.
    pub ca_root: Option<PathBuf>,
    /// The challenge answered.
    pub challenge: AcmeChallenge,
    /// Where the account and certificates are kept.
    pub state: StateDir,
    /// Renew this long before expiry (else ARI or 2/3 of the lifetime).
    pub renew_before: Option<Duration>,
    /// The chain file the certificate actor reads.
    pub cert_file: PathBuf,
    /// The key file.
    pub key_file: PathBuf,
}

impl AcmeServer {
    /// The file naming what the stored certificate was ordered for.
    fn names_file(&self) -> PathBuf {
        self.cert_file.with_file_name("names")
    }

    /// The stored certificate and key, if they are usable (parse, match,
    /// not expired) and were ordered for exactly these names.
    pub fn stored(&self) -> Option<CertifiedKey> {
        let names = std::fs::read_to_string(self.names_file()).ok()?;
        if names.lines().ne(self.names.iter().map(String::as_str)) {
            return None;
        }
        files::certified_key(&self.cert_file, &self.key_file).ok()
    }

    /// The first name: how logs, metrics and `GET /tls` call the server.
    pub fn label(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

/// Why an order (or the account it needs) failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with an error, or could not be reached.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// A state file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stored account credentials do not parse.
    #[error("{}: not usable ACME account credentials: {reason}", path.display())]
    Account {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTPS client for the CA could not be set up.
    #[error("the HTTPS client for the CA: {0}")]
    Client(String),
    /// The `ca_root` file is not usable.
    #[error("{0}")]
    File(#[from] files::FileError),
    /// The CA offered no challenge of the configured kind.
    #[error("the CA offers no {kind} challenge for {name}")]
    NoChallenge {
        /// The kind configured.
        kind: String,
        /// The name.
        name: String,
    },
    /// The CA refused an authorization or the order, or sent a
    /// certificate that is not usable.
    #[error("{0}")]
    Refused(String),
    /// The TLS-ALPN-01 certificate could not be made.
    #[error("{0}")]
    StandIn(#[from] StandInError),
}

/// Places the orders of every ACME server in force (the certificate
/// actor's [`LiveCerts`] knows which), and remembers failures.
pub struct Acme {
    live: Arc<LiveCerts>,
    challenges: Arc<Challenges>,
    metrics: AcmeMetrics,
    /// Accounts in use, by credentials file and trusted root.
    accounts: Mutex<HashMap<AccountKey, Arc<Account>>>,
    /// Failed orders in a row and the time of the next try, by server.
    failures: Mutex<HashMap<String, (u32, OffsetDateTime)>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").finish_non_exhaustive()
    }
}

/// An account's credentials file and the root trusted for its CA.
type AccountKey = (PathBuf, Option<PathBuf>);

/// The soonest of two optional times.
fn soonest(a: Option<OffsetDateTime>, b: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Acme {
    /// Orders for the servers `live` publishes, answering challenges
    /// through `challenges`.
    pub fn new(live: Arc<LiveCerts>, challenges: Arc<Challenges>, metrics: AcmeMetrics) -> Self {
        Self {
            live,
            challenges,
            metrics,
            accounts: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    async fn account(&self, server: &AcmeServer) -> Result<Arc<Account>, AcmeError> {
        let key = (
            server.state.account(&server.directory),
            server.ca_root.clone(),
        );
        let cached = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(account) = cached {
            return Ok(account);
        }
        let account = client::account(server).await?;
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, account.clone());
        Ok(account)
    }

    /// Checks what the CA sent and stores it: key first, then the chain,
    /// then the names, each replaced whole.
    fn store(server: &AcmeServer, issued: &order::Issued) -> Result<CertifiedKey, AcmeError> {
        let unusable = |e: &dyn std::fmt::Display| {
            AcmeError::Refused(format!("the CA's certificate is not usable: {e}"))
        };
        let chain = CertificateDer::pem_slice_iter(issued.chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unusable(&e))?;
        let key = PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).map_err(|e| unusable(&e))?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| unusable(&e))?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| unusable(&e))?;
        let write = |path: &PathBuf, bytes: &[u8], mode| {
            disk::write_atomic(path, bytes, mode).map_err(|source| AcmeError::Io {
                path: path.clone(),
                source,
            })
        };
        write(&server.key_file, issued.key.as_bytes(), 0o600)?;
        write(&server.cert_file, issued.chain.as_bytes(), 0o644)?;
        write(
            &server.names_file(),
            format!("{}\n", server.names.join("\n")).as_bytes(),
            0o644,
        )?;
        Ok(certified)
    }

    /// Orders for one server whose certificate is missing or due.
    async fn order(
        &self,
        server: &AcmeServer,
        replaces: Option<instant_acme::CertificateIdentifier<'static>>,
    ) -> Result<CertifiedKey, AcmeError> {
        let account = self.account(server).await?;
        let issued = order::place(&account, server, &self.challenges, replaces).await?;
        Self::store(server, &issued)
    }

    /// One run; see the module doc.
    async fn run(&self) -> AcmeRun {
        let now = OffsetDateTime::now_utc();
        let mut next = None;
        let mut issued = Vec::new();
        for server in self.live.acme_servers() {
            let name = server.label().to_owned();
            let retry = self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .map(|(_, at)| *at);
            if let Some(at) = retry
                && at > now
            {
                next = soonest(next, at);
                continue;
            }
            let renewal = match server.stored() {
                Some(key) => {
                    let account = match server.renew_before {
                        Some(_) => None,
                        None => self.account(&server).await.ok(),
                    };
                    let renewal =
                        renew::when(account.as_deref(), &key.cert[0], server.renew_before).await;
                    if renewal.at > now {
                        next = soonest(next, renewal.at);
                        if let Some(at) = renewal.recheck {
                            next = soonest(next, at);
                        }
                        continue;
                    }
                    tracing::info!(server = %name, "ACME certificate due for renewal; ordering");
                    Some(renewal)
                }
                None => {
                    tracing::info!(server = %name, "no ACME certificate for these names yet; ordering");
                    None
                }
            };
            match self.order(&server, renewal.and_then(|r| r.replaces)).await {
                Ok(key) => {
                    self.failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&name);
                    self.metrics.order(true);
                    let end = files::not_after(&key.cert[0]);
                    tracing::info!(server = %name, not_after = ?end, "ACME certificate issued");
                    if let Some(at) = renew::by_lifetime(&key.cert[0], server.renew_before) {
                        if at <= now {
                            tracing::warn!(server = %name, "`renew_before` is longer than the CA's certificates live: every run orders again (a public CA will rate-limit this)");
                        }
                        next = soonest(next, at.min(now + renew::ARI_RECHECK));
                    }
                    issued.push(name);
                }
                Err(error) => {
                    let failures = {
                        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                        let failures = map.get(&name).map_or(0, |(n, _)| *n) + 1;
                        let at = now + renew::backoff(failures);
                        map.insert(name.clone(), (failures, at));
                        next = soonest(next, at);
                        failures
                    };
                    self.metrics.order(false);
                    tracing::error!(
                        server = %name,
                        error = %with_causes(&error),
                        failures,
                        retry_in = ?renew::backoff(failures),
                        "ACME order failed; the server keeps its certificate"
                    );
                }
            }
        }
        let next = next.map(|at| {
            let wait = (at - OffsetDateTime::now_utc()).max(time::Duration::SECOND);
            // Timers this long are re-armed by the next run anyway.
            Duration::try_from(wait)
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(24 * 60 * 60))
        });
        AcmeRun { issued, next }
    }
}

/// An error and its causes, `a: b: c` (instant-acme's HTTP errors say
/// "client error (Connect)" and keep the reason, e.g. "connection
/// refused", in their sources).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// The ACME actor's side of [`Acme`].
#[derive(Debug, Clone)]
pub struct AcmeSource(pub Arc<Acme>);

impl Authority for AcmeSource {
    fn run(&self) -> BoxFuture<'static, AcmeRun> {
        let acme = self.0.clone();
        Box::pin(async move { acme.run().await })
    }
}
