//! The cluster's messages as read from Redis: arbitrary bytes decoded as a `Chunk` (what a
//! worker reads) and as an `Answer` (what a client reads) must not panic, and a message that
//! decodes must encode and decode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_cluster::protocol::{self, Answer, Chunk};

fuzz_target!(|data: &[u8]| {
    if let Ok(chunk) = protocol::decode::<Chunk>(data) {
        let again = protocol::encode(&chunk).expect("a decoded chunk encodes");
        assert_eq!(protocol::decode::<Chunk>(&again).expect("and decodes"), chunk);
    }
    if let Ok(answer) = protocol::decode::<Answer>(data) {
        let again = protocol::encode(&answer).expect("a decoded answer encodes");
        assert_eq!(protocol::decode::<Answer>(&again).expect("and decodes"), answer);
    }
});
