//! Rate limiting: [`gcra::Gcra`], a keyed GCRA that reserves a place for
//! a request that may wait (nginx's `limit_req` without `nodelay`), which
//! governor cannot do: it only answers "now" or "not yet". Used by the
//! admin API to slow down token guessing (`admin/guard.rs`).

pub mod gcra;

pub use gcra::{Decision, Gcra};
