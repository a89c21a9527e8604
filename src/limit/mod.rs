//! Rate limiting (nginx `limit_req`).
//!
//! | file          | owns |
//! |---------------|------|
//! | `gcra.rs`     | [`Gcra`]: per-key arrival times in governor's store; a request may reserve a place and wait, which governor's own check cannot |
//! | `zone.rs`     | [`Zone`]: a rate, what it keys by, a key cap with an overflow bucket, its series |
//! | `rule.rs`     | [`Limit`]: a zone as a route applies it (burst, delay, dry run, status), [`check`], and [`ModuleKey`], the key a module chose for a request |
//! | `registry.rs` | [`Zones`]: the zones in force, kept across reloads that keep them, swept by the `limits` actor |
//!
//! Zones keyed by [`ModuleKey`] are checked after the route's module
//! filters, by `pipeline::after_filters`.
//!
//! The admin API also uses [`Gcra`] to slow down token guessing
//! (`admin/guard.rs`).

pub mod gcra;
mod registry;
mod rule;
mod zone;

pub use gcra::{Decision, Gcra};
pub use registry::Zones;
pub use rule::{Limit, ModuleKey, Terms, Verdict, check, check_keyed};
pub use zone::{Key, KeyKind, Zone, ZoneParams};
