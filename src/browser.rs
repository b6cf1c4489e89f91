//! The browser side: [`BrowserStream`], a browser's `WebSocket` as the same byte stream.
//!
//! Feature `browser`, target `wasm32-unknown-unknown` (in a page or a worker, with
//! `wasm-bindgen`); on other targets the feature adds nothing. A protocol crate written against
//! futures' `AsyncRead + AsyncWrite` runs over [`BrowserStream`] in the browser and over
//! [`WsStream`](crate::WsStream) on the server, and both keep one contract: the same
//! [`Config`](crate::Config), [`WsErr`](crate::WsErr) and [`WsEvent`](crate::WsEvent).
//!
//! ```no_run
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! use ws_stream_tungstenite::{WsErr, browser::BrowserStream};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut stream = BrowserStream::connect("ws://127.0.0.1:9001/").await?;
//! stream.write_all(b"ping").await?;
//! stream.flush().await?;
//! let mut all = Vec::new();
//! // Ok only if the server closed cleanly (1000, 1001 or no code); an error for 1006 (cut),
//! // for another code, or for a text message.
//! match stream.read_to_end(&mut all).await {
//!     Ok(_) => println!("the server finished: {} bytes", all.len()),
//!     Err(e) => match e.get_ref().and_then(|e| e.downcast_ref::<WsErr>()) {
//!         Some(WsErr::PeerClosed { code, reason }) => println!("server error {code}: {reason}"),
//!         _ => println!("the connection failed after {} bytes: {e}", all.len()),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! # The contract in a browser
//!
//! Reading:
//! - only binary messages are read (binary type `arraybuffer`), in order, byte for byte;
//!   empty messages are skipped; `poll_fill_buf` hands out the current message without
//!   copying;
//! - `Ok(0)` only when the close event is clean with code 1000, 1001 or 1005 (no code), or
//!   after our own close completed; code 1006 (the connection ended without a close
//!   handshake, reset or dropped: browsers do not tell these apart) is
//!   [`UnexpectedEof`](std::io::ErrorKind::UnexpectedEof)
//!   ([`WsErr::ClosedWithoutHandshake`](crate::WsErr::ClosedWithoutHandshake)); any other code
//!   is [`ConnectionAborted`](std::io::ErrorKind::ConnectionAborted) carrying
//!   [`WsErr::PeerClosed`](crate::WsErr::PeerClosed) with the code and reason;
//! - a text message (under the default [`TextPolicy::Reject`](crate::TextPolicy::Reject))
//!   makes the stream close the socket at once, with **4003** "only binary messages are
//!   supported" (a page may send only 1000 and 3000–4999, so not the native 1003); the reader
//!   gets every byte that came before, then [`InvalidData`](std::io::ErrorKind::InvalidData)
//!   ([`WsErr::ReceivedText`](crate::WsErr::ReceivedText)). Under `TextPolicy::Accept` the
//!   UTF-8 bytes join the stream.
//!
//! Writing:
//! - small writes are gathered into messages of at most
//!   [`Config::max_message_size`](crate::Config::max_message_size); a larger write goes out as
//!   such messages, straight from the caller's buffer;
//! - backpressure: a write returns `Pending` while the socket's `bufferedAmount` is at or above
//!   [`Config::browser_high_water`](crate::Config::browser_high_water) (1 MiB by default), and
//!   a timer re-checks it (browsers fire no event when it drops), so the browser holds at most
//!   that plus one message however fast the caller writes;
//! - no silent loss: `flush` returns `Ok` only once everything written left the page
//!   (`bufferedAmount` reached 0) *and* the socket was still open a moment (10 ms) later.
//!   Chromium drops a message that reaches its network process after the peer's close while
//!   `bufferedAmount` still returns to 0, so a drained buffer alone proves nothing; the socket
//!   turns `CLOSING` as soon as the network process saw the close. When the connection ends
//!   before delivery could be confirmed, `flush`, `close` and later writes return an error
//!   (the connection's error, or [`NotConnected`](std::io::ErrorKind::NotConnected)), never
//!   `Ok`;
//! - `close` (and [`close_with`](BrowserStream::close_with), which chooses the code and
//!   reason) flushes as above, sends the close frame and waits for the close event, all within
//!   [`Config::close_timeout`](crate::Config::close_timeout) from the call, else
//!   [`TimedOut`](std::io::ErrorKind::TimedOut) (and the reader ends with it too);
//! - dropping the stream while the socket is open closes it with **4006** "dropped without
//!   close": a native stream that is dropped just cuts the connection, which a page cannot
//!   do, so the peer sees an error code rather than a normal end.
//!
//! Events ([`pharos::Observable`]): [`WsEvent::CloseFrame`](crate::WsEvent::CloseFrame) with
//! the peer's code and reason (none for 1005; no event for 1006, when no frame came),
//! [`WsEvent::Error`](crate::WsEvent::Error) for text and for an end in error, then
//! [`WsEvent::Closed`](crate::WsEvent::Closed); the observers' streams end after it, or when
//! the stream is dropped. Events are delivered while the stream is polled.
//!
//! Every end of the connection wakes every pending operation, on both halves of a split
//! stream. Nothing here panics on a browser error.
//!
//! # What a browser cannot do
//!
//! - **No pings.** The WebSocket API sends no pings and shows no pongs (the browser answers
//!   the server's pings itself). Keepalive is the server's job: give its
//!   [`WsStream`](crate::WsStream) a [`ping_interval`](crate::Config::ping_interval). The
//!   browser side ignores `ping_interval`, `ping_timeout` and `send_timeout`.
//! - **No receive backpressure.** The browser reads every message as it arrives and hands it
//!   to the page; nothing tells it to stop. Messages the reader has not taken yet wait in a
//!   queue that only the reader shrinks: read steadily, or have the protocol bound what the
//!   server sends (requests and replies, credits).
//! - **Delivery is inferred, not acknowledged.** A confirmed flush means the bytes reached the
//!   browser's network layer while the connection was open, which the settle time above
//!   covers in every run measured (the peer closing with 1011 while the page writes and
//!   flushes as fast as it can). Only an application-level acknowledgement proves that the
//!   peer's application read them; that holds for the native side too.
//! - A reset and a dropped connection are both 1006, so both read as `UnexpectedEof`.

mod socket;
mod stream;

pub use self::stream::BrowserStream;
