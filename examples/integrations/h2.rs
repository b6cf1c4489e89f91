//! Many byte streams over one connection: WebSockets over HTTP/2 (RFC 8441), with hyper 1.
//!
//! Run: `cargo run -p integrations --example h2` (prints one line per stream and exits 0 within
//! a second).
//!
//! A server and a client in one process, on 127.0.0.1 (port 0). The client opens one TCP
//! connection, and on it 8 WebSockets at once, each an HTTP/2 stream of its own. Each stream
//! carries length-delimited frames (`asynchronous_codec::LengthCodec`) that the server echoes
//! byte for byte; then the client closes with 1000 "bye", the server sees that close frame,
//! reads EOF and drops its stream (which ends the HTTP/2 stream), and the client reads EOF.
//!
//! The steps (in `h2_ws.rs`, shared with the tests):
//! 1. server: hyper's HTTP/2 builder with `enable_connect_protocol()` (and larger windows, see
//!    `Windows::RECOMMENDED`); each extended CONNECT request with `:protocol = websocket` and
//!    `sec-websocket-version: 13` gets a `200` (no `Sec-WebSocket-Accept`), then
//!    `hyper::upgrade::on(&mut request)`;
//! 2. client: the HTTP/2 handshake, then wait until the server's SETTINGS allowed extended
//!    CONNECT, then one `CONNECT` request per stream with the extension
//!    `hyper::ext::Protocol::from_static("websocket")`, then `hyper::upgrade::on(&mut response)`;
//! 3. both: `tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), role,
//!    None)` and `WsIo::from_transport(ws, Config::default())`.

#[path = "h2_ws.rs"]
mod h2_ws;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use asynchronous_codec::{Bytes, Framed, LengthCodec};
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use h2_ws::{BoxError, H2Stream, Windows};
use tokio::{net::TcpListener, sync::mpsc};
use ws_stream_tungstenite::{
    Channel, CloseCode, Config, Observable, ObserveConfig, WsEvent, tungstenite::Utf8Bytes,
};

/// Streams on the one connection.
const STREAMS: usize = 8;
/// Frames each stream sends, and their size.
const FRAMES: usize = 16;
const FRAME_SIZE: usize = 16 * 1024;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tokio::time::timeout(Duration::from_secs(20), run()).await?
}

async fn run() -> Result<(), BoxError> {
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("serving WebSockets over HTTP/2 on {addr}");

    // The server: accepts TCP connections (counted), serves each as HTTP/2. Every stream's
    // session reports the close frame it saw.
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closes, mut seen) = mpsc::unbounded_channel();
    let server = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            loop {
                let Ok((tcp, _peer)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let closes = closes.clone();
                tokio::spawn(h2_ws::serve_connection(
                    tcp,
                    Windows::RECOMMENDED,
                    move |_path, stream| {
                        let closes = closes.clone();
                        async move {
                            let _ = closes.send(echo(stream).await);
                        }
                    },
                ));
            }
        }
    });

    // The client: one TCP connection, one HTTP/2 connection, STREAMS WebSockets on it.
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let sender = h2_ws::connect(tcp, Windows::RECOMMENDED, Duration::from_secs(5)).await?;
    let uri = format!("http://{addr}/echo");
    let clients: Vec<_> = (0..STREAMS)
        .map(|id| {
            let mut sender = sender.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                let stream = h2_ws::open(&mut sender, &uri, Config::default()).await?;
                client(id, stream).await
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }

    for _ in 0..STREAMS {
        let close = seen.recv().await.ok_or("a server session vanished")??;
        if close != (CloseCode::Normal, "bye".into()) {
            return Err(format!("the server saw {close:?}, not 1000 \"bye\"").into());
        }
    }
    let connections = accepted.load(Ordering::Relaxed);
    println!(
        "server: {STREAMS} streams closed with 1000 \"bye\", over {connections} TCP connection(s), in {:?}",
        started.elapsed()
    );
    if connections != 1 {
        return Err(
            format!("expected one TCP connection, the server accepted {connections}").into(),
        );
    }
    server.abort();
    Ok(())
}

/// One client stream: frames out, the same frames back, then close 1000 "bye" and read EOF.
async fn client(id: usize, stream: H2Stream) -> Result<(), BoxError> {
    let mut frames = Framed::new(stream, LengthCodec);
    for n in 0..FRAMES {
        let frame = Bytes::from(vec![(id * FRAMES + n) as u8; FRAME_SIZE]);
        frames.send(frame.clone()).await?;
        let echo = frames.next().await.ok_or("the server hung up")??;
        if echo != frame {
            return Err(format!("stream {id}: frame {n} came back changed").into());
        }
    }
    // Nothing is left to read in the codec (every frame came back), so the stream comes back
    // out of `Framed` with nothing lost.
    let mut stream = frames.into_inner();
    stream.close_with(CloseCode::Normal, "bye").await?;
    // The server answers the close, reads EOF and drops its stream; the HTTP/2 stream ends and
    // this read returns EOF: a clean close (an abrupt end would be an error).
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    println!(
        "client: stream {id}: {} KiB echoed, closed cleanly",
        FRAMES * FRAME_SIZE / 1024
    );
    Ok(())
}

/// One server stream: echoes bytes until EOF; returns the close code and reason the client
/// sent.
async fn echo(mut stream: H2Stream) -> Result<(CloseCode, Utf8Bytes), BoxError> {
    let mut events = stream
        .observe(ObserveConfig::default().channel(Channel::Bounded(8)))
        .await?;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
        stream.flush().await?;
    }
    // EOF: the close handshake is complete. Dropping `stream` (on return) ends the HTTP/2
    // stream, and the events end with it.
    drop(stream);
    while let Some(event) = events.next().await {
        if let WsEvent::CloseFrame(Some(frame)) = event {
            return Ok((frame.code, frame.reason));
        }
    }
    Err("the client closed without a close frame".into())
}
