//! Query-string decoding: the rules every Troupe module language shares.
//!
//! The same rules are `troupe_query_param` in `troupe_module.h` (C),
//! `req:query_param` in Lua, and `query-param` in `troupe:host/api`
//! (WebAssembly); the server's own is the `form_urlencoded` crate, and the
//! tests below hold this copy to it. The SDK keeps its own copy so that a
//! module needs no crate but this one (and builds offline).
//!
//! - The query is split on `&`; empty pieces are skipped.
//! - Each piece is split on its first `=`; a piece without `=` has the
//!   empty value.
//! - Name and value are decoded alike: `+` is a space, then `%` and two hex
//!   digits (either case) is that byte; any other `%` stays as it is.
//! - The decoded bytes are read as UTF-8, each ill-formed sequence becoming
//!   one U+FFFD (as [`String::from_utf8_lossy`] does).
//! - Names compare exactly (case matters) after decoding; the first match
//!   wins.

/// The first value of the parameter `name` in `query` (a raw query string,
/// without `?`), decoded; `None` when no piece of the query has that name.
///
/// [`Request::query_param`](crate::Request::query_param) calls this on the
/// request's query; call it yourself on another query string, such as
/// [`LogEntry::query`](crate::LogEntry::query) or a form body.
///
/// # Example
/// ```
/// use troupe_module::query_param;
///
/// let q = "name=J%C3%BCrgen+X&name=second&flag&bad=%zz%41&utf8=%FF";
/// assert_eq!(query_param(q, "name").as_deref(), Some("Jürgen X"));
/// assert_eq!(query_param(q, "flag").as_deref(), Some("")); // present, no `=`
/// assert_eq!(query_param(q, "bad").as_deref(), Some("%zzA")); // invalid escape kept
/// assert_eq!(query_param(q, "utf8").as_deref(), Some("\u{FFFD}")); // not UTF-8
/// assert_eq!(query_param(q, "missing"), None);
/// ```
pub fn query_param(query: impl AsRef<[u8]>, name: &str) -> Option<String> {
    query
        .as_ref()
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .find_map(|piece| {
            let (key, value) = match piece.iter().position(|&b| b == b'=') {
                Some(at) => (&piece[..at], &piece[at + 1..]),
                None => (piece, &[][..]),
            };
            (decode(key) == name).then(|| decode(value))
        })
}

/// `+` to space, `%XX` to its byte, then UTF-8 with replacement.
fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                // Not an escape: the `%` is kept, and what follows is read
                // as usual (so `%+1` is `% 1`).
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One ASCII hex digit's value. (`u8::from_str_radix` would also take a
/// sign: `%+1` must not decode.)
fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::query_param;

    /// The server's decoder (`Request::query_param` in src/pipeline).
    fn server(query: &[u8], name: &str) -> Option<String> {
        form_urlencoded::parse(query)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn agrees_with_the_server_on_hostile_queries() {
        let queries: &[&[u8]] = &[
            b"name=J%C3%BCrgen+X",
            b"",
            b"name",
            b"name=",
            b"=x&name=y",
            b"&&name=a&&",
            b"name=a&name=b",
            b"Name=a&name=b",
            b"na%6De=key+decoded",
            b"name=a=b;c",
            b"name=100%",
            b"name=%4",
            b"name=%zz%4g%",
            b"name=%+1",
            b"name=%2B1+2",
            b"name=%FF%C3",
            b"name=%C3%28",
            b"name=%ED%A0%80",
            b"name=%C0%AF",
            b"name=%F0%9F%98%80",
            b"name=%F0%9F%98",
            b"name=%F4%90%80%80",
            b"name=a%00b",
            b"name=\xff\xc3\xbc",
            b"name%3Dx=y",
        ];
        for q in queries {
            for name in ["name", "Name", "", "name=x", "x"] {
                assert_eq!(
                    query_param(q, name),
                    server(q, name),
                    "{:?} / {name:?}",
                    String::from_utf8_lossy(q)
                );
            }
        }
    }

    #[test]
    fn agrees_with_the_server_on_generated_queries() {
        // Every string of these bytes up to length 5, after `name=`: the
        // escapes, their edges, and UTF-8 lead and continuation bytes.
        let alphabet = b"%+&=aF9\xc3\xbc\xe2\xf0\x80";
        let mut piece = Vec::new();
        fn walk(alphabet: &[u8], piece: &mut Vec<u8>, left: usize) {
            let q = [b"name=".as_slice(), piece].concat();
            assert_eq!(
                query_param(&q, "name"),
                server(&q, "name"),
                "{:?}",
                String::from_utf8_lossy(&q)
            );
            if left > 0 {
                for &b in alphabet {
                    piece.push(b);
                    walk(alphabet, piece, left - 1);
                    piece.pop();
                }
            }
        }
        walk(alphabet, &mut piece, 4);
        // Hex digits after `%`: every pair of bytes.
        for hi in 0..=255u8 {
            for lo in [b'0', b'a', b'F', b'g', b'+', 0x80] {
                let q = [b"name=%".as_slice(), &[hi, lo]].concat();
                assert_eq!(query_param(&q, "name"), server(&q, "name"));
            }
        }
    }
}
