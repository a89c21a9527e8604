//! Logs and metrics: the access log, the error/debug log set-up, and the
//! HTTP series.

pub(crate) mod access_log;
pub(crate) mod log_format;
pub mod logging;
pub(crate) mod metrics;
