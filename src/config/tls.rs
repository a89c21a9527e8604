//! The config's TLS: `tls` listen addresses and the servers' `tls`
//! blocks, checked (each certificate file read and parsed, each key
//! matched to its certificate, each client CA loaded; errors name the
//! file and point at its path in the config) and compiled into the
//! generation's [`Certs`] and each server's [`Https`].

use std::{path::Path, sync::Arc};

use http::HeaderValue;

use super::{
    locate::{Anchor, CompileError, err},
    schema::Config,
};
use crate::{
    pipeline::https::Https,
    tls::{
        Certs, ServerCert,
        files::{self, FileError},
    },
};

/// What the TLS parts of a config compile into.
pub(super) struct CompiledTls {
    /// Certificates for the handshake.
    pub certs: Certs,
    /// Each server's HTTPS settings, in file order.
    pub https: Vec<Https>,
}

/// Checks and compiles the TLS parts; `default` is the default server's
/// index (its certificate is served without SNI).
pub(super) fn compile_tls(
    cfg: &Config,
    base: &Path,
    default: usize,
) -> Result<CompiledTls, CompileError> {
    let tls_port = cfg.listen.iter().find(|l| l.tls).map(|l| l.addr.port());
    if tls_port.is_some() && !cfg.servers.iter().any(|s| s.tls.is_some()) {
        return err(
            Anchor::Key {
                key: "listen",
                nth: 0,
            },
            "a `tls` listen address, but no server has a `tls` block (expected `tls: (cert: \"…\", key: \"…\")` on at least one server)",
        );
    }
    let mut certs = Certs::default();
    let mut https = Vec::with_capacity(cfg.servers.len());
    let mut redirects = 0;
    let mut blocks = 0;
    for (i, server) in cfg.servers.iter().enumerate() {
        let Some(spec) = &server.tls else {
            https.push(Https::default());
            continue;
        };
        // An error points at the key (`cert:`, `key:`, `client_ca:`) of
        // this server's `tls` block; the message names the file.
        let nth = blocks;
        blocks += 1;
        let at = |key: &'static str| Anchor::KeyAfter {
            after: Box::new(Anchor::Key { key: "tls", nth }),
            key,
        };
        let file_error = |e: FileError| {
            let anchor = match &e {
                FileError::NoKey { .. } | FileError::BadKey { .. } | FileError::Mismatch { .. } => {
                    at("key")
                }
                _ => at("cert"),
            };
            CompileError {
                message: e.to_string(),
                anchor,
            }
        };
        let (cert_file, key_file) = (base.join(&spec.cert), base.join(&spec.key));
        let key = files::certified_key(&cert_file, &key_file).map_err(file_error)?;
        let client_ca = match &spec.client_ca {
            Some(ca) => Some(files::client_ca(&base.join(ca)).map_err(|e| CompileError {
                message: e.to_string(),
                anchor: at("client_ca"),
            })?),
            None => None,
        };
        let redirect = if spec.redirect_http {
            let anchor = Anchor::Key {
                key: "redirect_http",
                nth: redirects,
            };
            redirects += 1;
            match tls_port {
                Some(port) => Some(port),
                None => {
                    return err(
                        anchor,
                        "`redirect_http` needs a `tls` listen address to send clients to (expected e.g. \"0.0.0.0:443 tls\" in `listen`)",
                    );
                }
            }
        } else {
            None
        };
        let hsts = match &spec.hsts {
            Some(h) => Some(HeaderValue::try_from(h.header()).map_err(|_| CompileError {
                message: "`hsts` does not make a valid header".into(),
                anchor: Anchor::Key {
                    key: "hsts",
                    nth: 0,
                },
            })?),
            None => None,
        };
        https.push(Https { redirect, hsts });
        if i == default {
            certs.default = Some(certs.servers.len());
        }
        certs.servers.push(ServerCert {
            names: server
                .names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            cert_file,
            key_file,
            key: Arc::new(key),
            client_ca,
        });
    }
    // Without a `tls` block on the default server, the first TLS server's
    // certificate answers clients that send no name.
    if certs.default.is_none() && !certs.servers.is_empty() {
        certs.default = Some(0);
    }
    Ok(CompiledTls { certs, https })
}
