//! The core middleware a route can list in `config.ron`.

pub mod compress;
pub mod error_pages;
pub mod expires;
mod require_header;
mod set_headers;

pub use require_header::RequireHeader;
pub use set_headers::{AddHeaders, SetHeaders};
