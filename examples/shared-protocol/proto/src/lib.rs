//! A tiny request/reply protocol that knows nothing of WebSockets.
//!
//! Everything here is generic over futures' [`AsyncRead`] + [`AsyncWrite`] + [`Unpin`], so the
//! very same code runs in a browser over `ws_stream_wasm`'s `WsStream::into_io()` and on a
//! native server over `ws_stream_tungstenite::WsStream`, or over a TCP socket or an in-memory
//! pipe in tests.
//!
//! On the wire each message is a frame: a 4-byte big-endian length, then that many bytes of
//! JSON ([`FrameCodec`], built on `asynchronous-codec`). The byte stream below may cut and glue
//! frames anywhere; the codec does not care where message boundaries of the transport fall.
//!
//! - [`Client`] sends a [`Request`] and waits for its [`Reply`].
//! - [`serve`] answers requests until the peer closes the connection or says [`Request::Bye`].
//!
//! Both ends close cleanly: whoever closes first shuts its writing side, then reads until the
//! end of the stream, so no reply is ever cut off.
//!
//! ```
//! use futures::{executor::block_on, future::join};
//! # fn pipe() -> (impl futures::AsyncRead + futures::AsyncWrite + Unpin, impl futures::AsyncRead + futures::AsyncWrite + Unpin) {
//! #     use tokio_util::compat::TokioAsyncReadCompatExt;
//! #     let (a, b) = tokio::io::duplex(64);
//! #     (a.compat(), b.compat())
//! # }
//! use proto::{Client, Reply, Request, serve};
//!
//! let (client_io, server_io) = pipe(); // any AsyncRead + AsyncWrite pair
//!
//! let client = async {
//!     let mut client = Client::new(client_io);
//!     let sum = client.call(Request::Add { a: 2, b: 3 }).await?;
//!     assert_eq!(sum, Reply::Sum { value: 5 });
//!     client.close().await
//! };
//!
//! let (client, served) = block_on(join(client, serve(server_io)));
//! client?;
//! assert_eq!(served?.requests, 1);
//! # Ok::<(), proto::Error>(())
//! ```
//!
//! [`AsyncRead`]: futures::AsyncRead
//! [`AsyncWrite`]: futures::AsyncWrite
#![forbid(unsafe_code)]

mod client;
mod codec;
mod error;
mod message;
mod server;

pub use client::Client;
pub use codec::{FrameCodec, MAX_FRAME_LEN};
pub use error::Error;
pub use message::{Reply, Request};
pub use server::{Served, handle, serve};
