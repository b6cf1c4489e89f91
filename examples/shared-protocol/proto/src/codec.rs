use std::marker::PhantomData;

use asynchronous_codec::{Decoder, Encoder};
use bytes::{Buf, BufMut, BytesMut};
use serde::{Serialize, de::DeserializeOwned};

use crate::Error;

/// The largest payload a frame may carry, in bytes (64 KiB).
///
/// Both directions enforce it, so a peer cannot make the other side buffer without bound.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

const HEADER_LEN: usize = 4;

/// Length-delimited JSON: each frame is a 4-byte big-endian payload length followed by the
/// JSON encoding of one message.
///
/// Decodes `In` and encodes `&Out`: the client uses `FrameCodec<Reply, Request>`, the server
/// `FrameCodec<Request, Reply>`.
///
/// Decoding errors:
/// - [`Error::Json`] when a complete frame holds no valid `In`; the frame is consumed, so the
///   next frame can still be read;
/// - [`Error::FrameTooLarge`] when the header announces more than [`MAX_FRAME_LEN`] bytes; the
///   stream cannot be resynchronized after it.
pub struct FrameCodec<In, Out> {
    // `fn` pointer: the codec owns no `In` or `Out`, so it is Send, Sync and Unpin whatever they are.
    _types: PhantomData<fn(&Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A new codec. It holds no state: partial frames wait in the `Framed` buffer.
    pub fn new() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In, Out> Clone for FrameCodec<In, Out> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<In, Out> std::fmt::Debug for FrameCodec<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCodec").finish()
    }
}

impl<In, Out: Serialize + 'static> Encoder for FrameCodec<In, Out> {
    type Item<'a> = &'a Out;
    type Error = Error;

    fn encode(&mut self, item: &Out, dst: &mut BytesMut) -> Result<(), Error> {
        let start = dst.len();
        // Serialize straight into the buffer behind a placeholder header, then patch the
        // header: no intermediate Vec.
        dst.put_u32(0);
        let written = serde_json::to_writer((&mut *dst).writer(), item);
        let len = dst.len() - start - HEADER_LEN;

        let header = match (written, u32::try_from(len)) {
            (Ok(()), Ok(header)) if len <= MAX_FRAME_LEN => header,
            (written, _) => {
                // Leave frames encoded earlier intact, drop this one whole.
                dst.truncate(start);
                written?;
                return Err(Error::FrameTooLarge {
                    len,
                    max: MAX_FRAME_LEN,
                });
            }
        };
        dst[start..start + HEADER_LEN].copy_from_slice(&header.to_be_bytes());
        Ok(())
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, Error> {
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut len_bytes = [0; HEADER_LEN];
        len_bytes.copy_from_slice(header);
        let len = usize::try_from(u32::from_be_bytes(len_bytes)).unwrap_or(usize::MAX);

        if len > MAX_FRAME_LEN {
            return Err(Error::FrameTooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }

        let frame_len = HEADER_LEN + len;
        if src.len() < frame_len {
            src.reserve(frame_len - src.len());
            return Ok(None);
        }

        src.advance(HEADER_LEN);
        let payload = src.split_to(len);
        Ok(Some(serde_json::from_slice(&payload)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Reply, Request};

    type ServerCodec = FrameCodec<Request, Reply>;
    type ClientCodec = FrameCodec<Reply, Request>;

    fn encode(request: &Request) -> BytesMut {
        let mut buf = BytesMut::new();
        ClientCodec::new().encode(request, &mut buf).unwrap();
        buf
    }

    #[test]
    fn frame_is_length_then_json() {
        let buf = encode(&Request::Add { a: 1, b: -2 });
        let json = br#"{"op":"add","a":1,"b":-2}"#;

        assert_eq!(buf[..HEADER_LEN], (json.len() as u32).to_be_bytes());
        assert_eq!(&buf[HEADER_LEN..], json);
    }

    #[test]
    fn decodes_only_once_the_frame_is_complete_byte_by_byte() {
        let requests = [
            Request::Echo {
                text: "héllo".into(),
            },
            Request::Bye,
            Request::Reverse { text: "".into() },
        ];
        let mut wire = BytesMut::new();
        for request in &requests {
            wire.extend_from_slice(&encode(request));
        }

        let mut codec = ServerCodec::new();
        let mut src = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in wire {
            src.put_u8(byte);
            if let Some(request) = codec.decode(&mut src).unwrap() {
                decoded.push(request);
                assert!(src.is_empty(), "a frame must consume exactly its bytes");
            }
        }

        assert_eq!(decoded, requests);
    }

    #[test]
    fn bad_json_consumes_the_frame_and_the_next_one_decodes() {
        let mut src = BytesMut::new();
        src.put_u32(5);
        src.extend_from_slice(b"nope!");
        src.extend_from_slice(&encode(&Request::Bye));

        let mut codec = ServerCodec::new();

        assert!(matches!(codec.decode(&mut src), Err(Error::Json(_))));
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Request::Bye));
        assert!(src.is_empty());
    }

    #[test]
    fn oversized_header_is_refused_before_buffering() {
        let mut src = BytesMut::new();
        src.put_u32(MAX_FRAME_LEN as u32 + 1);

        let result = ServerCodec::new().decode(&mut src);

        assert!(matches!(
            result,
            Err(Error::FrameTooLarge { len, max: MAX_FRAME_LEN }) if len == MAX_FRAME_LEN + 1
        ));
    }

    #[test]
    fn oversized_message_is_not_encoded_and_earlier_frames_stay() {
        let mut dst = encode(&Request::Bye);
        let before = dst.clone();
        let huge = Request::Echo {
            text: "x".repeat(MAX_FRAME_LEN),
        };

        let result = ClientCodec::new().encode(&huge, &mut dst);

        assert!(matches!(result, Err(Error::FrameTooLarge { .. })));
        assert_eq!(dst, before);
    }

    #[test]
    fn largest_allowed_message_round_trips() {
        // `{"op":"echo","text":""}` is 23 bytes of overhead.
        let text = "y".repeat(MAX_FRAME_LEN - 23);
        let request = Request::Echo { text };
        let mut wire = encode(&request);

        assert_eq!(wire.len(), HEADER_LEN + MAX_FRAME_LEN);
        assert_eq!(ServerCodec::new().decode(&mut wire).unwrap(), Some(request));
    }
}
