//! [`LiveCerts`]: the certificates in force, server by server, and how
//! they are read again without a restart.
//!
//! Two writers, one at a time each: a config reload installs its
//! generation's [`Certs`] ([`LiveCerts::install`], from
//! `Reconfigure::installed`), and the certificate actor
//! (`troupe_actors::certs`) asks for the files to be read again
//! ([`Certificates::reload`]: a watched file changed, SIGHUP, `POST
//! /tls/reload`). A reload reads and checks every server's files off the
//! runtime (chain parses, key matches, not expired; the client CA, for a
//! server that asks for client certificates, parses and makes a
//! verifier), keeps the old certificate and CA of a server whose files
//! are refused (the file and the reason are logged and shown by `GET
//! /tls`), and publishes the rest with `Tls::publish`: new handshakes get
//! them, open connections keep theirs, and the `ServerConfig`s stay, so
//! sessions resume across the swap. The exception is a server whose client
//! CA changed: it gets a new `ServerConfig`, so no session made under the
//! old CA resumes (see `Tls::publish`).

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use serde::Serialize;
use time::OffsetDateTime;
use troupe_actors::{BoxFuture, Certificates};

use super::{Certs, Tls, certs::ClientCa, files};
use crate::observe::metrics::CertMetrics;

/// The certificates in force and how their last reload went.
pub struct LiveCerts {
    tls: Arc<Tls>,
    book: Mutex<Book>,
    metrics: CertMetrics,
}

impl std::fmt::Debug for LiveCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCerts").finish_non_exhaustive()
    }
}

/// What is published, and each server's last error.
#[derive(Default)]
struct Book {
    /// Counts installs: a reload that read files under an older config
    /// is dropped (the config reload read them itself).
    epoch: u64,
    certs: Certs,
    /// One per server of `certs`.
    errors: Vec<Option<String>>,
    /// When the files were last read, by whom.
    last: Option<(SystemTime, &'static str)>,
}

/// One TLS server's certificate, as `GET /tls` shows it.
#[derive(Debug, Serialize)]
pub struct CertStatus {
    /// The server's names.
    pub names: Vec<String>,
    /// Its certificate file.
    pub cert: PathBuf,
    /// Its key file.
    pub key: PathBuf,
    /// The CA file client certificates are checked against, if it asks
    /// for them.
    pub client_ca: Option<PathBuf>,
    /// The served certificate's not-after, RFC 3339.
    pub not_after: Option<String>,
    /// Days until then (fractional; negative once expired).
    pub days_left: Option<f64>,
    /// Why the last reload refused its files; `None` if it took them.
    pub last_error: Option<String>,
    /// The ACME CA's directory URL, when the certificate is ordered.
    pub acme: Option<String>,
}

/// Days from now until `cert`'s not-after.
fn days_left(end: OffsetDateTime) -> f64 {
    (end - OffsetDateTime::now_utc()).as_seconds_f64() / 86_400.0
}

impl LiveCerts {
    /// Over the acceptor the certificates are published to.
    pub fn new(tls: Arc<Tls>, metrics: CertMetrics) -> Self {
        Self {
            tls,
            book: Mutex::default(),
            metrics,
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a config's certificates (read and checked as it was
    /// compiled): at start-up and after each config reload.
    pub fn install(&self, certs: &Certs) -> Result<(), rustls::Error> {
        let mut book = self.book();
        let mut certs = certs.clone();
        // The config compiled a new verifier for every client CA. Where a
        // server's CA holds what it held, keep the verifier in force:
        // `Tls::publish` then keeps the server's ServerConfig, and with it
        // the sessions, as it does for a server without client auth.
        for server in &mut certs.servers {
            let Some(ca) = server.client_ca.as_mut() else {
                continue;
            };
            let same = book.certs.servers.iter().find_map(|old| {
                let old_ca = old.client_ca.as_ref()?;
                (old.names == server.names && old_ca.roots == ca.roots).then_some(old_ca)
            });
            if let Some(old) = same {
                ca.verifier = old.verifier.clone();
            }
        }
        self.tls.publish(&certs)?;
        book.epoch += 1;
        book.certs = certs;
        book.errors = vec![None; book.certs.servers.len()];
        self.set_expiry(&book.certs);
        Ok(())
    }

    /// Each server's certificate, its expiry and last error.
    pub fn status(&self) -> Vec<CertStatus> {
        let book = self.book();
        book.certs
            .servers
            .iter()
            .zip(&book.errors)
            .map(|(server, error)| {
                let end = server.key.cert.first().and_then(files::not_after);
                CertStatus {
                    names: server.names.clone(),
                    cert: server.cert_file.clone(),
                    key: server.key_file.clone(),
                    client_ca: server.client_ca.as_ref().map(|ca| ca.file.clone()),
                    not_after: end.and_then(|e| {
                        e.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    }),
                    days_left: end.map(days_left),
                    last_error: error.clone(),
                    acme: server.acme.as_ref().map(|a| a.directory.clone()),
                }
            })
            .collect()
    }

    /// The servers whose certificates come from an ACME CA.
    pub fn acme_servers(&self) -> Vec<Arc<super::acme::AcmeServer>> {
        self.book()
            .certs
            .servers
            .iter()
            .filter_map(|s| s.acme.clone())
            .collect()
    }

    /// When the files were last read again, and what asked.
    pub fn last_reload(&self) -> Option<(SystemTime, &'static str)> {
        self.book().last
    }

    fn set_expiry(&self, certs: &Certs) {
        self.metrics.expiry(certs.servers.iter().filter_map(|s| {
            let end = s.key.cert.first().and_then(files::not_after)?;
            Some((s.names.first()?.as_str(), days_left(end)))
        }));
    }

    /// Reads every server's files again (blocking: run off the runtime)
    /// and publishes what changed; see the module doc.
    fn reload_now(&self, trigger: &'static str) -> Result<String, String> {
        let (epoch, files) = {
            let book = self.book();
            let files: Vec<ServerFiles> = book
                .certs
                .servers
                .iter()
                .map(|s| ServerFiles {
                    cert: s.cert_file.clone(),
                    key: s.key_file.clone(),
                    client_ca: s.client_ca.as_ref().map(|ca| ca.file.clone()),
                    acme: s.acme.is_some(),
                })
                .collect();
            (book.epoch, files)
        };
        let read: Vec<_> = files.iter().map(ServerFiles::read).collect();
        let mut book = self.book();
        if book.epoch != epoch {
            return Ok("nothing: a config reload installed its certificates meanwhile".into());
        }
        let (mut changed, mut refused) = (Vec::new(), Vec::new());
        let mut next = book.certs.clone();
        let mut errors = Vec::with_capacity(read.len());
        for (server, result) in next.servers.iter_mut().zip(read) {
            let name = server.names.first().cloned().unwrap_or_default();
            match result {
                None => errors.push(None),
                Some(Ok((key, client_ca))) => {
                    if key.cert != server.key.cert {
                        server.key = Arc::new(key);
                        changed.push(format!("new certificate for {name}"));
                    }
                    // The same CA keeps its verifier, and so the server's
                    // ServerConfig and sessions; a new one replaces both.
                    if let (Some(new), Some(old)) = (client_ca, server.client_ca.as_mut())
                        && new.roots != old.roots
                    {
                        *old = new;
                        changed.push(format!("new client CA for {name}"));
                    }
                    errors.push(None);
                }
                Some(Err(error)) => {
                    tracing::error!(server = %name, %error, "certificate files refused; the server keeps its old certificate (and client CA)");
                    refused.push(error.clone());
                    errors.push(Some(error));
                }
            }
        }
        if !changed.is_empty() {
            self.tls
                .publish(&next)
                .map_err(|e| format!("the new certificates could not be published: {e}"))?;
            book.certs = next;
            book.epoch += 1;
        }
        book.errors = errors;
        book.last = Some((SystemTime::now(), trigger));
        self.set_expiry(&book.certs);
        self.metrics.reload(!refused.is_empty());
        if refused.is_empty() {
            Ok(match changed.len() {
                0 => "no certificate changed".into(),
                _ => changed.join(", "),
            })
        } else {
            Err(refused.join("; "))
        }
    }
}

/// The files of one TLS server, as a reload reads them.
struct ServerFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    /// Ordered from an ACME CA: until the first certificate is on disk
    /// the server serves its stand-in, and there is nothing to read.
    acme: bool,
}

impl ServerFiles {
    /// The certificate with its key, and the client CA if the server has
    /// one, each checked; else every file refused and why. The server's
    /// files are taken together or not at all, so a certificate and a CA
    /// replaced together never serve half-applied. `None`: an ACME server
    /// with no certificate yet.
    fn read(&self) -> Option<Result<(rustls::sign::CertifiedKey, Option<ClientCa>), String>> {
        if self.acme && !self.cert.exists() {
            return None;
        }
        let key = files::certified_key(&self.cert, &self.key);
        let ca = self.client_ca.as_deref().map(files::client_ca).transpose();
        Some(match (key, ca) {
            (Ok(key), Ok(ca)) => Ok((key, ca)),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e.to_string()),
            (Err(key), Err(ca)) => Err(format!("{key}; {ca}")),
        })
    }
}

/// The certificate actor's side of [`LiveCerts`].
#[derive(Debug, Clone)]
pub struct CertSource(pub Arc<LiveCerts>);

impl Certificates for CertSource {
    fn watched(&self) -> Vec<PathBuf> {
        let book = self.0.book();
        let mut files: Vec<PathBuf> = book
            .certs
            .servers
            .iter()
            .flat_map(|s| {
                [s.cert_file.clone(), s.key_file.clone()]
                    .into_iter()
                    .chain(s.client_ca.as_ref().map(|ca| ca.file.clone()))
            })
            .collect();
        files.sort();
        files.dedup();
        files
    }

    fn reload(&self, trigger: &'static str) -> BoxFuture<'static, Result<String, String>> {
        let live = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || live.reload_now(trigger))
                .await
                .map_err(|e| e.to_string())?
        })
    }
}
