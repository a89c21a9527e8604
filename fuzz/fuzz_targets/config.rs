//! Config text → parse, check and compile (`troupe -t` without loading
//! modules): no panic, and every refusal has a file, line and column.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use troupe::fuzzing::Fixture;

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture::new().expect("fixture"));

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        FIXTURE.config(text);
    }
});
