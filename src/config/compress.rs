//! `compression:` → the `Compress` middleware a route runs first.

use std::sync::Arc;

use super::{
    compress_schema::{Algorithm, CompressionSpec},
    locate::{Anchor, CompileError, err},
};
use crate::{
    handler::Middleware,
    middleware::compress::{Compress, Encoding, Levels, Settings, TypeList},
};

/// The coding an algorithm of the config stands for.
pub(super) fn encoding(a: Algorithm) -> Encoding {
    match a {
        Algorithm::Zstd => Encoding::Zstd,
        Algorithm::Brotli => Encoding::Brotli,
        Algorithm::Gzip => Encoding::Gzip,
    }
}

/// The middleware for a server's or route's setting; `None` when it is
/// absent or turned off.
pub(super) fn compile(
    spec: Option<&CompressionSpec>,
) -> Result<Option<Arc<dyn Middleware>>, CompileError> {
    let Some(spec) = spec.filter(|s| s.enabled) else {
        return Ok(None);
    };
    let mut offered: Vec<Encoding> = Vec::with_capacity(3);
    for &a in &spec.algorithms {
        if !offered.contains(&encoding(a)) {
            offered.push(encoding(a));
        }
    }
    if offered.is_empty() {
        return err(
            Anchor::Key {
                key: "algorithms",
                nth: 0,
            },
            "`algorithms` is empty (expected at least one of Zstd, Brotli, Gzip, or `enabled: false`)",
        );
    }
    let types = match &spec.types {
        Some(list) => TypeList::new(list).map_err(|bad| CompileError {
            message: format!(
                "invalid media type `{bad}` in `types` (expected `type/subtype`, `type/*` or `type/*+suffix`)"
            ),
            anchor: Anchor::str(&bad),
        })?,
        None => TypeList::default_list(),
    };
    let settings = Settings {
        offered,
        levels: Levels {
            gzip: spec.gzip_level.0,
            brotli: spec.brotli_level.0,
            zstd: spec.zstd_level.0,
        },
        min_length: spec.min_length,
        types,
    };
    Ok(Some(Arc::new(Compress(Arc::new(settings)))))
}
