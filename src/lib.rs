//! A WebSocket as an async byte stream.
//!
//! [`WsStream`] wraps an [`async_tungstenite::WebSocketStream`] and implements futures-io
//! `AsyncRead`, `AsyncBufRead` and `AsyncWrite` (and tokio's, with the feature `tokio_io`):
//! binary messages become a buffered byte stream, so codecs (`asynchronous_codec`,
//! `tokio_util::codec`), tunnels and protocol crates written against `AsyncRead + AsyncWrite`
//! run over a WebSocket, the same way they run over `ws_stream_wasm` in a browser.
//! Everything that is not bytes (pings, pongs, close frames, errors) is published as a
//! [`WsEvent`] through [`Observable`].
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
//! # Getting started
//!
//! One dependency, with the feature of your runtime (the features are named as
//! async-tungstenite's, see [Features](#features)), next to the runtime and `futures`:
//!
//! ```toml
//! [dependencies]
//! ws_stream_tungstenite = { version = "0.16", features = ["tokio-runtime"] }
//! tokio = { version = "1", features = ["macros", "net", "rt-multi-thread"] }
//! futures = "0.3"
//! ```
//!
//! What else you need to name is re-exported at the versions this crate is built with:
//! [`async_tungstenite`] (connecting and accepting) and [`tungstenite`], [`CloseCode`],
//! [`CloseFrame`], [`Bytes`] (ping payloads), and pharos's [`Observable`] (for
//! `observe`), [`ObserveConfig`], [`Channel`] and [`Events`].
//!
//! # Example: a TCP server and client
//!
//! The server answers one request and waits for the client to close; the client observes
//! events, pings, sends the request, reads the answer and closes with 1000 (normal). Both ends
//! name their stream type.
//!
//! ```
//! use std::error::Error;
//!
//! use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use ws_stream_tungstenite::{
//!     Bytes, Channel, CloseCode, Observable, ObserveConfig, WsEvent, WsStream,
//!     async_tungstenite::tokio::{ConnectStream, TokioAdapter, accept_async, connect_async},
//! };
//!
//! type BoxError = Box<dyn Error + Send + Sync>;
//!
//! async fn serve(tcp: TcpStream) -> Result<(), BoxError> {
//!     let mut stream: WsStream<TokioAdapter<TcpStream>> = WsStream::new(accept_async(tcp).await?);
//!     let mut request = [0; 5];
//!     stream.read_exact(&mut request).await?;
//!     stream.write_all(&request.to_ascii_uppercase()).await?;
//!     stream.flush().await?;
//!     // The client closes once it has its answer: EOF, the close handshake is complete.
//!     let mut rest = Vec::new();
//!     stream.read_to_end(&mut rest).await?;
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), BoxError> {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("ws://{}/", listener.local_addr()?);
//!     let server = tokio::spawn(async move {
//!         let (tcp, _peer) = listener.accept().await?;
//!         serve(tcp).await
//!     });
//!
//!     let (ws, _response) = connect_async(url).await?;
//!     let mut stream: WsStream<ConnectStream> = WsStream::new(ws);
//!     let mut events = stream
//!         .observe(ObserveConfig::default().channel(Channel::Bounded(16)))
//!         .await?;
//!     stream.send_ping(Bytes::from_static(b"are you there?")).await?;
//!
//!     stream.write_all(b"hello").await?;
//!     stream.flush().await?;
//!     let mut answer = [0; 5];
//!     stream.read_exact(&mut answer).await?;
//!     assert_eq!(&answer, b"HELLO");
//!
//!     // A normal finish: 1000. Reading on to EOF receives the server's answer to it.
//!     stream.close_with(CloseCode::Normal, "done").await?;
//!     let mut rest = Vec::new();
//!     stream.read_to_end(&mut rest).await?;
//!     server.await??;
//!
//!     // The events, which end after `Closed`: the pong and the round trip of our ping, the
//!     // server's close frame.
//!     while let Some(event) = events.next().await {
//!         if let WsEvent::RoundTrip { rtt, .. } = event {
//!             println!("round trip: {rtt:?}");
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! [`WsStream`] has examples of each end on its own, [`WsIo::into_split`] of two tasks sharing
//! one connection, and [`WsIo::from_transport`] of other tungstenite transports
//! (tokio-tungstenite, axum and hyper upgrades).
//!
//! # Naming the stream types
//!
//! Name [`WsStream<S>`](WsStream), where `S` is the connection under the WebSocket:
//!
//! | runtime | client, from `connect_async` | server, from `accept_async` on an accepted TCP stream |
//! |---|---|---|
//! | tokio | `WsStream<async_tungstenite::tokio::ConnectStream>` | `WsStream<async_tungstenite::tokio::TokioAdapter<tokio::net::TcpStream>>` |
//! | smol | `WsStream<async_tungstenite::smol::ConnectStream>` | `WsStream<smol::net::TcpStream>` (`async_tungstenite::accept_async`) |
//! | any futures-io `S` | `WsStream<S>` (`async_tungstenite::client_async`) | `WsStream<S>` (`async_tungstenite::accept_async`) |
//!
//! `ConnectStream` keeps its name when a TLS feature is on (it may then be TLS). Compiler
//! messages spell the alias out: `WsStream<S>` is `WsIo<WebSocketStream<S>>`, so
//! `WsIo<WebSocketStream<TokioAdapter<TcpStream>>>` is the tokio server's stream.
//!
//! # Closing
//!
//! A WebSocket ends with a close handshake: one side sends a close frame with a code, the
//! other answers it, and the connection is over in both directions.
//!
//! - **A normal finish is 1000** (normal) **or 1001** (going away, e.g. a server shutting
//!   down): `close()` (tokio: `shutdown()`) sends 1000, [`close_with`](WsIo::close_with) any
//!   code. The peer reads every byte sent before it, then EOF (`Ok(0)`).
//! - **Any other code reports a failure**: the peer's read ends with an error of kind
//!   `ConnectionAborted` that carries the code and reason ([`WsErr::PeerClosed`]). Use them for
//!   what went wrong (1008 policy violation, 1011 internal error, 4000–4999 for your
//!   protocol's own errors), never for "done".
//! - After closing, **keep reading until EOF**: that receives the peer's answer and completes
//!   the handshake, within [`Config::close_timeout`] (10 s by default).
//! - To close from another task (a server's shutdown signal), take a [`CloseHandle`] from the
//!   stream or a half first; it closes with a code after the bytes already written.
//! - **There is no half-close.** A TCP socket can stop writing and go on reading; a WebSocket
//!   cannot: once one side sent its close frame, the other cannot send the rest of its data
//!   (bytes still buffered then are reported: `flush` and `close` fail with `NotConnected`).
//!   So the protocol must say who closes. Either the side that finishes last closes (a client
//!   closes after it read the last answer it expects, as above), or the data carries its own
//!   end (a length prefix, an end-of-data message) and the receiver closes when it sees it. A
//!   client that sends its request and closes right away loses the answer.
//!
//! # futures and tokio traits together
//!
//! With `tokio_io` (turned on by `tokio-runtime`), the stream implements both trait families,
//! and their extension traits share method names (`read_exact`, `read_to_end`, `write_all`,
//! `flush`, ...). With `futures::AsyncWriteExt` and `tokio::io::AsyncWriteExt` both in scope,
//! `stream.write_all(..)` fails with E0034, "multiple applicable items in scope". Importing
//! one of them as `use … as _` avoids the clash of the two names (E0252), not this one.
//!
//! The remedy: in each module (or function), bring one family's extension traits into scope
//! and call the other's methods by their path:
//!
//! ```
//! # #[cfg(feature = "tokio_io")]
//! async fn both<S>(stream: &mut ws_stream_tungstenite::WsStream<S>) -> std::io::Result<()>
//! where
//!     S: futures::AsyncRead + futures::AsyncWrite + Unpin,
//! {
//!     use futures::AsyncWriteExt as _; // method syntax: the futures traits
//!
//!     stream.write_all(b"futures").await?;
//!     tokio::io::AsyncWriteExt::write_all(stream, b" and tokio").await?;
//!     tokio::io::AsyncWriteExt::shutdown(stream).await
//! }
//! ```
//!
//! # Features
//!
//! - `tokio_io`: tokio's `AsyncRead`, `AsyncBufRead` and `AsyncWrite` on the stream and its
//!   halves.
//! - async-tungstenite's own features, under their names, forwarded to the re-exported
//!   [`async_tungstenite`]:
//!   - runtimes: `tokio-runtime` (also turns on `tokio_io`), `smol-runtime`,
//!     `async-std-runtime` (deprecated upstream: async-std is unmaintained);
//!   - TLS for tokio: `tokio-rustls-webpki-roots`, `tokio-rustls-native-certs`,
//!     `tokio-rustls-platform-verifier`, `tokio-rustls-manual-roots`, `tokio-native-tls`,
//!     `tokio-openssl` (each turns on `tokio-runtime`);
//!   - TLS for smol: `futures-rustls-webpki-roots`, `futures-rustls-native-certs`,
//!     `futures-rustls-platform-verifier`, `futures-rustls-manual-roots`, `smol-native-tls`;
//!   - TLS for async-std: `async-native-tls` (deprecated upstream).
//!
//! The rustls flavours bring rustls without a crypto provider: also enable rustls's `ring` or
//! `aws-lc-rs` feature, or install a provider before connecting. `gio-runtime`, the deprecated
//! `async-tls`, `url` and `verbose-logging` are not forwarded: add `async-tungstenite` 0.35 with
//! them to your own dependencies (features unify).
//!
//! Known upstream bug: `smol-runtime` with a `tokio-rustls-*` feature (and no `futures-rustls-*`
//! or `smol-native-tls`) does not compile in async-tungstenite 0.35
//! ([sdroege/async-tungstenite#184](https://github.com/sdroege/async-tungstenite/issues/184)).
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
mod close_handle;
mod config;
mod copy;
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
    close_handle::CloseHandle,
    config::{Config, TextPolicy},
    split::{ReadHalf, ReuniteError, WriteHalf},
    transport::{Joined, Transport},
    ws_err::WsErr,
    ws_event::WsEvent,
    ws_stream::{WsIo, WsStream},
};

// What users name besides this crate's own types, at the versions it is built with: with these,
// `ws_stream_tungstenite` is the only WebSocket crate in a user's Cargo.toml, and an
// async-tungstenite release cannot turn a `cargo add` into type mismatches.
#[doc(no_inline)]
pub use async_tungstenite;
#[doc(no_inline)]
pub use bytes::Bytes;
#[doc(no_inline)]
pub use pharos;
#[doc(no_inline)]
pub use pharos::{Channel, Events, Observable, ObserveConfig};
#[doc(no_inline)]
pub use tungstenite;
#[doc(no_inline)]
pub use tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

/// The README's examples compile.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
