//! Logs: the access log and the error/debug log set-up.

pub mod access_log;
pub mod logging;
