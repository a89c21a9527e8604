//! `Process` isolation (P2.9, P7.4): a native module in a child process.
//!
//! - [`wire`]: the frames (postcard in a length-delimited codec).
//! - [`client`]: the server's side: spawn, multiplex, timeouts, 502/504.
//! - [`child`]: `troupe module-host`, the child's side.

pub mod child;
pub mod client;
mod instance;
pub mod wire;
