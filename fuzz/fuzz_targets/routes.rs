//! Route compilation (matchit patterns and regexes) and lookups.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use troupe::fuzzing::{RouteSpec, routes};

#[derive(Debug, Arbitrary)]
struct Input {
    routes: Vec<(String, bool, Option<Vec<String>>)>,
    lookups: Vec<(String, String)>,
}

fuzz_target!(|input: Input| {
    let specs: Vec<RouteSpec> = input
        .routes
        .into_iter()
        .take(16)
        .map(|(pattern, regex, methods)| RouteSpec {
            pattern,
            regex,
            methods,
        })
        .collect();
    routes(&specs, &input.lookups[..input.lookups.len().min(16)]);
});
