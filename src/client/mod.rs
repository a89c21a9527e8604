//! Who the client is: the peer, or, behind the proxies the config trusts,
//! the address they say they forwarded for (nginx's realip module,
//! Caddy's `client_ip`).
//!
//! | file         | owns |
//! |--------------|------|
//! | `trusted.rs` | `trusted_proxies`: the CIDR blocks whose forwarding headers are believed |
//! | `addr.rs`    | [`ClientAddr`]: the right-most untrusted address of `X-Forwarded-For` or `Forwarded` |
//!
//! Rate limits key by it; the proxy uses [`Trusted`] to decide which
//! incoming forwarding headers to keep.

mod addr;
mod trusted;

pub use addr::{ClientAddr, ClientIpHeader};
pub use trusted::Trusted;
