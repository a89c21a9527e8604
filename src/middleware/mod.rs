//! The core middleware a route can list in `config.ron`.

pub mod access;
pub mod basic_auth;
pub mod compress;
pub mod cors;
pub mod error_pages;
pub mod expires;
pub mod forward_auth;
mod require_header;
mod set_headers;

pub use require_header::RequireHeader;
pub use set_headers::{AddHeaders, SetHeaders};
