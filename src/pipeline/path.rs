//! Request-path normalization: the first line of defence for static roots.
//!
//! Like nginx, routing and file lookup see the decoded path with `.` and
//! `..` segments resolved and repeated slashes merged. Anything that could
//! smuggle a traversal past that is refused with 400: a `..` that climbs
//! above `/`, a NUL, a backslash, or bytes that are not UTF-8 (which is how
//! an overlong-encoded dot such as `%c0%ae` arrives). Decoding happens once,
//! so `%252e` stays the literal text `%2e` and names no parent.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute path.
    #[error("path does not start with /")]
    NotAbsolute,
    /// A `..` segment climbs above the root.
    #[error("path climbs above the root")]
    Traversal,
    /// A NUL byte, backslash or malformed escape.
    #[error("path contains a forbidden byte")]
    ForbiddenByte,
    /// The decoded path is not UTF-8 (e.g. an overlong encoding).
    #[error("path is not valid UTF-8")]
    NotUtf8,
}

/// Decodes and normalizes `raw`, borrowing it when nothing needs changing.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_clean(raw.as_bytes()) {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode(raw.as_bytes())?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop().ok_or(PathError::Traversal)?;
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    // Keep a trailing slash: it tells a directory request from a file one.
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    if path.is_empty() || trailing {
        path.push('/');
    }
    Ok(Cow::Owned(path))
}

/// True when the path has no escapes, no dot segments, no `//` and no
/// forbidden bytes: the common case, which then costs no allocation.
fn is_clean(b: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b'\\' | 0 => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                // "/." starts a dot segment only if followed by '/', '.' + end/'/', or end.
                let rest = &b[i + 1..];
                if rest.is_empty()
                    || rest[0] == b'/'
                    || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/'))
                {
                    return false;
                }
            }
            _ => {}
        }
        prev = c;
    }
    true
}

fn decode(b: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let byte = if c == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(PathError::ForbiddenByte)?;
            let hi = hex_val(hex[0]).ok_or(PathError::ForbiddenByte)?;
            let lo = hex_val(hex[1]).ok_or(PathError::ForbiddenByte)?;
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            c
        };
        if byte == 0 || byte == b'\\' {
            return Err(PathError::ForbiddenByte);
        }
        out.push(byte);
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_are_borrowed() {
        for p in [
            "/",
            "/hello",
            "/static/1k.bin",
            "/a/.hidden",
            "/a/b..c",
            "/dir/",
        ] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_resolve() {
        assert_eq!(normalize("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(normalize("//a///b/").unwrap(), "/a/b/");
        assert_eq!(normalize("/a/..").unwrap(), "/");
        assert_eq!(normalize("/%7Euser/a%20b").unwrap(), "/~user/a b");
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/..%2fCargo.toml",
            "/.%2e/Cargo.toml",
            "/a/../../etc/passwd",
        ] {
            assert_eq!(normalize(p), Err(PathError::Traversal), "{p}");
        }
        assert_eq!(normalize("/a%00b"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/..\\Cargo.toml"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/%5c"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/%zz"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/%c0%ae%c0%ae/x"), Err(PathError::NotUtf8));
        assert_eq!(normalize("x"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn double_encoding_is_decoded_once() {
        assert_eq!(
            normalize("/%252e%252e/Cargo.toml").unwrap(),
            "/%2e%2e/Cargo.toml"
        );
    }
}
