//! The query decoder behind every module language's query helper, on the
//! host side: Lua's `troupe.query_param` and WebAssembly's
//! `troupe:host/api` `query-param` call it.
//!
//! It is the server's own rule, `form_urlencoded` as
//! `Request::query_param` (src/pipeline/request.rs) applies it, and the
//! test below holds the two together. The C header
//! (`troupe_query_param`) and the Rust SDK (`troupe_module::query_param`)
//! carry copies of the same rules for modules that have no host call to
//! make; `tests/it/query_params.rs` checks all four languages agree.

use std::borrow::Cow;

/// The first value of the parameter `name` in `query` (raw, without `?`),
/// decoded: `+` is a space, `%XX` a byte, any other `%` kept, ill-formed
/// UTF-8 replaced by U+FFFD; a piece without `=` has the empty value.
pub fn query_param<'q>(query: &'q [u8], name: &str) -> Option<Cow<'q, str>> {
    form_urlencoded::parse(query)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use crate::pipeline::request::Request;

    #[test]
    fn decodes_as_the_server_does() {
        for query in [
            "name=J%C3%BCrgen+X",
            "x=1&&name&name=2",
            "=x&na%6De=%+1%zz%4",
            "name=%FF%C3%28&name=later",
        ] {
            let (head, ()) = http::Request::builder()
                .uri(format!("/p?{query}"))
                .body(())
                .expect("request")
                .into_parts();
            let req = Request::from_parts(head);
            for name in ["name", "x", "", "missing"] {
                assert_eq!(
                    super::query_param(query.as_bytes(), name),
                    req.query_param(name),
                    "{query} / {name}"
                );
            }
        }
    }
}
