//! The rustls side: the crypto provider and how a `ServerConfig` is built.
//!
//! - Provider: aws-lc-rs, key exchange X25519MLKEM768 (the post-quantum
//!   hybrid) first, then X25519, P-256, P-384. Named here explicitly:
//!   wasmtime-wasi-http enables rustls's `ring` as well, so the process
//!   default is not left for rustls to guess.
//! - Protocols: TLS 1.3 and 1.2 only (rustls offers nothing older, and its
//!   1.2 suites are all ECDHE + AEAD).
//! - ALPN: `h2`, then `http/1.1`.
//! - Cipher suites in the server's order, Mozilla's "intermediate" one:
//!   AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305 (see
//!   [`provider`] for why AES-128 leads).
//! - Resumption: stateless tickets on (`Ticketer`: AES-256 + HMAC, keys
//!   rotated every 6 hours; rustls leaves tickets off by default), and a
//!   session-ID cache of [`SESSION_CACHE`] entries (rustls keeps 256).
//!   0-RTT stays off (replayable).

use std::sync::{Arc, OnceLock};

use rustls::{
    ServerConfig,
    crypto::{CryptoProvider, aws_lc_rs},
    server::{ResolvesServerCert, ServerSessionMemoryCache, danger::ClientCertVerifier},
    version::{TLS12, TLS13},
};

/// Sessions kept for resumption by session ID (TLS 1.2 clients without
/// tickets): about nginx's `ssl_session_cache shared:SSL:10m` (some 40 000
/// sessions); an entry is a few hundred bytes.
pub const SESSION_CACHE: usize = 32 * 1024;

/// The ALPN protocols offered, most preferred first; `acme-tls/1` last,
/// which only an ACME CA validating TLS-ALPN-01 asks for (alone).
const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", super::acme::ACME_TLS_ALPN];

/// The crypto provider every TLS config of the process uses.
pub fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        use aws_lc_rs::{cipher_suite::*, kx_group::*};
        let mut provider = aws_lc_rs::default_provider();
        provider.kx_groups = vec![X25519MLKEM768, X25519, SECP256R1, SECP384R1];
        // The provider lists AES-256-GCM first. Its suites hash with
        // SHA-384, and aws-lc runs SHA-384 in portable code on CPUs that
        // are not Intel's (it uses its vector code only there), so on an
        // AMD EPYC a resumed handshake cost 417 µs with it and 304 µs with
        // AES-128-GCM (whose SHA-256 has the SHA extensions), and a full
        // one 613 against 484 (BENCHMARKS.md, "TLS against nginx").
        // Mozilla's intermediate profile puts AES-128-GCM first too.
        provider.cipher_suites = vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        Arc::new(provider)
    })
}

/// A server config choosing certificates with `resolver`, asking for
/// client certificates when `client_auth` is set. Each config gets its own
/// ticket keys and session cache, so a session made under one client-auth
/// policy never resumes under another.
pub fn build(
    resolver: Arc<dyn ResolvesServerCert>,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<ServerConfig, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(provider().clone())
        .with_protocol_versions(&[&TLS13, &TLS12])?;
    let mut config = match client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Follow the provider's order (above), not the client's (nginx's
    // `ssl_prefer_server_ciphers on`; testssl.sh rates a server without
    // its own order HIGH).
    config.ignore_client_order = true;
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(config)
}
