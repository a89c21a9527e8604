//! Error and debug logging through `tracing`, and the access-log sink.

use std::{
    fs::{File, OpenOptions},
    io::{self, IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use super::access_log::AccessLog;
use crate::config::schema::{AccessTarget, Log};

/// Installs the error log on stderr. `RUST_LOG`, when set, wins over the
/// config's level; either way rustls is held to `error` unless the filter
/// says otherwise ([`quiet_rustls`]). Safe to call twice (the second call does nothing).
///
/// Built with the `console` feature (and `RUSTFLAGS="--cfg tokio_unstable"`),
/// it also serves tokio-console on 127.0.0.1:6669 (the console's own
/// `TOKIO_CONSOLE_*` variables change that); the error log's level does
/// not filter what the console sees.
pub fn init_error_log(level: &str) {
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| level.to_owned());
    let filter = EnvFilter::try_new(quiet_rustls(&directives))
        .or_else(|_| EnvFilter::try_new(quiet_rustls(level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let errors = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter);
    let registry = tracing_subscriber::registry().with(errors);
    #[cfg(feature = "console")]
    let registry = registry.with(console_subscriber::spawn());
    let _ = registry.try_init();
}

/// rustls warns about what a client sent (an IP address as the SNI name,
/// which wrk and many scripts send; the alert it answers a broken
/// handshake with) once per connection. That is the client's business,
/// and a client must not be able to fill the error log or spend the
/// server's time writing it, so rustls speaks only at `error` unless the
/// filter asks for debug or trace, or names rustls itself.
fn quiet_rustls(directives: &str) -> String {
    let verbose = matches!(directives.trim(), "debug" | "trace");
    if verbose || directives.contains("rustls") {
        directives.to_owned()
    } else {
        format!("{directives},rustls=error")
    }
}

/// The sinks that write to files, which SIGUSR1 reopens (logrotate moves
/// the file, then signals; later lines go to a new file at the old path).
#[derive(Debug, Default)]
pub struct Logs {
    /// The access log's guard: flushes on drop, so keep it until the
    /// server has stopped.
    pub guard: Option<WorkerGuard>,
    file: Option<LogFile>,
}

impl Logs {
    /// Reopens every log file at its path.
    pub fn reopen(&self) -> io::Result<()> {
        match &self.file {
            Some(file) => file.reopen(),
            None => Ok(()),
        }
    }
}

/// An append-only file that can be reopened at its path. Only the access
/// log's writer thread and a reopen take the lock; requests hand lines to
/// that thread through a channel.
#[derive(Clone, Debug)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: PathBuf) -> io::Result<Self> {
        let file = append(&path)?;
        Ok(Self {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let fresh = append(&self.path)?;
        let mut file = self
            .file
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        let _ = file.flush();
        *file = fresh;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Err(io::Error::other("log file lock poisoned")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.lock() {
            Ok(mut f) => f.flush(),
            Err(_) => Err(io::Error::other("log file lock poisoned")),
        }
    }
}

/// Opens the access log the config asks for.
pub fn open_access_log(log: &Log, base: &Path) -> io::Result<(Option<AccessLog>, Logs)> {
    let builder = || NonBlockingBuilder::default().lossy(false);
    let (writer, guard, file) = match &log.access {
        AccessTarget::Off => return Ok((None, Logs::default())),
        AccessTarget::Stdout => {
            let (writer, guard) = builder().finish(io::stdout());
            (writer, guard, None)
        }
        AccessTarget::File(path) => {
            let file = LogFile::open(base.join(path))?;
            let (writer, guard) = builder().finish(file.clone());
            (writer, guard, Some(file))
        }
    };
    Ok((
        Some(AccessLog::new(log.format, writer)),
        Logs {
            guard: Some(guard),
            file,
        },
    ))
}
