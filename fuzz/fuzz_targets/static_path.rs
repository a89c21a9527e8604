//! A request path → normalization → the static resolver: the resolved
//! path never leaves the root.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use troupe::fuzzing::Fixture;

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture::new().expect("fixture"));

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        FIXTURE.static_path(raw);
    }
});
