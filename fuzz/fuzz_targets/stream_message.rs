//! `triad stream`'s decoding of what arrives from Redis: a published payload or a stream
//! entry's fields (the `data` field, else the fields as a JSON object) into a `Message`, its
//! creation time from the payload's `ts` or the entry id, and the check that sends a message
//! to the dead letters. Nothing may panic; a message the check passes as JSON must parse as
//! JSON; an entry without a `data` field always makes a JSON object.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use redis::Value;
use triad_stream::message::{DATA_FIELD, Message, check};

/// Whether `bytes` parse as JSON: as a `serde_json::Value`, or short of it only for a number
/// past what an f64 holds (valid JSON text, which the check rightly lets through).
fn is_json(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(_) => true,
        Err(error) => error.to_string().starts_with("number out of range"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, rest) = data.split_at(data.len().min(24));
    let id = String::from_utf8_lossy(head).into_owned();
    let published = Message::from_publish("channel", id.clone(), rest.to_vec());
    for max_size in [0, 16, 1 << 20] {
        for json in [false, true] {
            let passed = check(&published, max_size, json).is_ok();
            if passed {
                assert!(published.payload.len() <= max_size);
            }
            if passed && json {
                assert!(is_json(&published.payload));
            }
        }
    }
    // The rest as fields: name and value pairs split at 0xFF.
    let mut fields = HashMap::new();
    let mut parts = rest.split(|byte| *byte == 0xFF);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        let value = match value.first() {
            Some(b'i') => Value::Int(value.len() as i64 - 1),
            Some(b's') => Value::SimpleString(String::from_utf8_lossy(&value[1..]).into_owned()),
            _ => Value::BulkString(value.to_vec()),
        };
        fields.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    let entry = Message::from_entry("stream", &id, &fields, 1);
    if !fields.contains_key(DATA_FIELD) {
        let object: serde_json::Value = serde_json::from_slice(&entry.payload).unwrap();
        assert_eq!(object.as_object().map(|o| o.len()), Some(fields.len()));
        assert!(check(&entry, usize::MAX, true).is_ok());
    }
});
