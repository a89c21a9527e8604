//! The `admin` section, checked: where the admin API listens, the token
//! its requests must present (read from a file or the environment), and
//! the host names it answers to.

use std::{net::SocketAddr, path::Path};

use super::{
    locate::{Anchor, CompileError, err},
    schema::Config,
};

/// The admin section of the config, checked, with its token read.
#[derive(Debug, Clone)]
pub struct AdminSpec {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The bearer token requests must present, if any.
    pub token: Option<String>,
    /// Host names it answers to besides its own address, lowercased:
    /// `name` (any port) or `name:port`.
    pub allowed_hosts: Vec<String>,
}

/// Checks the admin section and reads its token.
pub(super) fn compile_admin(cfg: &Config, base: &Path) -> Result<Option<AdminSpec>, CompileError> {
    let Some(admin) = &cfg.admin else {
        return Ok(None);
    };
    let anchor = Anchor::Key {
        key: "admin",
        nth: 0,
    };
    let token = match (&admin.token_file, &admin.token_env) {
        (Some(_), Some(_)) => {
            return err(
                anchor,
                "the admin API takes `token_file` or `token_env`, not both",
            );
        }
        (Some(file), None) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| CompileError {
                message: format!("admin `token_file` {}: {e}", path.display()),
                anchor: Anchor::str(&file.to_string_lossy()),
            })?;
            Some(text.trim().to_owned())
        }
        (None, Some(var)) => Some(std::env::var(var).map_err(|_| CompileError {
            message: format!("admin `token_env`: the environment variable `{var}` is not set"),
            anchor: Anchor::str(var),
        })?),
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        return err(anchor, "the admin token is empty");
    }
    if token.is_none() && !admin.listen.ip().is_loopback() {
        return err(
            anchor,
            format!(
                "the admin API on {} (not loopback) needs a token (expected `token_file` or `token_env`)",
                admin.listen
            ),
        );
    }
    let mut allowed_hosts = Vec::with_capacity(admin.allowed_hosts.len());
    for name in &admin.allowed_hosts {
        // A name as a browser sends it in `Host`: no scheme, no path.
        if name.parse::<http::uri::Authority>().is_err() || name.contains('@') {
            return err(
                Anchor::str(name),
                format!(
                    "admin `allowed_hosts`: `{name}` is not a host name (expected `name` or `name:port`, without a scheme)"
                ),
            );
        }
        allowed_hosts.push(name.to_ascii_lowercase());
    }
    Ok(Some(AdminSpec {
        listen: admin.listen,
        token,
        allowed_hosts,
    }))
}
