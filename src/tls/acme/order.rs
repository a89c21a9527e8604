//! One ACME order, start to end: the order for the server's names, a
//! challenge answered for each pending authorization (published in
//! [`Challenges`] for the request path to serve, taken down when the order
//! ends), finalization with a new key, and the chain.

use std::sync::Arc;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};

use super::{AcmeError, AcmeServer, Challenges, standin};
use crate::config::schema::AcmeChallenge;

/// A new certificate: the chain and its private key, PEM.
pub struct Issued {
    /// The chain, the server's certificate first.
    pub chain: String,
    /// Its key.
    pub key: String,
}

/// Orders a certificate for `server`'s names, replacing `replaces` when
/// the CA said when to renew it (ARI).
pub async fn place(
    account: &Account,
    server: &AcmeServer,
    challenges: &Arc<Challenges>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    let ids: Vec<Identifier> = server
        .names
        .iter()
        .map(|n| Identifier::Dns(n.clone()))
        .collect();
    let mut new = NewOrder::new(&ids);
    if let Some(replaces) = replaces {
        new = new.replaces(replaces);
    }
    let mut order = account.new_order(&new).await?;
    let kind = match server.challenge {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    // Held until the order ends: the CA may validate more than once.
    let mut published = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Authorized by an earlier order (the CA reuses them).
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Refused(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )));
            }
        }
        let name = authz.identifier().to_string();
        let mut challenge =
            authz
                .challenge(kind.clone())
                .ok_or_else(|| AcmeError::NoChallenge {
                    kind: format!("{kind:?}"),
                    name: name.clone(),
                })?;
        let answer = challenge.key_authorization();
        published.push(match server.challenge {
            AcmeChallenge::Http01 => {
                challenges.publish_http01(challenge.token.clone(), answer.as_str().to_owned())
            }
            AcmeChallenge::TlsAlpn01 => {
                let cert = standin::tls_alpn01(&name, answer.digest().as_ref())?;
                challenges.publish_tls_alpn01(&name, Arc::new(cert))
            }
        });
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::new().timeout(std::time::Duration::from_secs(60));
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Refused(format!(
            "the order ended {status:?} (a challenge failed: can the CA reach this server at {}?)",
            server.names.join(", ")
        )));
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&retries).await?;
    drop(published);
    Ok(Issued { chain, key })
}
