//! The `--resume` state file of `triad crawl`, read back after a kill: arbitrary bytes must
//! decode to a prefix of whole frames without panicking, and the frames decoded must encode
//! to bytes that decode, whole, to the same frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_crawl::state;

fuzz_target!(|data: &[u8]| {
    let mut frames = Vec::new();
    let good = state::decode(data, |f| frames.push(f));
    assert!(good <= data.len());
    let mut again = Vec::new();
    for f in &frames {
        state::encode(f, &mut again);
    }
    let mut back = Vec::new();
    assert_eq!(state::decode(&again, |f| back.push(f)), again.len());
    assert_eq!(back, frames);
});
