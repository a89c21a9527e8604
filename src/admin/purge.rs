//! `POST /cache/purge`: removes cached responses by key, key prefix or
//! tag (`Cache-Tag` / `Surrogate-Key` of the stored response), from one
//! zone or from all.
//!
//! ```text
//! {"key": "http://example.com/a"}            one key
//! {"prefix": "http://example.com/api/"}      every key that starts so
//! {"tag": "product-42", "zone": "pages"}     every key tagged so, in one zone
//! ```

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::{cache::CacheZones, kept::Named as _};

/// Carries out `order`: the status and the JSON answer
/// (`{"purged": N}`, or `{"error": …}`).
pub(super) fn purge(zones: &CacheZones, order: &Map<String, Value>) -> (StatusCode, Value) {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, json!({ "error": msg }));
    if let Some(unknown) = order
        .keys()
        .find(|k| !matches!(k.as_str(), "key" | "prefix" | "tag" | "zone"))
    {
        return bad(format!(
            "unknown field `{unknown}` (expected one of key, prefix, tag, and optionally zone)"
        ));
    }
    // Each field given must be a string.
    let mut given = Vec::new();
    for name in ["key", "prefix", "tag", "zone"] {
        match order.get(name).map(Value::as_str) {
            None => {}
            Some(Some(v)) => given.push((name, v)),
            Some(None) => return bad(format!("`{name}` must be a string")),
        }
    }
    let zone = given.iter().find(|(n, _)| *n == "zone").map(|(_, v)| *v);
    let what: Vec<_> = given.iter().filter(|(n, _)| *n != "zone").collect();
    let [(how, value)] = what.as_slice() else {
        return bad("give exactly one of `key`, `prefix` or `tag`".into());
    };
    let live = zones.live();
    let chosen: Vec<_> = live
        .iter()
        .filter(|z| zone.is_none_or(|name| z.name() == name))
        .collect();
    if let Some(name) = zone
        && chosen.is_empty()
    {
        return (
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no cache zone named `{name}` is in force") }),
        );
    }
    let purged: usize = chosen
        .iter()
        .map(|z| match *how {
            "key" => usize::from(z.purge_key(value)),
            "prefix" => z.purge_prefix(value),
            _ => z.purge_tag(value),
        })
        .sum();
    tracing::info!(how, value, purged, "admin API: cache purged");
    (StatusCode::OK, json!({ "purged": purged }))
}
