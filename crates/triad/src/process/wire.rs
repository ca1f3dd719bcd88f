//! The pool's wire protocol: length-prefixed, versioned frames over a Unix stream socket.
//!
//! A frame is `[length: u32 little-endian][version: u8][payload]`, where `length` counts the
//! version byte and the payload, and the payload is a postcard-encoded [`ToWorker`] or
//! [`FromWorker`]. One frame carries a whole batch of tasks (or of results), so a chunk costs one
//! write and one read whatever its size. File descriptors inside task inputs travel beside the
//! frame as `SCM_RIGHTS` (see [`fdpass`](crate::fdpass)); each task says how many are its own.
//!
//! [`FrameReader`] reassembles frames from whatever the socket delivers, and refuses a frame
//! that announces more than [`MAX_FRAME`] bytes, has another version, or ends early — before it
//! allocates for it.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::TaskError;

/// The protocol version this build speaks; a frame of another version is refused.
pub const PROTOCOL_VERSION: u8 = 1;

/// The largest frame accepted (version byte and payload), 256 MiB.
pub const MAX_FRAME: usize = 256 << 20;

const HEADER: usize = 4;

/// A message from the pool to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// The first message to every worker: run this initializer, if any, then say hello.
    Start(Option<Initializer>),
    /// Run a batch of tasks, in order.
    Run(Batch),
    /// Finish the tasks already sent, then exit.
    Stop,
}

/// A task a worker runs once, before any other (the pool's `initializer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initializer {
    /// The registry name of the task.
    pub name: String,
    /// Its postcard-encoded input.
    pub input: ByteBuf,
}

/// Tasks of one registered task, with consecutive ids.
///
/// Task ids count up per worker from 0, one per task sent to it, so a batch is its first id
/// and its inputs laid end to end; the worker answers in the same order, so results need no
/// ids of their own either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The registry name of the task.
    pub name: String,
    /// Whether to measure each task's span (start, end, CPU) and send it back.
    pub record: bool,
    /// The id of the first task; the others follow one by one.
    pub first_id: u64,
    /// The postcard-encoded inputs, one after another.
    pub inputs: ByteBuf,
    /// Where each input ends in `inputs`.
    pub ends: Vec<u32>,
    /// How many of the descriptors received with the frame belong to each input, in order;
    /// empty when no input carries any.
    pub fds: Vec<u32>,
}

/// A message from a worker to the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker is up (its initializer, if any, ran) and speaks this protocol.
    Hello {
        /// The worker's process id.
        pid: u32,
    },
    /// The initializer failed; the worker exits.
    InitFailed(TaskError),
    /// Results of consecutive tasks.
    Results(Results),
}

/// The results of consecutive tasks, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// Nanoseconds the worker spent running these tasks (for the pool's pacing).
    pub busy_ns: u64,
    /// The id of the first task; the others follow one by one.
    pub first_id: u64,
    /// The postcard-encoded outputs, one after another (nothing for a task that failed).
    pub outputs: ByteBuf,
    /// Where each task's output ends in `outputs`: one entry per task.
    pub ends: Vec<u32>,
    /// The tasks that failed, by their offset from `first_id`, in order.
    pub errors: Vec<(u32, TaskError)>,
    /// Where and when tasks ran, by offset from `first_id`, for batches that asked.
    pub spans: Vec<(u32, WireSpan)>,
}

/// Where and when a task ran in the worker, on the machine-wide monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSpan {
    /// The worker's thread (its main thread: the process id).
    pub tid: u32,
    /// The CPU the task started on.
    pub cpu: Option<u32>,
    /// Start, in nanoseconds.
    pub start_ns: u64,
    /// End, in nanoseconds.
    pub end_ns: u64,
}

/// Why bytes on the wire are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame announces more bytes than [`MAX_FRAME`].
    #[error("frame of {length} bytes is over the {MAX_FRAME}-byte limit")]
    Oversize {
        /// The announced length.
        length: usize,
    },
    /// A zero-length frame has no version byte.
    #[error("empty frame")]
    Empty,
    /// The frame's version is not [`PROTOCOL_VERSION`].
    #[error("frame of protocol version {found}, but this build speaks {PROTOCOL_VERSION}")]
    Version {
        /// The version found.
        found: u8,
    },
    /// The stream ended inside a frame.
    #[error("stream ended {missing} bytes short of a whole frame")]
    Truncated {
        /// Bytes still missing.
        missing: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Appends one frame holding `message` to `out`.
pub fn encode_frame<M: Serialize>(message: &M, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(PROTOCOL_VERSION);
    let out_taken = std::mem::take(out);
    let mut filled = postcard::to_extend(message, out_taken)
        .map_err(|error| WireError::Malformed(error.to_string()))?;
    let length = filled.len() - start - HEADER;
    if length > MAX_FRAME {
        filled.truncate(start);
        *out = filled;
        return Err(WireError::Oversize { length });
    }
    filled[start..start + HEADER].copy_from_slice(&(length as u32).to_le_bytes());
    *out = filled;
    Ok(())
}

/// Decodes a frame's payload (what [`FrameReader::next_frame`] returns) as a message.
pub fn decode_payload<M: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<M, WireError> {
    postcard::from_bytes(payload).map_err(|error| WireError::Malformed(error.to_string()))
}

/// Reassembles frames from a byte stream.
///
/// # Examples
///
/// ```
/// use triad::process::wire::{encode_frame, decode_payload, FrameReader, ToWorker};
/// let mut bytes = Vec::new();
/// encode_frame(&ToWorker::Stop, &mut bytes).unwrap();
/// let mut reader = FrameReader::new();
/// reader.extend(&bytes[..3]); // a frame may arrive in pieces
/// assert!(reader.next_frame().unwrap().is_none());
/// reader.extend(&bytes[3..]);
/// let payload = reader.next_frame().unwrap().unwrap();
/// assert_eq!(decode_payload::<ToWorker>(payload).unwrap(), ToWorker::Stop);
/// assert!(reader.finish().is_ok());
/// ```
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    // Bytes before `start` belong to frames already returned.
    start: usize,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        FrameReader::default()
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The payload of the next whole frame, if one has arrived.
    ///
    /// After an error the stream is out of step and the reader must not be used again.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, WireError> {
        let available = &self.buffer[self.start..];
        let Some(header) = available.first_chunk::<HEADER>() else {
            return Ok(None);
        };
        let length = u32::from_le_bytes(*header) as usize;
        if length > MAX_FRAME {
            return Err(WireError::Oversize { length });
        }
        if length == 0 {
            return Err(WireError::Empty);
        }
        if available.len() > HEADER && available[HEADER] != PROTOCOL_VERSION {
            return Err(WireError::Version {
                found: available[HEADER],
            });
        }
        if available.len() < HEADER + length {
            return Ok(None);
        }
        let payload_start = self.start + HEADER + 1;
        self.start += HEADER + length;
        Ok(Some(&self.buffer[payload_start..self.start]))
    }

    /// Checks, at the end of the stream, that no frame was left half-sent.
    pub fn finish(&self) -> Result<(), WireError> {
        let available = &self.buffer[self.start..];
        if available.is_empty() {
            return Ok(());
        }
        // Saturating: bytes left unread (a whole frame never taken, or what follows an error)
        // are reported as truncation with nothing missing, never an overflow.
        let missing = match available.first_chunk::<HEADER>() {
            Some(header) => {
                (HEADER + u32::from_le_bytes(*header) as usize).saturating_sub(available.len())
            }
            None => HEADER - available.len(),
        };
        Err(WireError::Truncated { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames_of(messages: &[ToWorker]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for message in messages {
            encode_frame(message, &mut bytes).unwrap();
        }
        bytes
    }

    fn arb_message() -> impl Strategy<Value = ToWorker> {
        prop_oneof![
            Just(ToWorker::Stop),
            Just(ToWorker::Start(None)),
            (".{0,10}", prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(name, input)| {
                ToWorker::Start(Some(Initializer {
                    name,
                    input: ByteBuf::from(input),
                }))
            }),
            (
                ".{0,20}",
                any::<bool>(),
                any::<u64>(),
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..8),
            )
                .prop_map(|(name, record, first_id, inputs)| {
                    let mut bytes = Vec::new();
                    let mut ends = Vec::new();
                    for input in &inputs {
                        bytes.extend_from_slice(input);
                        ends.push(bytes.len() as u32);
                    }
                    ToWorker::Run(Batch {
                        name,
                        record,
                        first_id,
                        fds: if record {
                            vec![0; ends.len()]
                        } else {
                            Vec::new()
                        },
                        inputs: ByteBuf::from(bytes),
                        ends,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip_whatever_the_read_sizes(
            messages in prop::collection::vec(arb_message(), 0..6),
            cuts in prop::collection::vec(1_usize..40, 1..50),
        ) {
            let bytes = frames_of(&messages);
            let mut reader = FrameReader::new();
            let mut decoded = Vec::new();
            let mut offset = 0;
            let mut cut = cuts.iter().cycle();
            while offset < bytes.len() {
                let end = (offset + cut.next().unwrap()).min(bytes.len());
                reader.extend(&bytes[offset..end]);
                offset = end;
                while let Some(payload) = reader.next_frame().unwrap() {
                    decoded.push(decode_payload::<ToWorker>(payload).unwrap());
                }
            }
            prop_assert!(reader.finish().is_ok());
            prop_assert_eq!(decoded, messages);
        }

        #[test]
        fn results_round_trip(outputs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..20), busy_ns: u64, first_id: u64) {
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            let mut errors = Vec::new();
            let mut spans = Vec::new();
            for (offset, output) in outputs.iter().enumerate() {
                if output.len() % 3 == 0 {
                    errors.push((offset as u32, TaskError::Panicked(format!("task {offset}"))));
                } else {
                    bytes.extend_from_slice(output);
                }
                ends.push(bytes.len() as u32);
                if offset % 2 == 0 {
                    spans.push((offset as u32, WireSpan { tid: 7, cpu: Some(1), start_ns: 1, end_ns: 2 }));
                }
            }
            let message = FromWorker::Results(Results {
                busy_ns,
                first_id,
                outputs: ByteBuf::from(bytes),
                ends,
                errors,
                spans,
            });
            let mut frame = Vec::new();
            encode_frame(&message, &mut frame).unwrap();
            let mut reader = FrameReader::new();
            reader.extend(&frame);
            let payload = reader.next_frame().unwrap().unwrap();
            prop_assert_eq!(decode_payload::<FromWorker>(payload).unwrap(), message);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut reader = FrameReader::new();
            reader.extend(&bytes);
            while let Ok(Some(payload)) = reader.next_frame() {
                let _ = decode_payload::<ToWorker>(payload);
                let _ = decode_payload::<FromWorker>(payload);
            }
            let _ = reader.finish();
        }
    }

    #[test]
    fn oversize_frames_are_refused_before_allocation() {
        let mut reader = FrameReader::new();
        reader.extend(&(MAX_FRAME as u32 + 1).to_le_bytes());
        assert_eq!(
            reader.next_frame(),
            Err(WireError::Oversize {
                length: MAX_FRAME + 1
            })
        );
    }

    #[test]
    fn other_versions_and_empty_frames_are_refused() {
        let mut bytes = frames_of(&[ToWorker::Stop]);
        bytes[HEADER] = PROTOCOL_VERSION + 1;
        let mut reader = FrameReader::new();
        reader.extend(&bytes);
        assert_eq!(
            reader.next_frame(),
            Err(WireError::Version {
                found: PROTOCOL_VERSION + 1
            })
        );
        let mut reader = FrameReader::new();
        reader.extend(&[0, 0, 0, 0]);
        assert_eq!(reader.next_frame(), Err(WireError::Empty));
    }

    #[test]
    fn a_stream_that_ends_inside_a_frame_is_truncated() {
        let bytes = frames_of(&[ToWorker::Stop]);
        let mut reader = FrameReader::new();
        reader.extend(&bytes[..bytes.len() - 1]);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(reader.finish(), Err(WireError::Truncated { missing: 1 }));
        let mut reader = FrameReader::new();
        reader.extend(&bytes[..2]);
        assert_eq!(reader.finish(), Err(WireError::Truncated { missing: 2 }));
    }

    #[test]
    fn finish_with_bytes_left_unread_is_an_error_not_a_panic() {
        // Found by the `wire_frames` fuzz target: an empty frame's error, then `finish`.
        let mut reader = FrameReader::new();
        reader.extend(&[0, 0, 0, 0, 0, 0, 0, 8]);
        assert_eq!(reader.next_frame(), Err(WireError::Empty));
        assert_eq!(reader.finish(), Err(WireError::Truncated { missing: 0 }));
        // A whole frame (and more) that was never taken.
        let mut reader = FrameReader::new();
        reader.extend(&frames_of(&[ToWorker::Stop, ToWorker::Stop]));
        assert_eq!(reader.finish(), Err(WireError::Truncated { missing: 0 }));
    }

    #[test]
    fn a_garbage_payload_is_malformed_not_a_panic() {
        let mut bytes = vec![4, 0, 0, 0, PROTOCOL_VERSION, 0xff, 0xff, 0xff];
        let mut reader = FrameReader::new();
        reader.extend(&bytes);
        let payload = reader.next_frame().unwrap().unwrap();
        assert!(matches!(
            decode_payload::<ToWorker>(payload),
            Err(WireError::Malformed(_))
        ));
        bytes.clear();
    }
}
