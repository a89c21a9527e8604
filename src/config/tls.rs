//! The config's TLS: `tls` listen addresses and the servers' `tls`
//! blocks, checked (each certificate file read and parsed, each key
//! matched to its certificate, each client CA loaded; errors name the
//! file and point at its path in the config) and compiled into the
//! generation's [`Certs`] and each server's [`Https`].

use std::{path::Path, sync::Arc};

use http::HeaderValue;
use rustls::sign::CertifiedKey;

use super::{
    locate::{Anchor, CompileError, err},
    schema::{Acme, AcmeChallenge, Config},
};
use crate::{
    pipeline::https::Https,
    tls::{
        Certs, ServerCert,
        acme::{AcmeServer, StateDir, self_signed},
        files::{self, FileError},
    },
};

/// Checks a server's `acme` block without contacting the CA (the URL
/// parses, `ca_root` is a usable PEM, the state directory can be made,
/// a listen address can carry the challenge) and picks what it serves
/// first: its certificate on disk if good and for these names, else a
/// self-signed stand-in. `at` points at a key of the `tls` block.
fn compile_acme(
    cfg: &Config,
    base: &Path,
    acme: &Acme,
    names: &[String],
    at: &dyn Fn(&'static str) -> Anchor,
) -> Result<(AcmeServer, CertifiedKey), CompileError> {
    let fail = |key: &'static str, message: String| CompileError {
        message,
        anchor: at(key),
    };
    if names.is_empty() {
        return Err(fail(
            "acme",
            "`acme` certifies the server's `names`, and this server has none (expected e.g. `names: [\"example.com\"]`)".into(),
        ));
    }
    if let Some(bad) = names
        .iter()
        .find(|n| n.starts_with('*') || n.parse::<std::net::IpAddr>().is_ok() || !n.contains('.'))
    {
        return Err(fail(
            "acme",
            format!(
                "`acme` cannot certify `{bad}`: HTTP-01 and TLS-ALPN-01 prove DNS names, not wildcards, addresses or single labels"
            ),
        ));
    }
    match acme.directory.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
        _ => {
            return Err(fail(
                "directory",
                format!(
                    "`{}` is not an https:// URL (expected the CA's directory, e.g. \"https://acme-v02.api.letsencrypt.org/directory\")",
                    acme.directory
                ),
            ));
        }
    }
    let ca_root = match &acme.ca_root {
        Some(path) => {
            let path = base.join(path);
            files::chain(&path).map_err(|e| fail("ca_root", e.to_string()))?;
            Some(path)
        }
        None => None,
    };
    let wanted = match acme.challenge {
        AcmeChallenge::Http01 => false,
        AcmeChallenge::TlsAlpn01 => true,
    };
    if !cfg.listen.iter().any(|l| l.tls == wanted) {
        let (key, message) = if wanted {
            (
                "challenge",
                "`TlsAlpn01` is answered on a `tls` listen address, and there is none (the CA connects to port 443)",
            )
        } else {
            (
                "acme",
                "the `Http01` challenge is answered on a plain-HTTP listen address, and there is none (the CA fetches from port 80; or use `challenge: TlsAlpn01`)",
            )
        };
        return Err(fail(key, message.into()));
    }
    let dir = base.join(acme.state_dir.as_deref().unwrap_or(Path::new("acme")));
    let state_key = if acme.state_dir.is_some() {
        "state_dir"
    } else {
        "acme"
    };
    let cannot_make = |e: std::io::Error| {
        fail(
            state_key,
            format!(
                "{}: cannot make the ACME state directory: {e}",
                dir.display()
            ),
        )
    };
    let state = StateDir::prepare(&dir).map_err(cannot_make)?;
    let (cert_file, key_file) = state.cert_files(&names[0]).map_err(cannot_make)?;
    let server = AcmeServer {
        names: names.to_vec(),
        directory: acme.directory.clone(),
        email: acme.email.clone(),
        ca_root,
        challenge: acme.challenge,
        state,
        renew_before: acme.renew_before,
        cert_file,
        key_file,
    };
    let key = match server.stored() {
        Some(key) => key,
        None => self_signed(names).map_err(|e| fail("acme", e.to_string()))?,
    };
    Ok((server, key))
}

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
    let tls_port = cfg
        .listen
        .iter()
        .find(|l| l.tls)
        .and_then(|l| l.tcp())
        .map(|a| a.port());
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
        let names: Vec<String> = server
            .names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let (cert_file, key_file, key, acme) = match (&spec.cert, &spec.key, &spec.acme) {
            (Some(cert), Some(key), None) => {
                let (cert_file, key_file) = (base.join(cert), base.join(key));
                let key = files::certified_key(&cert_file, &key_file).map_err(file_error)?;
                (cert_file, key_file, key, None)
            }
            (None, None, Some(acme)) => {
                let (server, key) = compile_acme(cfg, base, acme, &names, &at)?;
                (
                    server.cert_file.clone(),
                    server.key_file.clone(),
                    key,
                    Some(Arc::new(server)),
                )
            }
            (_, _, Some(_)) => {
                return err(
                    at("acme"),
                    "`acme` and `cert`/`key` both given: the certificate comes from files or from an ACME CA, not both",
                );
            }
            _ => {
                return err(
                    Anchor::Key { key: "tls", nth },
                    "a `tls` block needs `cert` and `key` (PEM files), or `acme: (directory: \"https://…\")` to get its certificate from an ACME CA",
                );
            }
        };
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
            names,
            cert_file,
            key_file,
            key: Arc::new(key),
            client_ca,
            acme,
        });
    }
    // Without a `tls` block on the default server, the first TLS server's
    // certificate answers clients that send no name.
    if certs.default.is_none() && !certs.servers.is_empty() {
        certs.default = Some(0);
    }
    Ok(CompiledTls { certs, https })
}
