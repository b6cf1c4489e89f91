use asynchronous_codec::Framed;
use futures::{AsyncRead, AsyncWrite, SinkExt, StreamExt};

use crate::{Error, FrameCodec, Reply, Request};

/// How a session that ended cleanly went, as returned by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// How many frames were answered, malformed ones included.
    pub requests: usize,
    /// `true` if the client ended the session with [`Request::Bye`] (the server closed first),
    /// `false` if the client closed the connection.
    pub bye: bool,
}

/// The answer to one request. Pure: no IO, no state.
pub fn handle(request: Request) -> Reply {
    match request {
        Request::Echo { text } => Reply::Echo { text },
        Request::Add { a, b } => match a.checked_add(b) {
            Some(value) => Reply::Sum { value },
            None => Reply::Error {
                message: format!("{a} + {b} overflows a 64-bit integer"),
            },
        },
        Request::Reverse { text } => Reply::Reversed {
            text: text.chars().rev().collect(),
        },
        Request::Bye => Reply::Bye,
    }
}

/// Answer requests on `io` until the session ends, then close `io`.
///
/// A malformed request gets a [`Reply::Error`] and the session goes on. The session ends
/// cleanly when the client closes the stream (this side then closes too) or after
/// [`Request::Bye`] (this side closes first, then reads until the client's end of stream).
///
/// # Errors
///
/// Everything fatal: transport errors (a stream cut in the middle of a frame or without a
/// clean close is `UnexpectedEof`), [`Error::FrameTooLarge`], and [`Error::Protocol`] for a
/// request after bye. The transport should then be dropped.
pub async fn serve<T: AsyncRead + AsyncWrite + Unpin>(io: T) -> Result<Served, Error> {
    let mut framed = Framed::new(io, FrameCodec::<Request, Reply>::new());
    let mut served = Served {
        requests: 0,
        bye: false,
    };

    while let Some(next) = framed.next().await {
        let reply = match next {
            Ok(request) => handle(request),
            // The codec consumed the bad frame: the stream is still in sync.
            Err(Error::Json(e)) => Reply::Error {
                message: format!("malformed request: {e}"),
            },
            Err(e) => return Err(e),
        };
        served.requests += 1;
        framed.send(&reply).await?;

        if reply == Reply::Bye {
            served.bye = true;
            framed.close().await?;
            // Reading on until the end of stream lets the peer finish closing (on a WebSocket
            // this completes the close handshake); it must not send anything more.
            return match framed.next().await {
                None => Ok(served),
                Some(Ok(_)) => Err(Error::Protocol("request after bye")),
                Some(Err(e)) => Err(e),
            };
        }
    }

    // The client closed first: close our side too.
    framed.close().await?;
    Ok(served)
}
