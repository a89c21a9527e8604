//! Logs and metrics: the access log, the error/debug log set-up, and the
//! HTTP series.

pub(crate) mod access_log;
pub mod logging;
pub(crate) mod metrics;
