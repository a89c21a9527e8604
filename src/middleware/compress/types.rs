//! The media types worth compressing: text and the text-like formats.
//! Images (but SVG), audio, video, fonts in WOFF2 and archives are
//! compressed already; encoding them again costs CPU and gains nothing.

use http::HeaderValue;

/// The default list: what nginx users usually put in `gzip_types`, and
/// Caddy's `encode` list.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "application/manifest+json",
    "application/x-ndjson",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
];

/// Media types, each exact (`application/json`), a whole top-level type
/// (`text/*`), or a structured suffix (`application/*+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeList(Vec<String>);

impl TypeList {
    /// The list from its config form; `Err` names an entry that is not
    /// `type/subtype`, `type/*` or `type/*+suffix`.
    pub fn new<S: AsRef<str>>(types: &[S]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(types.len());
        for t in types {
            let t = t.as_ref().trim().to_ascii_lowercase();
            let ok = t.split_once('/').is_some_and(|(ty, sub)| {
                !ty.is_empty()
                    && !sub.is_empty()
                    && !ty.contains('*')
                    && (!sub.contains('*') || sub == "*" || sub.starts_with("*+"))
                    && !t.contains([';', ' ', ','])
            });
            if !ok {
                return Err(t);
            }
            out.push(t);
        }
        Ok(Self(out))
    }

    /// The default list.
    pub fn default_list() -> Self {
        Self::new(DEFAULT_TYPES).expect("the default list is well formed")
    }

    /// Whether a `Content-Type` is on the list (parameters ignored); a
    /// response without one is not compressed.
    pub fn allows(&self, content_type: Option<&HeaderValue>) -> bool {
        let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let essence = ct.split(';').next().unwrap_or("").trim();
        let Some((ty, sub)) = essence.split_once('/') else {
            return false;
        };
        self.0.iter().any(|pattern| {
            let (pty, psub) = pattern.split_once('/').unwrap_or((pattern, ""));
            if !pty.eq_ignore_ascii_case(ty) {
                return false;
            }
            if psub == "*" {
                return true;
            }
            if let Some(suffix) = psub.strip_prefix('*') {
                return sub.len() > suffix.len()
                    && sub[sub.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
            }
            psub.eq_ignore_ascii_case(sub)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_svg_yes_images_no() {
        let list = TypeList::default_list();
        let allows = |ct: &str| list.allows(Some(&HeaderValue::from_str(ct).expect("ct")));
        assert!(allows("text/html; charset=utf-8"));
        assert!(allows("TEXT/CSS"));
        assert!(allows("application/ld+json"));
        assert!(allows("image/svg+xml"));
        assert!(!allows("image/png"));
        assert!(!allows("application/octet-stream"));
        assert!(!allows("application/+json"));
        assert!(!list.allows(None));
        assert!(TypeList::new(&["text"]).is_err());
        assert!(TypeList::new(&["*/*"]).is_err());
    }
}
