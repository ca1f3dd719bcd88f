//! The lab's HTTP/1.1 API over outside bytes: what its servers parse of a request line and
//! what its load generator reads of an answer's head (see `triad_lab::fuzz_http`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        triad_lab::fuzz_http(text);
    }
});
