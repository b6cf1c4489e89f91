//! The crate's error type.

use std::{io, sync::Arc};

use tungstenite::{
    Error as TungErr,
    error::{CapacityError, ProtocolError},
    protocol::frame::coding::CloseCode,
};

/// Everything that can go wrong in a [`WsStream`](crate::WsStream).
///
/// Each variant says whether it is fatal (the connection is over) and what to do. Errors reach
/// you in two ways:
///
/// - in band, as the [`io::Error`] returned by a read, write, flush or close; convert happens in
///   one place ([`From<WsErr> for io::Error`](#impl-From<WsErr>-for-Error)), and the original
///   `WsErr` can be recovered with [`io::Error::get_ref`] + `downcast_ref::<WsErr>()`;
/// - out of band, as [`WsEvent::Error`](crate::WsEvent::Error), for observers that log.
///
/// `WsErr` is cheap to clone: non-clonable sources are kept behind an [`Arc`].
///
/// ```
/// use std::io;
/// use ws_stream_tungstenite::WsErr;
///
/// let err: io::Error = WsErr::ReceivedText.into();
/// assert_eq!(err.kind(), io::ErrorKind::InvalidData);
///
/// let inner = err.get_ref().and_then(|e| e.downcast_ref::<WsErr>());
/// assert!(matches!(inner, Some(WsErr::ReceivedText)));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WsErr {
    /// The peer sent a text message while the [`TextPolicy`](crate::TextPolicy) is `Reject`
    /// (the default). Fatal: the connection was closed with 1003 (unsupported data); a browser
    /// page may not send 1003, so `browser::BrowserStream` closes with 4003 instead.
    /// Bytes received before the text message were delivered first.
    /// `io::ErrorKind::InvalidData`.
    #[error(
        "the peer sent a text message; only binary messages carry the byte stream (closed with 1003, or 4003 from a browser)"
    )]
    ReceivedText,

    /// The peer sent a text message that is not valid UTF-8. Fatal: the connection was closed
    /// with 1007 (invalid payload). `io::ErrorKind::InvalidData`.
    #[error("the peer sent invalid UTF-8 in a text message: {detail} (closed with 1007)")]
    InvalidUtf8 {
        /// What tungstenite reported.
        detail: String,
    },

    /// A message or frame from the peer exceeded tungstenite's `max_message_size` or
    /// `max_frame_size`. Fatal: the connection was closed with 1009 (message too big).
    /// Raise the limits in `WebSocketConfig` if the peer is right. `io::ErrorKind::InvalidData`.
    #[error("the peer sent a message that is too big: {source} (closed with 1009)")]
    MessageTooBig {
        /// The limit that was hit.
        #[source]
        source: CapacityError,
    },

    /// The peer violated the WebSocket protocol (bad opcode, unmasked client frame, reserved
    /// bits, bad fragmentation, ...). Fatal: the connection was closed with 1002 (protocol
    /// error). `io::ErrorKind::InvalidData`.
    #[error("the peer violated the WebSocket protocol: {source} (closed with 1002)")]
    Protocol {
        /// The violation, as tungstenite detected it.
        #[source]
        source: ProtocolError,
    },

    /// The peer closed the connection with a code other than 1000 (normal) or 1001 (going
    /// away), so the stream did not end normally. Fatal. The handshake was completed.
    /// `io::ErrorKind::ConnectionAborted`.
    #[error("the peer closed the connection with code {code}: {reason:?}")]
    PeerClosed {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason (may be empty).
        reason: String,
    },

    /// The transport ended without a close handshake: the stream was truncated (the peer
    /// crashed, a proxy cut the connection, ...). Fatal. `io::ErrorKind::UnexpectedEof`.
    #[error("the connection ended without a WebSocket close handshake")]
    ClosedWithoutHandshake,

    /// The close handshake did not finish within
    /// [`Config::close_timeout`](crate::Config::close_timeout). Fatal: drop the stream to
    /// release the transport. `io::ErrorKind::TimedOut`.
    #[error("the close handshake did not complete in time")]
    CloseTimeout,

    /// Keepalive: the peer sent nothing, not even a pong, within
    /// [`Config::ping_timeout`](crate::Config::ping_timeout) after a ping. The connection is
    /// considered dead. Fatal: drop the stream to release the transport.
    /// `io::ErrorKind::TimedOut`.
    #[error("the peer did not answer a keepalive ping in time; the connection is considered dead")]
    KeepaliveTimeout,

    /// [`Config::send_timeout`](crate::Config::send_timeout): output due to go out made no
    /// progress into the transport for that long (the peer stopped reading, or the network
    /// stalled). The connection is considered dead. Fatal: drop the stream to release the
    /// transport. `io::ErrorKind::TimedOut`.
    #[error(
        "written data made no progress into the transport in time; the connection is considered dead"
    )]
    SendTimeout,

    /// The connection is closed (by us or by the peer): bytes are refused. Not a new failure,
    /// just the state of things: stop writing. `io::ErrorKind::NotConnected`.
    #[error("the WebSocket connection is closed")]
    Closed,

    /// A close code that may not be sent (1005, 1006, 1015, reserved or out of range codes),
    /// given to [`close_with`](crate::WsIo::close_with). Not fatal: nothing was sent.
    /// `io::ErrorKind::InvalidInput`.
    #[error("close code {code} may not be sent in a close frame")]
    InvalidCloseCode {
        /// The rejected code.
        code: CloseCode,
    },

    /// A ping payload or a close reason does not fit in one control frame: at most 125 bytes
    /// (a close frame: 2 for the code, the rest for the reason), or less when tungstenite's
    /// `max_write_buffer_size` leaves less room. Not fatal: nothing was sent, the stream stays
    /// usable. `io::ErrorKind::InvalidInput`.
    #[error("a control frame carries at most {max} bytes here")]
    ControlTooLarge {
        /// The most a control frame can carry on this connection.
        max: usize,
    },

    /// The transport failed (reset, broken pipe, ...). Fatal. The `io::ErrorKind` is the
    /// transport's.
    #[error("the transport failed: {source}")]
    Io {
        /// The transport's error.
        #[source]
        source: Arc<io::Error>,
    },

    /// The browser side (`browser::BrowserStream::connect`): the URL is not a valid WebSocket
    /// URL (the browser's message is in `detail`). Nothing was opened.
    /// `io::ErrorKind::InvalidInput`.
    #[error("invalid WebSocket URL: {detail}")]
    InvalidUrl {
        /// What the browser reported.
        detail: String,
    },

    /// The browser side (`browser::BrowserStream::connect`): the WebSocket could not be
    /// opened. The server refused or could not be reached, or the handshake failed; browsers
    /// do not tell pages which (the browser's console does). `io::ErrorKind::ConnectionRefused`.
    #[error("could not open a WebSocket to {url}: refused, unreachable or the handshake failed")]
    ConnectFailed {
        /// The URL that was given.
        url: String,
    },

    /// Any other tungstenite error (TLS, or a misconfiguration such as a write buffer limit
    /// smaller than one frame). Fatal. `io::ErrorKind::Other`, with this error as payload.
    #[error("tungstenite error: {source}")]
    Tungstenite {
        /// The underlying error.
        #[source]
        source: Arc<TungErr>,
    },
}

impl WsErr {
    /// The `io::ErrorKind` this error converts to.
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Self::ReceivedText
            | Self::InvalidUtf8 { .. }
            | Self::MessageTooBig { .. }
            | Self::Protocol { .. } => K::InvalidData,
            Self::PeerClosed { .. } => K::ConnectionAborted,
            Self::ClosedWithoutHandshake => K::UnexpectedEof,
            Self::CloseTimeout | Self::KeepaliveTimeout | Self::SendTimeout => K::TimedOut,
            Self::Closed => K::NotConnected,
            Self::InvalidCloseCode { .. } | Self::ControlTooLarge { .. } => K::InvalidInput,
            Self::InvalidUrl { .. } => K::InvalidInput,
            Self::ConnectFailed { .. } => K::ConnectionRefused,
            Self::Io { source } => source.kind(),
            Self::Tungstenite { .. } => K::Other,
        }
    }

    /// Whether the connection is over after this error. Only
    /// [`InvalidCloseCode`](Self::InvalidCloseCode) and
    /// [`ControlTooLarge`](Self::ControlTooLarge) leave it usable.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::InvalidCloseCode { .. } | Self::ControlTooLarge { .. }
        )
    }

    /// The close code this crate sent to the peer because of this error, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::ReceivedText => Some(CloseCode::Unsupported),
            Self::InvalidUtf8 { .. } => Some(CloseCode::Invalid),
            Self::MessageTooBig { .. } => Some(CloseCode::Size),
            Self::Protocol { .. } => Some(CloseCode::Protocol),
            _ => None,
        }
    }

    /// Classifies an error returned by tungstenite.
    pub(crate) fn from_tungstenite(err: TungErr) -> Self {
        match err {
            TungErr::ConnectionClosed | TungErr::AlreadyClosed => Self::Closed,
            TungErr::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                Self::ClosedWithoutHandshake
            }
            TungErr::Protocol(ProtocolError::SendAfterClosing) => Self::Closed,
            TungErr::Protocol(source) => Self::Protocol { source },
            TungErr::Utf8(detail) => Self::InvalidUtf8 { detail },
            TungErr::Capacity(source) => Self::MessageTooBig { source },
            TungErr::Io(source) => Self::Io {
                source: Arc::new(source),
            },
            other => Self::Tungstenite {
                source: Arc::new(other),
            },
        }
    }
}

impl From<WsErr> for io::Error {
    /// The one conversion to `io::Error`: the kind is [`WsErr::kind`], the payload the `WsErr`.
    fn from(err: WsErr) -> Self {
        io::Error::new(err.kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_stays_small() {
        // Errors travel through every poll; keep them a few words wide.
        assert!(
            std::mem::size_of::<WsErr>() <= 40,
            "{}",
            std::mem::size_of::<WsErr>()
        );
    }

    #[test]
    fn kinds() {
        let reset = WsErr::from_tungstenite(TungErr::Protocol(
            ProtocolError::ResetWithoutClosingHandshake,
        ));
        assert_eq!(reset.kind(), io::ErrorKind::UnexpectedEof);
        let io = WsErr::from_tungstenite(TungErr::Io(io::ErrorKind::BrokenPipe.into()));
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        let utf8 = WsErr::from_tungstenite(TungErr::Utf8("bad".into()));
        assert_eq!(utf8.close_code(), Some(CloseCode::Invalid));
        assert_eq!(
            WsErr::from_tungstenite(TungErr::AlreadyClosed).kind(),
            io::ErrorKind::NotConnected
        );
        assert!(
            !WsErr::InvalidCloseCode {
                code: CloseCode::Status
            }
            .is_fatal()
        );
    }
}
