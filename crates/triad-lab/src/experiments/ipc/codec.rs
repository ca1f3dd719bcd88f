//! What serialisation costs, in this process: postcard encode (into a reused buffer) + decode
//! (into a new value) of a message of raw bytes at each size, of the seed's own message (`{'data': 'Hello'}`) and of a typical record,
//! beside a plain copy of the same bytes.

use std::collections::BTreeMap;
use std::hint::black_box;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::plan::Repeat;

/// A typical structured message; the CPython script pickles a dict with the same fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    timestamp: f64,
    values: Vec<f64>,
    tags: Vec<String>,
}

fn record() -> Record {
    Record {
        id: 12_345,
        name: "sensor-17".to_owned(),
        timestamp: 1_700_000_000.25,
        values: (0..16).map(|i| f64::from(i) * 0.5).collect(),
        tags: ["alpha", "beta", "gamma"].map(str::to_owned).to_vec(),
    }
}

/// The seed's message in §5.1.2: `conn.send({'data': 'Hello'})`.
fn seed_message() -> BTreeMap<String, String> {
    BTreeMap::from([("data".to_owned(), "Hello".to_owned())])
}

/// Seconds per `body()`, for each batch of `iterations` calls that `repeat` keeps.
fn per_call(iterations: usize, repeat: Repeat, mut body: impl FnMut()) -> Vec<f64> {
    let Ok(batches) = repeat.time(|| -> Result<(), std::convert::Infallible> {
        for _ in 0..iterations {
            body();
        }
        Ok(())
    });
    batches
        .into_iter()
        .map(|batch| batch / iterations as f64)
        .collect()
}

/// Encodes `value` into `buffer` (reused, as a pipe reuses its send buffer) and decodes a new
/// value from it.
fn round_trip<T: Serialize + DeserializeOwned>(value: &T, buffer: &mut [u8]) -> T {
    let bytes = postcard::to_slice(black_box(value), buffer).expect("the buffer is large enough");
    postcard::from_bytes(black_box(bytes)).expect("postcard decodes what it encoded")
}

/// A buffer large enough for any message here of `size` bytes of payload.
fn encode_buffer(size: usize) -> Vec<u8> {
    vec![0; size + 1024]
}

/// Seconds per postcard encode + decode of a `ByteBuf` of `size` bytes.
pub(super) fn postcard_bytes(size: usize, iterations: usize, repeat: Repeat) -> Vec<f64> {
    let message = ByteBuf::from(vec![7_u8; size]);
    let mut buffer = encode_buffer(size);
    per_call(iterations, repeat, || {
        black_box(round_trip(&message, &mut buffer));
    })
}

/// Seconds per copy of `size` bytes into a fresh vector (what a decode must do at least).
pub(super) fn copy_bytes(size: usize, iterations: usize, repeat: Repeat) -> Vec<f64> {
    let message = vec![7_u8; size];
    per_call(iterations, repeat, || {
        black_box(black_box(&message).clone());
    })
}

/// Seconds per postcard encode + decode of the seed's message and of a typical record.
pub(super) fn postcard_structured(iterations: usize, repeat: Repeat) -> (Vec<f64>, Vec<f64>) {
    let seed = seed_message();
    let record = record();
    let mut buffer = encode_buffer(0);
    (
        per_call(iterations, repeat, || {
            black_box(round_trip(&seed, &mut buffer));
        }),
        per_call(iterations, repeat, || {
            black_box(round_trip(&record, &mut buffer));
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_round_trip() {
        let mut buffer = encode_buffer(3);
        assert_eq!(round_trip(&record(), &mut buffer), record());
        assert_eq!(round_trip(&seed_message(), &mut buffer), seed_message());
        let bytes = ByteBuf::from(vec![1_u8, 2, 3]);
        assert_eq!(round_trip(&bytes, &mut buffer), bytes);
    }

    #[test]
    fn one_sample_per_repeat() {
        let samples = postcard_bytes(64, 10, Repeat::after_one(3));
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|s| *s > 0.0));
    }
}
