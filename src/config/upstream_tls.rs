//! A group's `tls`, `protocol` and `pool.max_streams` → its
//! [`Transport`]: the CA and client certificate files read and checked,
//! and the rustls `ClientConfig` built, once, at config load.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::Path,
    sync::Arc,
};

use rustls::pki_types::ServerName;

use super::{
    locate::{Anchor, CompileError, err},
    schema::{ProtocolSpec, UpstreamSpec},
};
use crate::{
    proxy::transport::{Protocol, TlsTo, Transport},
    tls::{files, roots_of, system_roots, upstream_client},
};

/// ALPN offered for each protocol, most preferred first.
const H1: &[&[u8]] = &[b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];
const AUTO: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Group `name`'s transport; relative paths start at `base`.
pub(super) fn compile_transport(
    name: &str,
    spec: &UpstreamSpec,
    base: &Path,
) -> Result<Transport, CompileError> {
    let at = |key: &'static str| Anchor::KeyAfter {
        after: Box::new(Anchor::str(name)),
        key,
    };
    let max_streams = spec.pool.max_streams;
    if !(1..=1000).contains(&max_streams) {
        return err(
            at("max_streams"),
            format!("upstream `{name}`: pool max_streams is {max_streams} (expected 1 to 1000)"),
        );
    }
    let protocol = match spec.protocol {
        ProtocolSpec::Http1 => Protocol::Http1,
        ProtocolSpec::Http2 => Protocol::Http2,
        ProtocolSpec::Auto => Protocol::Auto,
    };
    let mut hasher = DefaultHasher::new();
    (&spec.tls, spec.protocol, max_streams).hash(&mut hasher);
    let id = hasher.finish();
    let Some(tls) = &spec.tls else {
        if protocol == Protocol::Auto {
            return err(
                at("protocol"),
                format!(
                    "upstream `{name}`: protocol `Auto` chooses by ALPN, which needs TLS (expected `tls: (…)` on the group, or `Http1` / `Http2`)"
                ),
            );
        }
        return Ok(Transport {
            tls: None,
            protocol,
            max_streams,
            id,
        });
    };
    let file_err = |path: &Path, e: files::FileError| CompileError {
        message: format!("upstream `{name}`: {e}"),
        anchor: Anchor::str(&path.to_string_lossy()),
    };
    let roots = match &tls.ca {
        None => system_roots(),
        Some(ca) => {
            let certs = files::chain(&base.join(ca)).map_err(|e| file_err(ca, e))?;
            Arc::new(roots_of(certs).map_err(|e| CompileError {
                message: format!(
                    "upstream `{name}`: {} is not a usable CA: {e}",
                    ca.display()
                ),
                anchor: Anchor::str(&ca.to_string_lossy()),
            })?)
        }
    };
    let client_auth = match (&tls.client_cert, &tls.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((
            files::chain(&base.join(cert)).map_err(|e| file_err(cert, e))?,
            files::key(&base.join(key)).map_err(|e| file_err(key, e))?,
        )),
        (Some(_), None) => {
            return err(
                at("client_cert"),
                format!(
                    "upstream `{name}`: `client_cert` without `client_key` (expected both PEM files, or neither)"
                ),
            );
        }
        (None, Some(_)) => {
            return err(
                at("client_key"),
                format!(
                    "upstream `{name}`: `client_key` without `client_cert` (expected both PEM files, or neither)"
                ),
            );
        }
    };
    let server_name = match &tls.server_name {
        None => None,
        Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| CompileError {
            message: format!(
                "upstream `{name}`: server_name `{n}` is not a DNS name or IP address (expected e.g. `api.example.com`)"
            ),
            anchor: Anchor::str(n),
        })?),
    };
    let alpn = match protocol {
        Protocol::Http1 => H1,
        Protocol::Http2 => H2,
        Protocol::Auto => AUTO,
    };
    let config = upstream_client(roots, client_auth, alpn).map_err(|e| CompileError {
        message: format!("upstream `{name}`: its TLS settings are refused: {e}"),
        anchor: at("tls"),
    })?;
    Ok(Transport {
        tls: Some(TlsTo {
            config: Arc::new(config),
            server_name,
        }),
        protocol,
        max_streams,
        id,
    })
}
