//! The process pool's frame codec on arbitrary bytes, delivered in arbitrary pieces.
//!
//! The input is a list of cut lengths and the stream's bytes: the stream is fed to a
//! `FrameReader` one piece at a time (cycling through the cuts), every whole frame is decoded as
//! both `ToWorker` and `FromWorker`, and `finish()` is called at the end — also after an error,
//! since a public method must not panic whatever its caller did before. Nothing may panic, and
//! a message that decodes must re-encode into a frame that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use triad::process::wire::{FrameReader, FromWorker, ToWorker, decode_payload, encode_frame};

/// Decodes `payload` as `M`; if it is one, checks that it survives a round trip.
fn decode_and_round_trip<M>(payload: &[u8])
where
    M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(message) = decode_payload::<M>(payload) else {
        return;
    };
    let mut frame = Vec::new();
    encode_frame(&message, &mut frame).expect("a decoded message re-encodes");
    let mut reader = FrameReader::new();
    reader.extend(&frame);
    let again = reader
        .next_frame()
        .expect("a re-encoded frame is valid")
        .expect("a re-encoded frame is whole");
    assert_eq!(decode_payload::<M>(again).expect("it decodes"), message);
    reader.finish().expect("nothing is left over");
}

fuzz_target!(|input: (Vec<u8>, &[u8])| {
    let (cuts, bytes) = input;
    let mut reader = FrameReader::new();
    let mut offset = 0;
    let mut pieces = 0;
    'feed: while offset < bytes.len() {
        let cut = if cuts.is_empty() {
            bytes.len()
        } else {
            1 + usize::from(cuts[pieces % cuts.len()])
        };
        pieces += 1;
        let end = (offset + cut).min(bytes.len());
        reader.extend(&bytes[offset..end]);
        offset = end;
        loop {
            match reader.next_frame() {
                Ok(Some(payload)) => {
                    decode_and_round_trip::<ToWorker>(payload);
                    decode_and_round_trip::<FromWorker>(payload);
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = reader.finish();
});
