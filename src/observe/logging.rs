//! Error and debug logging through `tracing`, and the access-log sink.

use std::{
    fs::OpenOptions,
    io::{self, IsTerminal},
    path::Path,
};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use super::access_log::AccessLog;
use crate::config::schema::{AccessTarget, Log};

/// Installs the error log on stderr. `RUST_LOG`, when set, wins over the
/// config's level. Safe to call twice (the second call does nothing).
pub fn init_error_log(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Opens the access log the config asks for. The guard flushes on drop:
/// keep it until the server has stopped.
pub fn open_access_log(
    log: &Log,
    base: &Path,
) -> io::Result<(Option<AccessLog>, Option<WorkerGuard>)> {
    let builder = || NonBlockingBuilder::default().lossy(false);
    let (writer, guard) = match &log.access {
        AccessTarget::Off => return Ok((None, None)),
        AccessTarget::Stdout => builder().finish(io::stdout()),
        AccessTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(base.join(path))?;
            builder().finish(file)
        }
    };
    Ok((Some(AccessLog::new(log.format, writer)), Some(guard)))
}
