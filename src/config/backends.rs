//! A group's `backends` → the addresses it sends to: `ip:port` as it is,
//! `host:port` resolved (the system resolver, at config load and at each
//! reload), each address of a name a backend of its own with the name's
//! weight (nginx's `server app.internal:8080`). A name that does not
//! resolve, two entries that reach the same address, or more backends
//! than a group may have, refuse the config at the entry's position.

use std::{
    collections::HashMap,
    net::{SocketAddr, ToSocketAddrs},
    sync::Arc,
};

use rustls::pki_types::ServerName;

use super::{
    locate::{Anchor, CompileError, err},
    schema::BackendSpec,
};
use crate::proxy::balance::MAX_BACKENDS;

/// One backend of a group, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resolved {
    /// Where it is.
    pub addr: SocketAddr,
    /// The name it came from, if the config gave one.
    pub host: Option<Arc<str>>,
    /// Its weight.
    pub weight: u32,
}

/// Group `name`'s backends, resolved with the system's resolver.
pub(super) fn resolve(name: &str, specs: &[BackendSpec]) -> Result<Vec<Resolved>, CompileError> {
    expand(name, specs, |host, port| {
        (host, port).to_socket_addrs().map(Iterator::collect)
    })
}

/// [`resolve`] with `lookup` in place of the resolver.
fn expand(
    name: &str,
    specs: &[BackendSpec],
    lookup: impl Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<Resolved>, CompileError> {
    let mut out: Vec<Resolved> = Vec::new();
    // Which entry each address came from, to name both of a duplicate.
    let mut from: HashMap<SocketAddr, &str> = HashMap::new();
    for spec in specs {
        let at = || Anchor::str(&spec.addr);
        if !(1..=1000).contains(&spec.weight) {
            return err(
                at(),
                format!(
                    "backend {} of upstream `{name}` has weight {} (expected 1 to 1000)",
                    spec.addr, spec.weight
                ),
            );
        }
        let (addrs, host) = match spec.addr.parse::<SocketAddr>() {
            Ok(addr) => (vec![addr], None),
            Err(_) => {
                let (host, port) = split(&spec.addr).ok_or_else(|| CompileError {
                    message: format!(
                        "backend `{}` of upstream `{name}` is not an address (expected `ip:port` or `host:port`, e.g. `10.0.0.5:8080` or `app.internal:8080`)",
                        spec.addr
                    ),
                    anchor: at(),
                })?;
                let addrs = lookup(host, port).map_err(|e| CompileError {
                    message: format!(
                        "backend `{}` of upstream `{name}` does not resolve: {e} (expected a name the system's resolver knows, or `ip:port`)",
                        spec.addr
                    ),
                    anchor: at(),
                })?;
                if addrs.is_empty() {
                    return err(
                        at(),
                        format!(
                            "backend `{}` of upstream `{name}` resolves to no address (expected a name with an A or AAAA record, or `ip:port`)",
                            spec.addr
                        ),
                    );
                }
                (addrs, Some(Arc::<str>::from(host)))
            }
        };
        let mut own = Vec::new();
        for addr in addrs {
            // A resolver may answer an address twice; it is one backend.
            if own.contains(&addr) {
                continue;
            }
            own.push(addr);
            if let Some(first) = from.insert(addr, &spec.addr) {
                let what = if first == spec.addr {
                    format!("lists {addr} twice")
                } else {
                    format!("reaches {addr} twice (`{first}` and `{}`)", spec.addr)
                };
                return err(
                    at(),
                    format!(
                        "upstream `{name}` {what} (expected each backend once; give it a weight instead)"
                    ),
                );
            }
            out.push(Resolved {
                addr,
                host: host.clone(),
                weight: spec.weight,
            });
        }
    }
    if out.is_empty() || out.len() > MAX_BACKENDS {
        let named = if out.len() == specs.len() {
            String::new()
        } else {
            format!(" once its names are resolved ({} listed)", specs.len())
        };
        return err(
            Anchor::str(name),
            format!(
                "upstream `{name}` has {} backends{named} (expected 1 to {MAX_BACKENDS})",
                out.len()
            ),
        );
    }
    Ok(out)
}

/// `host:port` → its parts, when `host` is a DNS name and `port` a port.
fn split(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    // The name goes out as SNI and in `Host`: it must be a DNS name.
    match ServerName::try_from(host).ok()? {
        ServerName::DnsName(_) => Some((host, port)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str, weight: u32) -> BackendSpec {
        BackendSpec {
            addr: addr.into(),
            weight,
        }
    }

    fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match host {
            "app.internal" => Ok(vec![
                ([10, 0, 0, 1], port).into(),
                ([10, 0, 0, 2], port).into(),
                ([10, 0, 0, 1], port).into(),
            ]),
            "empty.internal" => Ok(vec![]),
            _ => Err(std::io::Error::other("no such host")),
        }
    }

    #[test]
    fn a_name_becomes_a_backend_per_address_with_its_weight() {
        let got = expand(
            "app",
            &[spec("app.internal:8080", 3), spec("10.0.0.9:80", 1)],
            lookup,
        )
        .expect("resolved");
        let host: Option<Arc<str>> = Some("app.internal".into());
        assert_eq!(
            got,
            [
                Resolved {
                    addr: ([10, 0, 0, 1], 8080).into(),
                    host: host.clone(),
                    weight: 3
                },
                Resolved {
                    addr: ([10, 0, 0, 2], 8080).into(),
                    host,
                    weight: 3
                },
                Resolved {
                    addr: ([10, 0, 0, 9], 80).into(),
                    host: None,
                    weight: 1
                },
            ]
        );
    }

    #[test]
    fn bad_names_duplicates_and_too_many_are_refused() {
        let msg = |specs: &[BackendSpec]| expand("app", specs, lookup).unwrap_err().message;
        assert!(msg(&[spec("nope.internal:80", 1)]).contains("does not resolve: no such host"));
        assert!(msg(&[spec("empty.internal:80", 1)]).contains("resolves to no address"));
        for bad in [
            "app.internal",
            "app.internal:http",
            ":80",
            "a b:80",
            "[::1]",
        ] {
            assert!(msg(&[spec(bad, 1)]).contains("is not an address"), "{bad}");
        }
        assert!(
            msg(&[spec("app.internal:80", 1), spec("10.0.0.2:80", 1)])
                .contains("reaches 10.0.0.2:80 twice (`app.internal:80` and `10.0.0.2:80`)")
        );
        assert!(
            msg(&[spec("10.0.0.2:80", 1), spec("10.0.0.2:80", 1)])
                .contains("lists 10.0.0.2:80 twice")
        );
        assert!(msg(&[spec("10.0.0.2:80", 0)]).contains("weight 0"));
        let many: Vec<_> = (0..40)
            .map(|i| spec(&format!("app.internal:{}", 8000 + i), 1))
            .collect();
        assert!(msg(&many).contains("has 80 backends once its names are resolved (40 listed)"));
        assert!(msg(&[]).contains("has 0 backends"));
    }
}
