use asynchronous_codec::Framed;
use futures::{AsyncRead, AsyncWrite, SinkExt, StreamExt};

use crate::{Error, FrameCodec, Reply, Request};

/// The calling end of the protocol, over any byte stream.
///
/// One request at a time: [`call`](Self::call) sends a request, flushes it and waits for the
/// reply. End the session with [`close`](Self::close) (the client closes first) or
/// [`bye`](Self::bye) (the server closes first); both wait until the stream has ended, so
/// the transport is done when they return.
#[derive(Debug)]
pub struct Client<T> {
    framed: Framed<T, FrameCodec<Reply, Request>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Client<T> {
    /// Speak the protocol over `io`.
    pub fn new(io: T) -> Self {
        Self {
            framed: Framed::new(io, FrameCodec::new()),
        }
    }

    /// Send `request` and wait for its reply.
    ///
    /// # Errors
    ///
    /// - [`Error::Closed`] if the stream ends before the reply arrives;
    /// - [`Error::Io`], [`Error::Json`] or [`Error::FrameTooLarge`] from the transport or
    ///   the codec.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped after the request went out, its reply is
    /// still on its way and would be taken as the reply to the next call. Drop the client
    /// instead.
    pub async fn call(&mut self, request: Request) -> Result<Reply, Error> {
        // `send` flushes, so the request reaches the transport before we wait.
        self.framed.send(&request).await?;
        self.framed.next().await.unwrap_or(Err(Error::Closed))
    }

    /// End the session from this side: close the writing half, then read until the server
    /// closes too.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] if the server still sends a message; transport errors as they come,
    /// e.g. `UnexpectedEof` if the stream was cut rather than closed.
    pub async fn close(mut self) -> Result<(), Error> {
        self.framed.close().await?;
        match self.framed.next().await {
            None => Ok(()),
            Some(Ok(_)) => Err(Error::Protocol("message from the server after close")),
            Some(Err(e)) => Err(e),
        }
    }

    /// Ask the server to end the session ([`Request::Bye`]): wait for [`Reply::Bye`] and the
    /// end of the stream, then close this side.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] on any other reply or a message after it; [`Error::Closed`] if the
    /// stream ends before the reply; transport errors as they come.
    pub async fn bye(mut self) -> Result<(), Error> {
        if self.call(Request::Bye).await? != Reply::Bye {
            return Err(Error::Protocol("unexpected reply to bye"));
        }
        if self.framed.next().await.transpose()?.is_some() {
            return Err(Error::Protocol("message from the server after bye"));
        }
        self.framed.close().await
    }
}
