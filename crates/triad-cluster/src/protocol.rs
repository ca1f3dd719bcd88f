//! What crosses Redis: a chunk of tasks, and its results — each one entry of a stream, its one
//! field `m` a frame of the process pool's own wire encoding (`[length][version][postcard]`,
//! [`triad::process::wire`]), so a build of another protocol version is refused, not misread.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use triad::TaskError;
use triad::process::wire::{self, WireError};

/// The field of a stream entry that holds the frame.
pub const FIELD: &str = "m";

/// Consecutive tasks of one registered task, sent as one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The id of the first task; the others follow one by one (ids are the client's own).
    pub first_id: u64,
    /// The task's registry name.
    pub task: String,
    /// The client's [`Registration::signature`](triad::Registration::signature) of it.
    pub signature: String,
    /// Postcard-encoded inputs.
    pub inputs: Vec<ByteBuf>,
    /// The stream the results go to.
    pub reply: String,
    /// Deliveries allowed before the chunk goes to the dead letters.
    pub max_deliveries: u32,
}

/// The results of a chunk, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The chunk's first id.
    pub first_id: u64,
    /// The worker that ran it (`host:pid`).
    pub worker: String,
    /// Each task's encoded output, or its error.
    pub outcomes: Vec<Result<ByteBuf, TaskError>>,
}

/// Encodes a message as one frame.
pub fn encode<M: Serialize>(message: &M) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    wire::encode_frame(message, &mut out)?;
    Ok(out)
}

/// Decodes one whole frame (exactly one, nothing after it) as a message.
pub fn decode<M: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<M, WireError> {
    let mut reader = wire::FrameReader::new();
    reader.extend(bytes);
    let payload = reader
        .next_frame()?
        .ok_or_else(|| WireError::Malformed("the frame ends early".into()))?
        .to_vec();
    let message = wire::decode_payload(&payload)?;
    if reader.next_frame()?.is_some() {
        return Err(WireError::Malformed("bytes after the frame".into()));
    }
    reader.finish()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunks_and_answers_round_trip_and_garbage_is_an_error(
            first_id in any::<u64>(),
            inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..8),
            cut in 0usize..400,
        ) {
            let chunk = Chunk {
                first_id,
                task: "triad::workloads::identity".into(),
                signature: "fn(u64) -> u64".into(),
                inputs: inputs.iter().cloned().map(ByteBuf::from).collect(),
                reply: "triad:q:reply:c".into(),
                max_deliveries: 3,
            };
            let bytes = encode(&chunk).unwrap();
            prop_assert_eq!(decode::<Chunk>(&bytes).unwrap(), chunk);
            if cut < bytes.len() {
                prop_assert!(decode::<Chunk>(&bytes[..cut]).is_err());
            }
            let answer = Answer {
                first_id,
                worker: "h:1".into(),
                outcomes: inputs.into_iter().map(|i| if i.len() % 2 == 0 { Ok(ByteBuf::from(i)) } else { Err(TaskError::Cancelled) }).collect(),
            };
            let bytes = encode(&answer).unwrap();
            prop_assert_eq!(decode::<Answer>(&bytes).unwrap(), answer);
        }
    }
}
