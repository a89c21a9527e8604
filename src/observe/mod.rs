//! Logs and metrics: the access log, the error/debug log set-up, and the
//! HTTP series.

pub mod access_log;
pub mod logging;
pub mod metrics;
