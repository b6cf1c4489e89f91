//! The implementations under test and how each one turns a connected TCP stream into something
//! the scenarios can drive.

use std::future::ready;
use std::io;

use async_tungstenite::WebSocketStream;
use async_tungstenite::bytes::{ByteReader, ByteWriter};
use async_tungstenite::tokio::TokioAdapter;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::TcpStream;
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};

use crate::count::Sock;

/// A duplex tokio byte stream. All byte-stream implementations are driven through this trait
/// object, so every one of them pays the same dynamic-dispatch cost.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin + ?Sized> Duplex for T {}

/// async-tungstenite 0.35 over tokio's TCP stream.
pub type Ws = WebSocketStream<TokioAdapter<Sock>>;

/// What a scenario gets for one endpoint.
pub enum Conn {
    /// A byte stream.
    Io(Box<dyn Duplex>),
    /// The raw message API (`at-msg`).
    Msg(Box<Ws>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Impl {
    Tcp,
    TcpBuf,
    AtMsg,
    AtBytes,
    TokioUtil,
    Public,
    Ours,
    OursSmallRead,
}

/// The read buffer given to tungstenite by the `ours-rb4k` variant.
pub const SMALL_READ_BUFFER: usize = 4 * 1024;

impl Impl {
    pub const ALL: [Impl; 8] = [
        Impl::Tcp,
        Impl::TcpBuf,
        Impl::AtMsg,
        Impl::AtBytes,
        Impl::TokioUtil,
        Impl::Public,
        Impl::Ours,
        Impl::OursSmallRead,
    ];

    /// The short name used in tables, charts and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Impl::Tcp => "tcp",
            Impl::TcpBuf => "tcp-bufw",
            Impl::AtMsg => "at-msg",
            Impl::AtBytes => "at-bytes",
            Impl::TokioUtil => "tokio-util",
            Impl::Public => "wst-0.15",
            Impl::Ours => "ours",
            Impl::OursSmallRead => "ours-rb4k",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Impl::Tcp => "raw `tokio::net::TcpStream`, unbuffered (no WebSocket)",
            Impl::TcpBuf => {
                "raw TCP, writes through a 64 KiB `tokio::io::BufWriter` (no WebSocket)"
            }
            Impl::AtMsg => {
                "raw async-tungstenite 0.35 messages: one `Message::Binary` per write (`feed`, \
                 flushed where the scenario flushes)"
            }
            Impl::AtBytes => {
                "async-tungstenite 0.35 `bytes::ByteReader` + `ByteWriter` over `split()` halves, \
                 joined with `tokio::io::join`"
            }
            Impl::TokioUtil => {
                "tokio-util `StreamReader` + `SinkWriter` + `CopyToBytes` over `split()` halves, \
                 joined with `tokio::io::join`"
            }
            Impl::Public => {
                "ws_stream_tungstenite 0.15 from crates.io (async-tungstenite 0.29), tokio traits \
                 (`tokio_io`)"
            }
            Impl::Ours => "this crate, `WsStream::new` (default `Config`), tokio traits",
            Impl::OursSmallRead => {
                "this crate, default `Config`, tungstenite `read_buffer_size` 4 KiB (both ends)"
            }
        }
    }

    /// Whether the implementation can run in this build.
    pub fn available(self) -> bool {
        match self {
            Impl::Ours | Impl::OursSmallRead => ours_available(),
            _ => true,
        }
    }

    fn ws_config(self) -> Option<WebSocketConfig> {
        match self {
            Impl::OursSmallRead => {
                Some(WebSocketConfig::default().read_buffer_size(SMALL_READ_BUFFER))
            }
            _ => None,
        }
    }
}

const REQUEST: &str = "ws://127.0.0.1/bench";

/// Runs the handshake (for WebSocket implementations) and wraps the endpoint.
pub async fn setup(imp: Impl, role: Role, tcp: TcpStream) -> io::Result<Conn> {
    let tcp = Sock::new(tcp);
    match imp {
        Impl::Tcp => return Ok(Conn::Io(Box::new(tcp))),
        Impl::TcpBuf => return Ok(Conn::Io(Box::new(BufWriter::with_capacity(64 * 1024, tcp)))),
        Impl::Public => return public(role, tcp).await.map(Conn::Io),
        _ => {}
    }
    let ws = handshake(role, tcp, imp.ws_config()).await?;
    Ok(match imp {
        Impl::AtMsg => Conn::Msg(Box::new(ws)),
        Impl::AtBytes => {
            let (tx, rx) = ws.split();
            Conn::Io(Box::new(tokio::io::join(
                ByteReader::new(rx),
                ByteWriter::new(tx),
            )))
        }
        Impl::TokioUtil => Conn::Io(tokio_util_stream(ws)),
        Impl::Ours | Impl::OursSmallRead => Conn::Io(
            ours(ws).ok_or_else(|| io::Error::other("`ours` is not built into this bench yet"))?,
        ),
        Impl::Tcp | Impl::TcpBuf | Impl::Public => unreachable!("handled above"),
    })
}

async fn handshake(role: Role, tcp: Sock, config: Option<WebSocketConfig>) -> io::Result<Ws> {
    match role {
        Role::Client => async_tungstenite::tokio::client_async_with_config(REQUEST, tcp, config)
            .await
            .map(|(ws, _response)| ws),
        Role::Server => async_tungstenite::tokio::accept_async_with_config(tcp, config).await,
    }
    .map_err(io::Error::other)
}

/// tokio-util composed by hand: binary payloads in, `Bytes` chunks out.
fn tokio_util_stream(ws: Ws) -> Box<dyn Duplex> {
    let (tx, rx) = ws.split();
    let reader = StreamReader::new(rx.map_err(io::Error::other).try_filter_map(|msg| {
        ready(Ok(match msg {
            Message::Binary(b) => Some(b),
            _ => None,
        }))
    }));
    let writer = SinkWriter::new(CopyToBytes::new(
        tx.sink_map_err(io::Error::other)
            .with(|b: Bytes| ready(Ok::<_, io::Error>(Message::Binary(b)))),
    ));
    Box::new(tokio::io::join(reader, writer))
}

/// The published crate, on its own async-tungstenite (0.29).
async fn public(role: Role, tcp: Sock) -> io::Result<Box<dyn Duplex>> {
    let ws = match role {
        Role::Client => at29::tokio::client_async(REQUEST, tcp)
            .await
            .map(|(ws, _response)| ws),
        Role::Server => at29::tokio::accept_async(tcp).await,
    }
    .map_err(io::Error::other)?;
    Ok(Box::new(upstream::WsStream::new(ws)))
}

// ---- this crate ---------------------------------------------------------------------------------

/// Whether `ours` below is wired up.
const fn ours_available() -> bool {
    true
}

/// Wraps an established WebSocket in this crate's `WsStream` (default `Config`).
fn ours(ws: Ws) -> Option<Box<dyn Duplex>> {
    Some(Box::new(ws_stream_tungstenite::WsStream::new(ws)))
}
