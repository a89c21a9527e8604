//! When a certificate is renewed, and how long a failed order waits.
//!
//! In order of precedence: `renew_before` from the config (that long
//! before expiry); the window the CA suggests (ARI, RFC 9773: its middle,
//! so a CA that moves the window earlier, e.g. for a revocation, is
//! followed at the next check); two thirds of the lifetime, as Let's
//! Encrypt advises (a 90-day certificate renews with 30 days left).

use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::tls::files;

/// The first retry after a failed order; it doubles per failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);
/// The longest wait between retries.
pub const LAST_RETRY: Duration = Duration::from_secs(6 * 60 * 60);
/// How long to wait before asking the CA about its window again, at most.
pub const ARI_RECHECK: Duration = Duration::from_secs(6 * 60 * 60);

/// When to renew, and whether the CA said it (the new order then
/// `replaces` the old certificate).
pub struct Renewal {
    /// Renew at this time (now or in the past: renew now).
    pub at: OffsetDateTime,
    /// ARI's identifier of the certificate, when the CA chose the time.
    pub replaces: Option<CertificateIdentifier<'static>>,
    /// Ask the CA again by then (ARI's Retry-After).
    pub recheck: Option<OffsetDateTime>,
}

/// Two thirds into the certificate's lifetime, or `renew_before` its end;
/// `None` if its dates cannot be read (renew now).
pub fn by_lifetime(
    cert: &CertificateDer<'_>,
    renew_before: Option<Duration>,
) -> Option<OffsetDateTime> {
    let (start, end) = files::validity(cert)?;
    Some(match renew_before {
        Some(before) => end - before,
        None => start + (end - start) * 2 / 3,
    })
}

/// When to renew `cert`; see the module doc.
pub async fn when(
    account: Option<&Account>,
    cert: &CertificateDer<'_>,
    renew_before: Option<Duration>,
) -> Renewal {
    let now = OffsetDateTime::now_utc();
    let fallback = Renewal {
        at: by_lifetime(cert, renew_before).unwrap_or(now),
        replaces: None,
        recheck: None,
    };
    if renew_before.is_some() {
        return fallback;
    }
    let Some(account) = account else {
        return fallback;
    };
    // A certificate without an Authority Key Identifier cannot be named
    // to the CA: fall back.
    let Ok(id) = CertificateIdentifier::try_from(cert) else {
        return fallback;
    };
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => {
            let window = info.suggested_window;
            Renewal {
                at: window.start + (window.end - window.start) / 2,
                replaces: Some(id.into_owned()),
                recheck: Some(now + retry_after.min(ARI_RECHECK)),
            }
        }
        Err(instant_acme::Error::Unsupported(_)) => fallback,
        Err(error) => {
            tracing::debug!(%error, "ACME renewal information unavailable; renewing at two thirds of the lifetime");
            fallback
        }
    }
}

/// The wait after `failures` failed orders in a row (at least one).
pub fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    doubled.min(LAST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_two_thirds_in_or_renew_before_the_end() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        params.not_before = start;
        params.not_after = start + time::Duration::days(90);
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            by_lifetime(cert.der(), None),
            Some(start + time::Duration::days(60))
        );
        assert_eq!(
            by_lifetime(cert.der(), Some(Duration::from_secs(10 * 86_400))),
            Some(start + time::Duration::days(80))
        );
    }

    /// A CA that speaks just enough ACME to register an account and
    /// suggest a renewal window (ARI) for any certificate.
    struct AriCa {
        window: (OffsetDateTime, OffsetDateTime),
    }

    impl instant_acme::HttpClient for AriCa {
        fn request(
            &self,
            req: http::Request<instant_acme::BodyWrapper<bytes::Bytes>>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                    > + Send,
            >,
        > {
            let rfc3339 = &time::format_description::well_known::Rfc3339;
            let (status, body, extra) = match req.uri().path() {
                "/dir" => (
                    200,
                    serde_json::json!({
                        "newNonce": "https://ca.test/nonce",
                        "newAccount": "https://ca.test/account",
                        "newOrder": "https://ca.test/order",
                        "renewalInfo": "https://ca.test/ari",
                    })
                    .to_string(),
                    None,
                ),
                "/nonce" => (200, String::new(), None),
                "/account" => (
                    201,
                    "{}".to_owned(),
                    Some(("location", "https://ca.test/acct/1")),
                ),
                path if path.starts_with("/ari/") => (
                    200,
                    serde_json::json!({"suggestedWindow": {
                        "start": self.window.0.format(rfc3339).expect("date"),
                        "end": self.window.1.format(rfc3339).expect("date"),
                    }})
                    .to_string(),
                    Some(("retry-after", "21600")),
                ),
                other => (404, format!("{{\"detail\": \"{other}\"}}"), None),
            };
            let mut resp = http::Response::builder()
                .status(status)
                .header("replay-nonce", "nonce");
            if let Some((name, value)) = extra {
                resp = resp.header(name, value);
            }
            let resp = resp
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .expect("response");
            Box::pin(async move { Ok(instant_acme::BytesResponse::from(resp)) })
        }
    }

    #[tokio::test]
    async fn a_ca_with_ari_chooses_the_time_and_the_order_replaces_the_certificate() {
        // ARI names a certificate by its issuer's key identifier: one
        // issued by a CA, with the extension.
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("key"))
            .expect("CA");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&rcgen::KeyPair::generate().expect("key"), &ca)
            .expect("cert");
        let start = time::macros::datetime!(2030-01-01 00:00 UTC);
        let ca = AriCa {
            window: (start, start + time::Duration::hours(2)),
        };
        let (account, _) = Account::builder_with_http(Box::new(ca))
            .create(
                &instant_acme::NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                "https://ca.test/dir".into(),
                None,
            )
            .await
            .expect("account");
        let renewal = when(Some(&account), cert.der(), None).await;
        assert_eq!(renewal.at, start + time::Duration::hours(1));
        assert!(renewal.replaces.is_some());
        let recheck = renewal.recheck.expect("recheck") - OffsetDateTime::now_utc();
        assert!(recheck > time::Duration::hours(5) && recheck <= time::Duration::hours(6));
        // `renew_before` in the config wins over the CA.
        let fixed = when(Some(&account), cert.der(), Some(Duration::from_secs(60))).await;
        assert!(fixed.replaces.is_none());
    }

    #[test]
    fn retries_double_up_to_a_cap() {
        assert_eq!(backoff(1), FIRST_RETRY);
        assert_eq!(backoff(2), FIRST_RETRY * 2);
        assert_eq!(backoff(3), FIRST_RETRY * 4);
        assert_eq!(backoff(40), LAST_RETRY);
    }
}
