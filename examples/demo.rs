//! The main demo: a server and a client in one process, talking lines over a WebSocket.
//!
//! ```sh
//! cargo run --example demo
//! ```
//!
//! The server listens on 127.0.0.1 (port 0, chosen by the OS). Both ends wrap their
//! async-tungstenite WebSocket in a `WsStream` and frame it with
//! `asynchronous_codec::LinesCodec`, code that knows nothing about WebSockets. The client sends
//! a few lines, the server answers each, both print the events they observe (the client pings,
//! the server sees the ping, the client sees the pong and the server's close frame), then the
//! client closes with 1000 and both ends see a clean end of stream. Exits 0 within a second.

use std::error::Error;

use async_tungstenite::tokio::{accept_async, connect_async};
use asynchronous_codec::{Framed, LinesCodec};
use futures::{SinkExt, StreamExt, TryStreamExt};
use pharos::{Observable, ObserveConfig};
use tokio::net::TcpListener;
use ws_stream_tungstenite::{WsEvent, WsStream};

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("server listening on {addr}");

    let server = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await?;
        let mut stream = WsStream::new(accept_async(tcp).await?);
        let events = stream.observe(ObserveConfig::default()).await?;
        tokio::spawn(print_events("server", events));

        let mut lines = Framed::new(stream, LinesCodec);
        while let Some(line) = lines.try_next().await? {
            println!("server <- {peer}: {}", line.trim_end());
            let reply = format!("{} characters\n", line.trim_end().chars().count());
            lines.send(reply).await?;
        }
        println!("server: the client closed cleanly");
        Ok::<_, BoxError>(())
    });

    let (ws, _response) = connect_async(format!("ws://{addr}/")).await?;
    let mut stream = WsStream::new(ws);
    let events = stream.observe(ObserveConfig::default()).await?;
    let client_events = tokio::spawn(print_events("client", events));
    stream.send_ping(b"are you there?".to_vec().into()).await?;

    let mut lines = Framed::new(stream, LinesCodec);
    for text in ["hello", "WebSocket as a byte stream", "bye"] {
        lines.send(format!("{text}\n")).await?;
        let reply = lines.try_next().await?.ok_or("the server went away")?;
        println!("client -> {text:?}, server says {}", reply.trim_end());
    }

    // Flushes, sends close 1000; reading on to EOF completes the handshake.
    lines.close().await?;
    assert!(lines.try_next().await?.is_none());
    drop(lines);
    println!("client: closed cleanly");

    server.await??;
    client_events.await?;
    Ok(())
}

async fn print_events(side: &'static str, mut events: pharos::Events<WsEvent>) {
    while let Some(event) = events.next().await {
        match event {
            WsEvent::Ping(p) => println!("{side} event: ping {:?}", String::from_utf8_lossy(&p)),
            WsEvent::Pong(p) => println!("{side} event: pong {:?}", String::from_utf8_lossy(&p)),
            WsEvent::RoundTrip { rtt, .. } => println!("{side} event: round trip {rtt:?}"),
            WsEvent::CloseFrame(Some(f)) => {
                println!(
                    "{side} event: close frame {} {:?}",
                    f.code,
                    f.reason.as_str()
                )
            }
            other => println!("{side} event: {other:?}"),
        }
    }
}
