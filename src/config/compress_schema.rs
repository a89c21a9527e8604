//! `compression:` on a server or a route, and a `Static` route's
//! `precompressed`. The rules are in `docs/compression.md`.

use serde::{Deserialize, Serialize};

/// A content coding, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Algorithm {
    /// zstd (`Content-Encoding: zstd`).
    Zstd,
    /// brotli (`br`).
    Brotli,
    /// gzip.
    Gzip,
}

/// Compression on the fly, for a whole server or one route; a route's own
/// replaces its server's whole (there is no field-by-field merge).
///
/// ```ron
/// compression: (algorithms: [Zstd, Brotli, Gzip], gzip_level: 1, min_length: 256),
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionSpec {
    /// `false` turns it off (a route inside a server that compresses).
    /// Default true.
    pub enabled: bool,
    /// The codings offered, most preferred first: the one sent when the
    /// client accepts several equally. Default `[Zstd, Brotli, Gzip]`.
    pub algorithms: Vec<Algorithm>,
    /// gzip level, 1–9. Default 1, as nginx's `gzip_comp_level`.
    pub gzip_level: GzipLevel,
    /// brotli quality, 0–9. Default 4; 10 and 11 are refused here (11
    /// costs ~60× the CPU of 4): use `troupe precompress` for those.
    pub brotli_level: BrotliLevel,
    /// zstd level, 1–19. Default 3.
    pub zstd_level: ZstdLevel,
    /// Bodies known to be shorter are sent as they are. Default 256.
    pub min_length: u64,
    /// Media types compressed: exact (`application/json`), a whole type
    /// (`text/*`) or a suffix (`application/*+json`); parameters are
    /// ignored. Default: text, JSON, JavaScript, XML, SVG, WASM and a few
    /// font formats (`docs/compression.md`).
    pub types: Option<Vec<String>>,
}

impl Default for CompressionSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            algorithms: vec![Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip],
            gzip_level: GzipLevel(1),
            brotli_level: BrotliLevel(4),
            zstd_level: ZstdLevel(3),
            min_length: 256,
            types: None,
        }
    }
}

macro_rules! level {
    ($name:ident, $what:literal, $lo:literal, $hi:literal, $hint:literal) => {
        #[doc = concat!("A ", $what, " level, checked as it is read: ", stringify!($lo), "–", stringify!($hi), ".")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $name(pub u32);

        impl TryFrom<u32> for $name {
            type Error = String;
            fn try_from(v: u32) -> Result<Self, String> {
                if ($lo..=$hi).contains(&v) {
                    Ok(Self(v))
                } else {
                    Err(format!(
                        concat!("invalid ", $what, " level {} (expected ", stringify!($lo), " to ", stringify!($hi), $hint, ")"),
                        v
                    ))
                }
            }
        }

        impl From<$name> for u32 {
            fn from(l: $name) -> u32 {
                l.0
            }
        }
    };
}

level!(GzipLevel, "gzip", 1, 9, "");
level!(
    BrotliLevel,
    "brotli",
    0,
    9,
    "; 10 and 11 are far too slow on the fly, use `troupe precompress`"
);
level!(ZstdLevel, "zstd", 1, 19, "");
