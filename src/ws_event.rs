//! Out-of-band events.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tungstenite::protocol::CloseFrame;

use crate::WsErr;

/// What happens on the connection besides the bytes: published through
/// [`pharos::Observable`] on [`WsStream`](crate::WsStream).
///
/// An `io::Error` cannot carry pings, pongs or the peer's close frame, and a byte stream has no
/// place for them either, so they are published here. Observing is optional: with no observer,
/// nothing is queued and nothing is lost that the byte stream would need.
///
/// Observers with bounded channels (`pharos::Channel::Bounded`) apply backpressure: the reader
/// waits until they have room, so events are never dropped. Drain them from another task (or
/// drop the observer, which removes it). After [`Closed`](WsEvent::Closed) the observer's stream
/// ends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WsEvent {
    /// The peer sent a ping with this payload (tungstenite answers it with a pong).
    Ping(Bytes),

    /// The peer sent a pong with this payload.
    Pong(Bytes),

    /// A pong answered a ping that we sent (with [`send_ping`](crate::WsIo::send_ping) or by
    /// keepalive): its payload and the round-trip time. Follows the [`Pong`](WsEvent::Pong).
    RoundTrip {
        /// The payload of the ping and pong.
        payload: Bytes,
        /// Time from sending the ping to reading the pong.
        rtt: Duration,
    },

    /// The peer sent a close frame (its code and reason, or none). For a close that we started,
    /// this is the peer's answer.
    CloseFrame(Option<CloseFrame>),

    /// An error: the ones from bad peer input are also returned in band, after the bytes that
    /// came before them.
    Error(Arc<WsErr>),

    /// The connection is over: the reader returned its last result. No events follow.
    Closed,
}
