//! One value as one datagram: the version byte, the postcard bytes and the descriptors.

use std::cell::Cell;
use std::os::fd::OwnedFd;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::PROTOCOL_VERSION;
use super::error::IpcError;
use crate::fdpass;

/// A value encoded as one datagram: the version byte, its bytes and its descriptors.
pub(super) struct Outgoing {
    pub(super) bytes: Vec<u8>,
    pub(super) fds: Vec<OwnedFd>,
}

impl Outgoing {
    pub(super) fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, IpcError> {
        let encoded = fdpass::encode(value).map_err(IpcError::Encode)?;
        Ok(Outgoing {
            bytes: encoded.bytes,
            fds: encoded.fds,
        })
    }

    /// The datagram's size.
    pub(super) fn size(&self) -> usize {
        1 + self.bytes.len()
    }

    pub(super) fn check_size(&self, limit: usize) -> Result<(), IpcError> {
        if self.size() > limit {
            return Err(IpcError::TooLarge {
                size: self.size(),
                limit,
            });
        }
        Ok(())
    }
}

/// Decodes one received datagram: the version byte, then the value (whose [`SharedFd`]s take
/// `fds`). Never panics, whatever the bytes.
pub(super) fn decode_message<T: DeserializeOwned>(
    datagram: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, IpcError> {
    match datagram.split_first() {
        None => Err(IpcError::Codec {
            detail: "empty datagram (no protocol version byte)".into(),
            source: None,
        }),
        Some((&found, _)) if found != PROTOCOL_VERSION => Err(IpcError::Version {
            found,
            expected: PROTOCOL_VERSION,
        }),
        Some((_, body)) => {
            DECODE_DETAIL.set(None);
            fdpass::decode(body, fds).map_err(|error| {
                // postcard keeps only the kind of a custom error; ours left its text here.
                let why = DECODE_DETAIL.take().unwrap_or_else(|| error.to_string());
                IpcError::Codec {
                    detail: format!(
                        "{} bytes do not decode as {}: {why}",
                        body.len(),
                        std::any::type_name::<T>()
                    ),
                    source: Some(error),
                }
            })
        }
    }
}

/// The received-message decoder, exposed only for the `ipc_message` fuzz target
/// (`fuzz/fuzz_targets/ipc_message.rs`), which cannot reach the private function; not an API.
#[doc(hidden)]
pub fn fuzz_decode_message<T: DeserializeOwned>(
    datagram: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, IpcError> {
    decode_message(datagram, fds)
}

thread_local! {
    /// The text of the last custom error raised while deserialising a [`PipeEnd`] or a
    /// [`Queue`] on this thread; postcard's error keeps only its kind.
    static DECODE_DETAIL: Cell<Option<String>> = const { Cell::new(None) };
}

/// A serde error for a handle that failed to deserialise, keeping its text for
/// [`IpcError::Codec`]'s detail.
pub(super) fn handle_error<E: serde::de::Error>(text: String) -> E {
    DECODE_DETAIL.set(Some(text.clone()));
    E::custom(text)
}
