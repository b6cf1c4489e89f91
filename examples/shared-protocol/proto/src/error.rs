use std::io;

/// Everything that can go wrong in [`Client`](crate::Client) and [`serve`](crate::serve).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed, or ended in the middle of a frame (`UnexpectedEof`). Fatal: drop
    /// the connection.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),

    /// A complete frame arrived but its payload is not a valid message. The frame has been
    /// consumed, so the stream is still in sync and the next frame can be read.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),

    /// A frame announced (or a message would need) more than [`MAX_FRAME_LEN`] bytes.
    /// Fatal: the stream cannot be resynchronized.
    ///
    /// [`MAX_FRAME_LEN`]: crate::MAX_FRAME_LEN
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The length of the offending frame.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The peer closed the connection while a reply was still expected. Fatal.
    #[error("connection closed by the peer while a reply was expected")]
    Closed,

    /// The peer broke the protocol, e.g. sent a message after the session ended. Fatal.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}
