//! Controlling a running server from the command line (`troupe -s`, as
//! nginx's `-s`): the pid file the server writes, and the signals sent
//! through it.
//!
//! | `-s`     | signal                     | what the server does                     |
//! |----------|----------------------------|------------------------------------------|
//! | `reload` | SIGHUP                     | reloads the config (see `crate::reload`), then reads the TLS certificates again (`crate::tls::LiveCerts`) |
//! | `quit`   | SIGQUIT                    | graceful shutdown (connections drain)    |
//! | `stop`   | SIGTERM, SIGTERM after 0.2 s | the second skips the drain: fast shutdown |
//! | `reopen` | SIGUSR1                    | reopens the log files (after logrotate)  |
//!
//! `troupe module reload|enable|disable NAME` goes through the admin API
//! instead ([`module`]), with the config's address and token.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};

use crate::config::{self, ConfigError};

/// What `troupe -s` asks of the running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reload the config.
    Reload,
    /// Graceful shutdown.
    Quit,
    /// Fast shutdown.
    Stop,
    /// Reopen the log files.
    Reopen,
}

/// Why the server could not be signalled.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The config is unreadable or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config names no pid file.
    #[error("{}: no `pid_file` is set, so the running server cannot be found", config.display())]
    NoPidFile {
        /// The config file.
        config: PathBuf,
    },
    /// The pid file is missing or unreadable.
    #[error("{}: cannot read the pid file: {source} (is troupe running?)", path.display())]
    Read {
        /// The pid file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The pid file holds something else.
    #[error("{}: expected a process id, found {found:?}", path.display())]
    NotAPid {
        /// The pid file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
    /// The process is gone (a stale pid file).
    #[error("process {pid} (from {}) is not running", path.display())]
    Gone {
        /// The process id.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// The config has no admin API to talk to.
    #[error("{}: no `admin` section, so there is no admin API to call", config.display())]
    NoAdmin {
        /// The config file.
        config: PathBuf,
    },
    /// The admin API could not be reached or did not answer.
    #[error("admin API at {addr}: {why} (is troupe running?)")]
    Unreachable {
        /// Where it was called.
        addr: std::net::SocketAddr,
        /// Why.
        why: String,
    },
    /// kill(2) failed.
    #[error("cannot signal process {pid}: {source}")]
    Signal {
        /// The process id.
        pid: i32,
        /// Why.
        source: io::Error,
    },
}

/// Sends `what` to the server that `config`'s pid file names.
pub fn send(config: &Path, what: Control) -> Result<(), ControlError> {
    let path = config::pid_file(config)?.ok_or_else(|| ControlError::NoPidFile {
        config: config.to_owned(),
    })?;
    let text = std::fs::read_to_string(&path).map_err(|source| ControlError::Read {
        path: path.clone(),
        source,
    })?;
    let pid = match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => pid,
        _ => {
            return Err(ControlError::NotAPid {
                path,
                found: text.trim().to_owned(),
            });
        }
    };
    let Some(process) = Pid::from_raw(pid) else {
        return Err(ControlError::NotAPid {
            path,
            found: text.trim().to_owned(),
        });
    };
    if test_kill_process(process).is_err() {
        return Err(ControlError::Gone { pid, path });
    }
    let send = |sig| {
        kill_process(process, sig).map_err(|e| ControlError::Signal {
            pid,
            source: e.into(),
        })
    };
    match what {
        Control::Reload => send(Signal::HUP),
        Control::Quit => send(Signal::QUIT),
        Control::Reopen => send(Signal::USR1),
        Control::Stop => {
            send(Signal::TERM)?;
            // Two signals close together may be delivered as one; apart,
            // the second finds the server draining and cuts it short.
            std::thread::sleep(Duration::from_millis(200));
            match kill_process(process, Signal::TERM) {
                // It may already have exited: that is what was asked.
                Err(rustix::io::Errno::SRCH) => Ok(()),
                other => other.map_err(|e| ControlError::Signal {
                    pid,
                    source: e.into(),
                }),
            }
        }
    }
}

/// Calls `POST /modules/{name}/{action}` on the admin API `config` sets
/// up; returns the status and the JSON body.
pub async fn module(
    config: &Path,
    name: &str,
    action: &str,
) -> Result<(http::StatusCode, String), ControlError> {
    use http_body_util::BodyExt as _;

    let admin = config::admin(config)?.ok_or_else(|| ControlError::NoAdmin {
        config: config.to_owned(),
    })?;
    let mut addr = admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let failed = |why: String| ControlError::Unreachable { addr, why };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(conn);
    let mut req = http::Request::post(format!("/modules/{name}/{action}"))
        .header(http::header::HOST, addr.to_string())
        // The admin API takes mutating calls only as JSON (`admin/guard.rs`).
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = &admin.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The pid file of the running server: written at start-up, removed when
/// the server exits (if it still holds this process's id).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id to `path` (through a temporary file and a
    /// rename, so a reader never sees half of it).
    pub fn create(path: PathBuf) -> io::Result<Self> {
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
        std::fs::rename(&tmp, &path)?;
        Ok(Self { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .map(|t| t.trim() == std::process::id().to_string())
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
