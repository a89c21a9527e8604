//! The core handlers, compiled in (P2.2). Optional ones sit behind cargo
//! features: `handler-static` and `handler-redirect`.

#[cfg(feature = "handler-redirect")]
pub mod redirect;
pub mod ret;
pub mod rewrite;
#[cfg(feature = "handler-static")]
pub mod static_files;
pub mod template;
