//! One message as the handlers see it, whichever source it came from, and the checks it must
//! pass before a sink may take it.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use redis::Value;

/// The stream field that holds a message's payload (`triad stream produce` writes it; an
/// entry without it is taken whole, its fields as a JSON object).
pub const DATA_FIELD: &str = "data";

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its identity: the stream entry's id, or for pub/sub `channel:start:sequence` (pub/sub
    /// messages have none of their own). The SQLite sink's primary key.
    pub id: String,
    /// The stream key or the channel it came from.
    pub origin: String,
    /// What it carries.
    pub payload: Vec<u8>,
    /// When it was made, in microseconds since the epoch: the payload's `ts` when it has one
    /// (as `produce` writes), else the stream entry id's millisecond part, else when it
    /// arrived.
    pub created_us: u64,
    /// When it arrived here.
    pub arrived: Instant,
    /// How many times the stream has delivered it (1 the first time; always 1 for pub/sub).
    pub deliveries: u64,
}

impl Message {
    /// A stream entry as a message; `deliveries` as the pending list says.
    pub fn from_entry(
        origin: &str,
        id: &str,
        fields: &HashMap<String, Value>,
        deliveries: u64,
    ) -> Message {
        let payload = match fields.get(DATA_FIELD) {
            Some(value) => bytes_of(value),
            None => {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(key, value)| {
                        let text = String::from_utf8_lossy(&bytes_of(value)).into_owned();
                        (key.clone(), serde_json::Value::String(text))
                    })
                    .collect();
                serde_json::to_vec(&object).expect("a map of strings serialises")
            }
        };
        let entry_ms = id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse::<u64>().ok());
        let created_us = payload_timestamp(&payload)
            .or(entry_ms.and_then(|ms| ms.checked_mul(1000)))
            .unwrap_or_else(now_us);
        Message {
            id: id.to_owned(),
            origin: origin.to_owned(),
            payload,
            created_us,
            arrived: Instant::now(),
            deliveries,
        }
    }

    /// A pub/sub message as a message, numbered by the subscriber.
    pub fn from_publish(channel: &str, id: String, payload: Vec<u8>) -> Message {
        Message {
            created_us: payload_timestamp(&payload).unwrap_or_else(now_us),
            id,
            origin: channel.to_owned(),
            payload,
            arrived: Instant::now(),
            deliveries: 1,
        }
    }
}

/// Why a message cannot be handled at all (it goes to the dead letters at once).
pub fn check(message: &Message, max_size: usize, json: bool) -> Result<(), String> {
    if message.payload.len() > max_size {
        return Err(format!(
            "oversized: {} bytes, more than --max-size {max_size}",
            message.payload.len()
        ));
    }
    if json {
        let text = std::str::from_utf8(&message.payload)
            .map_err(|error| format!("not JSON: not UTF-8 ({error})"))?;
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|error| format!("not JSON: {error}"))?;
    }
    Ok(())
}

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// The payload's `ts` field (microseconds since the epoch), when it is a JSON object with one;
/// found without decoding the rest.
fn payload_timestamp(payload: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Stamped {
        ts: u64,
    }
    if payload.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Stamped>(payload)
        .ok()
        .map(|stamped| stamped.ts)
}

fn bytes_of(value: &Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(text) => text.clone().into_bytes(),
        Value::Int(number) => number.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(key, value)| {
                (
                    key.to_string(),
                    Value::BulkString(value.as_bytes().to_vec()),
                )
            })
            .collect()
    }

    #[test]
    fn an_entry_with_a_data_field_carries_it_and_its_timestamp() {
        let message = Message::from_entry(
            "events",
            "1700000000123-4",
            &fields(&[("data", "{\"seq\":1,\"ts\":1700000000100999}")]),
            2,
        );
        assert_eq!(message.payload, b"{\"seq\":1,\"ts\":1700000000100999}");
        assert_eq!(message.created_us, 1_700_000_000_100_999);
        assert_eq!(message.deliveries, 2);
    }

    #[test]
    fn an_entry_without_data_is_its_fields_and_the_id_gives_the_time() {
        let message = Message::from_entry("events", "1700000000123-0", &fields(&[("a", "1")]), 1);
        assert_eq!(message.payload, b"{\"a\":\"1\"}");
        assert_eq!(message.created_us, 1_700_000_000_123_000);
    }

    #[test]
    fn an_entry_id_past_what_microseconds_can_hold_is_not_a_creation_time() {
        let message = Message::from_entry("s", "18446744073709551615-0", &fields(&[("a", "1")]), 1);
        let now = now_us();
        assert!(
            message.created_us.abs_diff(now) < 60_000_000,
            "{}",
            message.created_us
        );
    }

    #[test]
    fn checks_name_what_is_wrong() {
        let message = Message::from_publish("c", "c:1".into(), b"{\"a\":".to_vec());
        assert!(
            check(&message, 100, true)
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert!(check(&message, 100, false).is_ok());
        assert!(
            check(&message, 3, false)
                .unwrap_err()
                .starts_with("oversized")
        );
        let latin = Message::from_publish("c", "c:2".into(), b"\"\xe9\"".to_vec());
        assert!(check(&latin, 100, true).unwrap_err().contains("UTF-8"));
    }
}
