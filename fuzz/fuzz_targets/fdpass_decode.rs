//! `fdpass::decode` on arbitrary bytes: a plain tuple, and types holding `SharedFd`s decoded
//! with no descriptors at all (every index is missing) and with one (`/dev/null`: the first
//! use of index 0 succeeds, a second is "used twice"). Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use triad::fdpass::{self, SharedFd};

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // decoded only to be dropped
struct WithFds {
    id: u32,
    name: String,
    fd: SharedFd,
    more: Vec<(u8, Option<SharedFd>)>,
}

fuzz_target!(|bytes: &[u8]| {
    let _ = fdpass::decode::<(u32, String, Vec<u8>)>(bytes, Vec::new());
    let _ = fdpass::decode::<WithFds>(bytes, Vec::new());
    let _ = fdpass::decode::<(SharedFd, Vec<SharedFd>)>(bytes, Vec::new());
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let _ = fdpass::decode::<WithFds>(bytes, vec![null.into()]);
});
