//! The ACME account: the HTTPS client that talks to the CA (Troupe's
//! crypto provider, the system's roots or the configured `ca_root`), and
//! the account's credentials, made once and kept in the state directory.

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use instant_acme::{Account, AccountCredentials, BodyWrapper, HttpClient, NewAccount};
use rustls::{ClientConfig, RootCertStore};

use super::{AcmeError, AcmeServer, disk};
use crate::tls::{files, server_config::provider};

/// The HTTPS client for a CA. rustls has two providers compiled in, so
/// the one Troupe serves with is named here rather than defaulted.
fn http_client(ca_root: Option<&Path>) -> Result<Box<dyn HttpClient>, AcmeError> {
    let builder = match ca_root {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in files::chain(path)? {
                roots
                    .add(cert)
                    .map_err(|e| AcmeError::Client(format!("{}: {e}", path.display())))?;
            }
            let config = ClientConfig::builder_with_provider(provider().clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| AcmeError::Client(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
        None => HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider().clone())
            .map_err(|e| AcmeError::Client(e.to_string()))?,
    };
    let connector = builder.https_only().enable_http1().enable_http2().build();
    Ok(Box::new(
        Client::builder(TokioExecutor::new()).build::<_, BodyWrapper<Bytes>>(connector),
    ))
}

/// The server's account at its CA: read from the state directory, or
/// registered (and saved, 0600) the first time.
pub async fn account(server: &AcmeServer) -> Result<Arc<Account>, AcmeError> {
    let file = server.state.account(&server.directory);
    let http = http_client(server.ca_root.as_deref())?;
    let builder = Account::builder_with_http(http);
    match std::fs::read(&file) {
        Ok(json) => {
            let credentials: AccountCredentials =
                serde_json::from_slice(&json).map_err(|e| AcmeError::Account {
                    path: file.clone(),
                    reason: e.to_string(),
                })?;
            Ok(Arc::new(builder.from_credentials(credentials).await?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let contact = server.email.as_ref().map(|e| format!("mailto:{e}"));
            let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (account, credentials) = builder
                .create(
                    &NewAccount {
                        contact: &contact,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    server.directory.clone(),
                    None,
                )
                .await?;
            let json = serde_json::to_vec_pretty(&credentials).map_err(|e| AcmeError::Account {
                path: file.clone(),
                reason: e.to_string(),
            })?;
            disk::write_atomic(&file, &json, 0o600).map_err(|source| AcmeError::Io {
                path: file.clone(),
                source,
            })?;
            tracing::info!(directory = %server.directory, file = %file.display(), "ACME account registered");
            Ok(Arc::new(account))
        }
        Err(source) => Err(AcmeError::Io { path: file, source }),
    }
}
