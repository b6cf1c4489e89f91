//! A WebSocket as an async byte stream.
//!
//! [`WsStream`] wraps an [`async_tungstenite::WebSocketStream`] and implements futures-io
//! `AsyncRead`, `AsyncBufRead` and `AsyncWrite` (and tokio's, with the feature `tokio_io`):
//! binary messages become a buffered byte stream, so codecs (`asynchronous_codec`,
//! `tokio_util::codec`), tunnels and protocol crates written against `AsyncRead + AsyncWrite`
//! run over a WebSocket, the same way they run over `ws_stream_wasm` in a browser.
//! Everything that is not bytes (pings, pongs, close frames, errors) is published as a
//! [`WsEvent`] through [`pharos::Observable`].
//!
//! What it promises, in short (the details are on [`WsIo`]):
//! - it never panics on peer input, and a flood of control frames does not grow the stack;
//! - `Ok(0)` only after a clean close; a truncated stream or a peer's error code is an error;
//! - bad input (text, invalid UTF-8, oversized messages, protocol violations) gets the matching
//!   close code, an event and an `InvalidData` error, after every byte that came before it;
//! - written bytes never get stuck: small writes are coalesced, and a polled reader pushes them
//!   out, so `futures::io::copy` over the split halves does not stall;
//! - close with a code and reason, a close timeout, keepalive pings with dead-peer detection.
//!
//! # Example
//!
//! ```
//! use async_tungstenite::{accept_async, client_async};
//! use futures::{AsyncReadExt, AsyncWriteExt, future::join};
//! use ws_stream_tungstenite::WsStream;
//!
//! # futures::executor::block_on(async {
//! // Any AsyncRead + AsyncWrite transport works; here an in-memory pipe stands in for TCP.
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let (a, b) = (
//!     async_tungstenite::tokio::TokioAdapter::new(a),
//!     async_tungstenite::tokio::TokioAdapter::new(b),
//! );
//!
//! let server = async {
//!     let mut stream = WsStream::new(accept_async(b).await.unwrap());
//!     let mut received = Vec::new();
//!     stream.read_to_end(&mut received).await.unwrap(); // EOF: the client closed cleanly
//!     received
//! };
//! let client = async {
//!     let (ws, _response) = client_async("ws://localhost/", a).await.unwrap();
//!     let mut stream = WsStream::new(ws);
//!     stream.write_all(b"hello, ").await.unwrap();
//!     stream.write_all(b"world").await.unwrap();
//!     stream.close().await.unwrap(); // flushes, then sends close 1000
//!     let mut rest = Vec::new();
//!     stream.read_to_end(&mut rest).await.unwrap(); // completes the close handshake
//! };
//! let (received, ()) = join(server, client).await;
//! assert_eq!(received, b"hello, world");
//! # });
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Peer input must never panic the library; tests may.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(all(feature = "browser", target_arch = "wasm32"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "browser", target_arch = "wasm32"))))]
pub mod browser;
mod config;
mod core;
mod futures_io;
mod split;
#[cfg(feature = "tokio_io")]
mod tokio_io;
mod transport;
mod ws_err;
mod ws_event;
mod ws_stream;

pub use crate::{
    config::{Config, TextPolicy},
    split::{ReadHalf, ReuniteError, WriteHalf},
    transport::{Joined, Transport},
    ws_err::WsErr,
    ws_event::WsEvent,
    ws_stream::{WsIo, WsStream},
};

/// The README's examples compile.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
