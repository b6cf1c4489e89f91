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
//! client, which finishes last, closes with 1000 (normal) and both ends see a clean end of
//! stream. Exits 0 within a second.
//!
//! Everything WebSocket comes from `ws_stream_tungstenite` and its re-exports: this package
//! depends on no other WebSocket crate (see `examples/Cargo.toml`).

use std::error::Error;

use asynchronous_codec::{Framed, LinesCodec};
use futures::{AsyncReadExt, SinkExt, StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use ws_stream_tungstenite::{
    Bytes, Channel, CloseCode, Events, Observable, ObserveConfig, WsEvent, WsStream,
    async_tungstenite::tokio::{accept_async, connect_async},
};

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("server listening on {addr}");

    let server = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await?;
        let mut stream = WsStream::new(accept_async(tcp).await?);
        let events = stream.observe(observer()).await?;
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
    let events = stream.observe(observer()).await?;
    let client_events = tokio::spawn(print_events("client", events));
    stream
        .send_ping(Bytes::from_static(b"are you there?"))
        .await?;

    let mut lines = Framed::new(stream, LinesCodec);
    for text in ["hello", "WebSocket as a byte stream", "bye"] {
        lines.send(format!("{text}\n")).await?;
        let reply = lines.try_next().await?.ok_or("the server went away")?;
        println!("client -> {text:?}, server says {}", reply.trim_end());
    }

    // The client has every answer it expects, so it closes: 1000 (normal), which the server
    // reads as the end of the stream. Reading on to EOF receives the server's answer to it.
    let mut stream = lines.into_inner();
    stream.close_with(CloseCode::Normal, "bye").await?;
    stream.read_to_end(&mut Vec::new()).await?;
    println!("client: closed cleanly");

    server.await??;
    client_events.await?;
    Ok(())
}

/// Observe with a bounded channel: a flood of pings cannot grow memory (the reader waits for the
/// observer instead).
fn observer() -> ObserveConfig<WsEvent> {
    ObserveConfig::default().channel(Channel::Bounded(16))
}

async fn print_events(side: &'static str, mut events: Events<WsEvent>) {
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
