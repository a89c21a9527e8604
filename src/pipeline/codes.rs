//! Sets of statuses written as nginx lists them (`"502 503 504"`) or as
//! ranges (`"500-599"`): what an error page stands for, which answers an
//! access log skips.

use http::StatusCode;

/// Statuses, as lists and ranges (`"404"`, `"502 503 504"`, `"500-599"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Codes(Vec<(u16, u16)>);

impl Codes {
    /// Parses space- or comma-separated codes and `low-high` ranges, each
    /// from 300 to 599 (what an error page may stand for).
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_within(text, 300, 599)
    }

    /// Like [`Codes::parse`], each code from `min` to `max`.
    pub fn parse_within(text: &str, min: u16, max: u16) -> Result<Self, String> {
        let mut out = Vec::new();
        for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
            let (low, high) = word.split_once('-').unwrap_or((word, word));
            let num = |s: &str| {
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
            };
            match (num(low), num(high)) {
                (Some(l), Some(h)) if l <= h => out.push((l, h)),
                _ => {
                    return Err(format!(
                        "invalid status `{word}` (expected codes from {min} to {max}, or a range such as `500-599`)"
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("no status given (expected e.g. \"404\" or \"502 503 504\")".into());
        }
        Ok(Self(out))
    }

    /// Whether `status` is one of them.
    pub fn contains(&self, status: StatusCode) -> bool {
        let s = status.as_u16();
        self.0.iter().any(|&(l, h)| (l..=h).contains(&s))
    }
}
