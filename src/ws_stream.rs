//! The byte stream type: construction, accessors, closing with a code, pings, events.

use std::{fmt, future::poll_fn, io};

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use pharos::{Observable, Observe, ObserveConfig};
use tungstenite::protocol::frame::coding::CloseCode;

use crate::{CloseHandle, Config, Transport, WsErr, WsEvent, core::Core};

/// A WebSocket over async-tungstenite's [`WebSocketStream`], as a byte stream.
///
/// This is the type to name in your code; it is [`WsIo`] over a `WebSocketStream<S>`, where `S`
/// is the connection under the WebSocket (TCP, TLS, ...): see
/// [Naming the stream types](crate#naming-the-stream-types) for `S` with each runtime. All
/// methods and trait implementations are documented on [`WsIo`].
///
/// # A TCP client
///
/// `connect_async` (feature `tokio-runtime`) gives a `WebSocketStream<ConnectStream>`. This
/// client sends a line to the `echo_server` example (`cargo run -p integrations --example
/// echo_server -- 127.0.0.1:9001`), reads the echo, then closes with 1000: the client finishes
/// last, so it closes.
///
/// ```no_run
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// use ws_stream_tungstenite::{
///     WsStream,
///     async_tungstenite::tokio::{ConnectStream, connect_async},
/// };
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let (ws, _response) = connect_async("ws://127.0.0.1:9001/").await?;
///     let mut stream: WsStream<ConnectStream> = WsStream::new(ws);
///
///     stream.write_all(b"hello\n").await?;
///     stream.flush().await?;
///     let mut echo = [0; 6];
///     stream.read_exact(&mut echo).await?;
///     print!("{}", String::from_utf8_lossy(&echo));
///
///     stream.close().await?; // close 1000
///     stream.read_to_end(&mut Vec::new()).await?; // EOF: the server answered our close
///     Ok(())
/// }
/// ```
///
/// # A TCP server
///
/// `accept_async` (feature `tokio-runtime`) takes the accepted `TcpStream` and gives a
/// `WebSocketStream<TokioAdapter<TcpStream>>`. This server echoes every connection on its own
/// task, until the client closes.
///
/// ```no_run
/// use tokio::net::{TcpListener, TcpStream};
/// use ws_stream_tungstenite::{
///     WsStream,
///     async_tungstenite::tokio::{TokioAdapter, accept_async},
/// };
///
/// type ServerStream = WsStream<TokioAdapter<TcpStream>>;
///
/// async fn echo(stream: ServerStream) -> std::io::Result<u64> {
///     let (mut reader, mut writer) = stream.into_split();
///     // Ends with EOF when the client closes with 1000 or 1001; an error for other codes.
///     futures::io::copy(&mut reader, &mut writer).await
/// }
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:9001").await?;
///     loop {
///         let (tcp, peer) = listener.accept().await?;
///         tokio::spawn(async move {
///             let outcome = match accept_async(tcp).await {
///                 Ok(ws) => echo(WsStream::new(ws)).await,
///                 Err(handshake) => Err(std::io::Error::other(handshake)),
///             };
///             println!("{peer}: {outcome:?}");
///         });
///     }
/// }
/// ```
pub type WsStream<S> = WsIo<WebSocketStream<S>>;

/// A WebSocket as a duplex byte stream: futures-io
/// [`AsyncRead`](futures_io::AsyncRead), [`AsyncBufRead`](futures_io::AsyncBufRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) (and tokio's, with the feature `tokio_io`).
///
/// `T` is any [`Transport`]: a `Stream` and `Sink` of tungstenite messages, such as
/// async-tungstenite's or tokio-tungstenite's `WebSocketStream`. Most code names
/// [`WsStream<S>`], the alias for async-tungstenite.
///
/// # The contract
///
/// Reading:
/// - only the payloads of binary messages are read, in order, byte for byte; empty messages are
///   skipped; text is rejected with close code 1003, or read as bytes under
///   [`TextPolicy::Accept`](crate::TextPolicy::Accept);
/// - `Ok(0)` means the peer closed cleanly (close handshake done, code 1000, 1001 or none);
///   anything else ends in an error: [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) when the
///   transport ended without a close handshake, the peer's code and reason
///   ([`WsErr::PeerClosed`]) for other codes, `InvalidData` for bad input (after the bytes that
///   came before it, and a close frame with the matching code);
/// - pings, pongs and close frames go to the [observers](#impl-Observable<WsEvent>-for-WsIo<T>),
///   never into the stream.
///
/// Writing:
/// - small writes are gathered into one message until a flush or until the message is full
///   ([`Config::max_message_size`], 32 KiB by default); large writes are cut into such messages;
/// - nothing written gets stuck: every poll, of the stream or of either
///   [half](Self::into_split) (read, write, flush, close, ping), first moves what is due —
///   our pings, then full messages and anything a flush or a waiting reader asked for, then
///   our close frame — and checks the timers. A polled reader pushes pending output out, and a
///   write wakes a parked reader to do so, so an echo with
///   [`futures::io::copy`](https://docs.rs/futures/latest/futures/io/fn.copy.html) over the
///   split halves never stalls, on any executor. Only a stream that is never read needs
///   explicit flushes, as with any buffered writer;
/// - no silent loss: bytes leave the buffer only once the transport took them. `flush` returns
///   `Ok` only when everything written reached the transport and was flushed, and `close` only
///   when, in addition, our close frame followed it out (or the peer closed first and the answer
///   went out). Bytes that can no longer be sent (the peer's close arrived first — a WebSocket
///   has no half-close —, the transport failed, a timer ended the connection) make `flush` and
///   `close` fail: [`NotConnected`](io::ErrorKind::NotConnected), or the connection's error;
/// - `close` sends a close frame (1000, or the code given to [`close_with`](Self::close_with))
///   after the buffered bytes; keep reading until EOF to complete the handshake. The
///   [close timeout](Config::close_timeout) runs from the call, even while the close frame
///   waits behind a congested transport: when it runs out, `close` and the reader end with
///   [`TimedOut`](io::ErrorKind::TimedOut);
/// - after the connection is closed, writes fail with `NotConnected`, or with the error that
///   ended it.
///
/// Liveness: [keepalive](Config::ping_interval) pings go out ahead of buffered bytes and declare
/// a silent peer dead; the [send timeout](Config::send_timeout) declares dead a peer that stopped
/// reading. Every end of the connection, whatever its cause, wakes every pending operation on
/// both halves, which then completes with the connection's error.
///
/// Nothing here panics on peer input, and the stack does not grow with the number of control
/// frames received.
///
/// # Example
///
/// A line protocol over a WebSocket with `asynchronous_codec`:
///
/// ```
/// use asynchronous_codec::{Framed, LinesCodec};
/// use futures::{SinkExt, StreamExt};
/// use ws_stream_tungstenite::WsStream;
///
/// # async fn demo<S>(ws: async_tungstenite::WebSocketStream<S>) -> Result<(), Box<dyn std::error::Error>>
/// # where S: futures::AsyncRead + futures::AsyncWrite + Unpin {
/// let mut lines = Framed::new(WsStream::new(ws), LinesCodec);
/// lines.send("hello\n".to_string()).await?;
/// while let Some(line) = lines.next().await {
///     println!("got {}", line?.trim_end());
/// }
/// # Ok(()) }
/// ```
pub struct WsIo<T> {
    pub(crate) core: Core<T>,
}

impl<S> WsIo<WebSocketStream<S>> {
    /// Wraps an async-tungstenite WebSocket with the default [`Config`].
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self::with_config(ws, Config::default())
    }

    /// Wraps an async-tungstenite WebSocket with the given [`Config`].
    ///
    /// Outgoing messages are also kept small enough for the socket's `WebSocketConfig` write
    /// buffer limits.
    pub fn with_config(ws: WebSocketStream<S>, config: Config) -> Self {
        let ws_config = *ws.get_config();
        Self {
            core: Core::new(ws, config, Some(&ws_config)),
        }
    }
}

impl<T> WsIo<T> {
    /// Wraps any [`Transport`] (for example a tokio-tungstenite `WebSocketStream`).
    ///
    /// The transport's write buffer limits are not known here: if you lowered
    /// `max_write_buffer_size`, lower [`Config::max_message_size`] to match.
    ///
    /// With tokio-tungstenite 0.30 (which uses the same tungstenite 0.30), as axum and hyper
    /// upgrades give it (`examples/integrations/axum.rs` shows the upgrade):
    ///
    /// ```
    /// use futures::{AsyncReadExt, AsyncWriteExt};
    /// use tokio::net::TcpStream;
    /// use tokio_tungstenite::WebSocketStream;
    /// use ws_stream_tungstenite::{Config, WsIo};
    ///
    /// async fn echo(tcp: TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    ///     let ws = tokio_tungstenite::accept_async(tcp).await?;
    ///     let stream: WsIo<WebSocketStream<TcpStream>> = WsIo::from_transport(ws, Config::default());
    ///     let (mut reader, mut writer) = stream.into_split();
    ///     futures::io::copy(&mut reader, &mut writer).await?;
    ///     writer.close().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn from_transport(transport: T, config: Config) -> Self {
        Self {
            core: Core::new(transport, config, None),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        self.core.config()
    }

    /// The largest payload of one outgoing message in effect: the configured
    /// [`Config::get_max_message_size`], lowered if the WebSocket's write buffer limit
    /// (`max_write_buffer_size`) leaves less room.
    pub fn max_message_size(&self) -> usize {
        self.core.max_message()
    }

    /// Takes the WebSocket back out, if nothing would be lost: no unread bytes of a received
    /// message and no written bytes that were not flushed.
    ///
    /// # Errors
    ///
    /// Gives the stream back when something would be lost: read the rest or flush first.
    #[allow(
        clippy::result_large_err,
        reason = "hands the stream itself back; not a hot path"
    )]
    pub fn into_inner(self) -> Result<T, Self> {
        if self.core.is_drained() {
            Ok(self.core.into_inner())
        } else {
            Err(self)
        }
    }

    /// A handle that closes this stream from another task (a shutdown signal, a supervisor),
    /// with a code and reason, after the bytes already written: see [`CloseHandle`]. Handles
    /// of one stream share one request; the halves of a [split](Self::into_split) stream hand
    /// out the same.
    pub fn close_handle(&mut self) -> CloseHandle {
        self.core.close_handle()
    }

    /// Gets a reference to the underlying WebSocket.
    pub fn get_ref(&self) -> &T {
        &self.core.inner
    }

    /// Gets a mutable reference to the underlying WebSocket.
    ///
    /// Sending or receiving messages through it bypasses this stream's buffers and state: the
    /// byte stream may then lose or reorder bytes.
    pub fn get_mut(&mut self) -> &mut T {
        self.core.inner_mut()
    }
}

impl<T: Transport> WsIo<T> {
    /// Closes the connection with this close code and reason, after flushing what was written.
    ///
    /// The reason is cut to the 123 bytes a close frame can carry (at a character boundary).
    /// Keep reading until EOF to complete the handshake. If the close frame was already sent
    /// (by an earlier `close`), this only flushes. `Ok` means every byte written before went
    /// out, followed by the close frame.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once polled, the close is under way; dropping the future loses nothing
    /// (what was written still goes out, followed by the close frame, driven by any later
    /// poll of the stream). Call `close` again to learn the outcome.
    ///
    /// # Errors
    ///
    /// [`WsErr::InvalidCloseCode`] (as `InvalidInput`) for codes that may not be sent (1005,
    /// 1006, 1015, reserved ranges), [`WsErr::ControlTooLarge`] (as `InvalidInput`) when
    /// tungstenite's write buffer limit leaves no room for the reason (nothing changes: the
    /// stream stays usable), and the errors of [`AsyncWriteExt::close`].
    ///
    /// [`AsyncWriteExt::close`]: https://docs.rs/futures/latest/futures/io/trait.AsyncWriteExt.html#method.close
    ///
    /// A normal finish is 1000 ([`CloseCode::Normal`], what `close` sends) or 1001
    /// ([`CloseCode::Away`]); the peer reads them as EOF. Other codes reach the peer as an
    /// error ([`WsErr::PeerClosed`]): use them when something went wrong (see
    /// [Closing](crate#closing)).
    ///
    /// ```
    /// # async fn demo(mut stream: ws_stream_tungstenite::WsStream<futures::io::Cursor<Vec<u8>>>) -> std::io::Result<()> {
    /// use ws_stream_tungstenite::CloseCode;
    ///
    /// stream.close_with(CloseCode::Away, "server shutting down").await?;
    /// # Ok(()) }
    /// ```
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.core.set_close_frame(code, reason)?;
        poll_fn(|cx| self.core.poll_close(cx)).await
    }
}

impl<T: Transport> WsIo<T> {
    /// Sends a ping with this payload (at most 125 bytes) and flushes it. The peer's pong is
    /// reported as [`WsEvent::Pong`] and [`WsEvent::RoundTrip`] (with the round-trip time)
    /// while the stream is read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once polled, the ping is queued and goes out with the next poll of the
    /// stream that finds the transport ready, even if this future was dropped.
    ///
    /// # Errors
    ///
    /// [`WsErr::ControlTooLarge`] (`InvalidInput`) for a payload over 125 bytes (or over what
    /// tungstenite's write buffer limit leaves room for); the stream stays usable.
    /// `NotConnected` after close, and the connection's error after it ended.
    ///
    /// ```
    /// # async fn demo(mut stream: ws_stream_tungstenite::WsStream<futures::io::Cursor<Vec<u8>>>) -> std::io::Result<()> {
    /// use ws_stream_tungstenite::Bytes;
    ///
    /// stream.send_ping(Bytes::from_static(b"are you there?")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_ping(&mut self, payload: Bytes) -> io::Result<()> {
        let (mut payload, mut ticket) = (Some(payload), None);
        poll_fn(|cx| self.core.poll_ping(cx, &mut payload, &mut ticket)).await
    }
}

impl<T> fmt::Debug for WsIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unread, unsent) = self.core.buffered();
        f.debug_struct("WsStream")
            .field("state", &self.core.state_name())
            .field("unread", &unread)
            .field("unsent", &unsent)
            .finish_non_exhaustive()
    }
}

/// Observe [`WsEvent`]s: pings, pongs, the peer's close frame, errors and the end.
///
/// ```
/// # async fn demo(mut stream: ws_stream_tungstenite::WsStream<futures::io::Cursor<Vec<u8>>>) -> Result<(), ws_stream_tungstenite::WsErr> {
/// use ws_stream_tungstenite::{Channel, Observable, ObserveConfig};
///
/// // Bounded: a flood of pings cannot grow memory; the reader waits for this observer.
/// let events = stream.observe(ObserveConfig::default().channel(Channel::Bounded(64))).await?;
/// # drop(events); Ok(()) }
/// ```
impl<T> Observable<WsEvent> for WsIo<T> {
    type Error = WsErr;

    fn observe(&mut self, options: ObserveConfig<WsEvent>) -> Observe<'_, WsEvent, Self::Error> {
        let observing = self.core.pharos().observe(options);
        Box::pin(async move { observing.await.map_err(|_| WsErr::Closed) })
    }
}
