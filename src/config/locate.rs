//! Finds where a value sits in the config text, for semantic errors.
//!
//! ron reports positions for syntax and type errors, but its values carry
//! no spans. A semantic error (a missing static root, a bad regex) names the
//! literal it is about ([`CompileError`]), and this module finds that
//! literal in the source, skipping comments.

/// A semantic error and where it is.
#[derive(Debug)]
pub(crate) struct CompileError {
    pub message: String,
    pub anchor: Anchor,
}

pub(crate) fn err<T>(anchor: Anchor, message: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError {
        message: message.into(),
        anchor,
    })
}

/// "No `what` named `name`": the error for a name that `list` (the
/// config's section) does not declare, listing the names it does.
pub(crate) fn unknown<S: AsRef<str>>(
    what: &str,
    name: &str,
    list: &str,
    names: impl IntoIterator<Item = S>,
) -> CompileError {
    let mut names: Vec<S> = names.into_iter().collect();
    names.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    CompileError {
        message: format!(
            "no {what} named `{name}` (expected one of the names in `{list}`: {})",
            if names.is_empty() {
                "none is configured".to_owned()
            } else {
                names.join(", ")
            }
        ),
        anchor: Anchor::str(name),
    }
}

/// What a semantic error points at.
#[derive(Debug, Clone)]
pub(super) enum Anchor {
    /// The `nth` (0-based) occurrence of a string literal with this value.
    Str { value: String, nth: usize },
    /// The `nth` occurrence of `key:`.
    Key { key: &'static str, nth: usize },
    /// The first `key:` after another anchor (a module's `kv:`, after its
    /// name), or that anchor itself when no such key follows it.
    KeyAfter {
        after: Box<Anchor>,
        key: &'static str,
    },
}

impl Anchor {
    pub fn str(value: &str) -> Self {
        Anchor::Str {
            value: value.to_owned(),
            nth: 0,
        }
    }

    /// 1-based (line, column) of the anchor in `src`.
    pub fn find(&self, src: &str) -> Option<(usize, usize)> {
        self.offset(src).map(|i| line_col(src, i))
    }

    /// The anchor in a config read from several files (`srcs`, in merge
    /// order): the index of the file, and 1-based (line, column) in it.
    /// The `nth` occurrence counts through the files in order, as the
    /// merged lists do.
    pub fn find_in(&self, srcs: &[&str]) -> Option<(usize, usize, usize)> {
        let (i, offset) = self.offset_in(srcs)?;
        let (line, col) = line_col(srcs[i], offset);
        Some((i, line, col))
    }

    /// The file index and byte offset of the anchor among `srcs`.
    fn offset_in(&self, srcs: &[&str]) -> Option<(usize, usize)> {
        if let Anchor::KeyAfter { after, key } = self {
            // The key is looked for in the file its anchor is in.
            let (i, start) = after.offset_in(srcs)?;
            let src = srcs[i];
            let found = key_offsets(src, key)
                .into_iter()
                .find(|&o| o > start && !in_comment(src, o));
            return Some((i, found.unwrap_or(start)));
        }
        let mut nth = match self {
            Anchor::Str { nth, .. } | Anchor::Key { nth, .. } => *nth,
            Anchor::KeyAfter { .. } => 0,
        };
        for (i, src) in srcs.iter().enumerate() {
            let here = self.all(src);
            if let Some(&o) = here.get(nth) {
                return Some((i, o));
            }
            nth -= here.len();
        }
        None
    }

    /// Every occurrence of a `Str` or `Key` anchor in `src`, outside
    /// comments (none for `KeyAfter`).
    fn all(&self, src: &str) -> Vec<usize> {
        let offsets: Vec<usize> = match self {
            Anchor::Str { value, .. } => {
                let mut forms = vec![format!("r\"{value}\""), format!("r#\"{value}\"#")];
                if let Ok(quoted) = ron::to_string(value) {
                    forms.push(quoted);
                }
                let mut all: Vec<usize> = forms
                    .iter()
                    .flat_map(|f| src.match_indices(f.as_str()).map(|(i, _)| i))
                    .collect();
                all.sort_unstable();
                all.dedup();
                all
            }
            Anchor::Key { key, .. } => key_offsets(src, key),
            Anchor::KeyAfter { .. } => Vec::new(),
        };
        offsets
            .into_iter()
            .filter(|&i| !in_comment(src, i))
            .collect()
    }

    /// The byte offset of the anchor in `src`.
    fn offset(&self, src: &str) -> Option<usize> {
        self.offset_in(&[src]).map(|(_, o)| o)
    }
}

/// Where `key:` is written in `src` (comments included).
fn key_offsets(src: &str, key: &str) -> Vec<usize> {
    src.match_indices(key)
        .filter(|(i, _)| {
            let before_ok = src[..*i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let after = src[i + key.len()..].trim_start();
            before_ok && after.starts_with(':')
        })
        .map(|(i, _)| i)
        .collect()
}

fn in_comment(src: &str, offset: usize) -> bool {
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    // A `//` inside a string (`"https://…"`) starts no comment.
    let (mut quoted, mut escaped, mut slash) = (false, false, false);
    for b in src[line_start..offset].bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'/' if !quoted && slash => return true,
            _ => {}
        }
        slash = b == b'/' && !quoted;
    }
    false
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nth_literal_outside_comments() {
        let src = "// \"/a\" in a comment\n(path: \"/a\"),\n(path: \"/a\"),\n";
        assert_eq!(Anchor::str("/a").find(src), Some((2, 8)));
        let second = Anchor::Str {
            value: "/a".into(),
            nth: 1,
        };
        assert_eq!(second.find(src), Some((3, 8)));
        let url = "(o: [\"https://a.test\", \"bad\"]), // \"bad\"\n";
        assert_eq!(Anchor::str("bad").find(url), Some((1, 24)));
    }

    #[test]
    fn finds_a_key_after_another_anchor() {
        let src = "(name: \"a\", kv: ()),\n(name: \"b\", // kv: old\n  kv: (keys: 0)),\n";
        let kv_of = |name: &str| Anchor::KeyAfter {
            after: Box::new(Anchor::str(name)),
            key: "kv",
        };
        assert_eq!(kv_of("a").find(src), Some((1, 13)));
        assert_eq!(kv_of("b").find(src), Some((3, 3)));
        let none = "(name: \"c\")";
        assert_eq!(kv_of("c").find(none), Some((1, 8)));
    }

    #[test]
    fn counts_occurrences_through_several_files() {
        let main = "(path: \"/a\"),\n";
        let inc = "// \"/a\"\n(path: \"/a\", kv: ()),\n";
        let second = Anchor::Str {
            value: "/a".into(),
            nth: 1,
        };
        assert_eq!(second.find_in(&[main, inc]), Some((1, 2, 8)));
        let kv = Anchor::KeyAfter {
            after: Box::new(second),
            key: "kv",
        };
        assert_eq!(kv.find_in(&[main, inc]), Some((1, 2, 14)));
        assert_eq!(Anchor::str("/b").find_in(&[main, inc]), None);
    }

    #[test]
    fn finds_raw_strings_and_keys() {
        let src = "(\n  regex: r\"^/(\\d+\",\n  listen: [],\n)";
        assert_eq!(Anchor::str("^/(\\d+").find(src), Some((2, 10)));
        assert_eq!(
            Anchor::Key {
                key: "listen",
                nth: 0
            }
            .find(src),
            Some((3, 3))
        );
    }
}
