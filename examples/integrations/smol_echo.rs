//! An echo server and three clients on smol, over 127.0.0.1 (port 0).
//!
//! Run: `cargo run -p integrations --example smol_echo` (prints what each client got back and exits 0 within a
//! second).
//!
//! Shows:
//! - `WsStream` on a runtime other than tokio: smol's `TcpListener`, async-tungstenite's
//!   generic `accept_async` (smol's sockets are futures-io already) and its `smol` module's
//!   `connect_async` (feature `smol-runtime`);
//! - the echo is `futures::io::copy` from the read half to the write half; `copy` only flushes
//!   at the very end, and the echo still flows because a polled reader pushes written bytes out;
//! - the client closes with the close handshake: `close`, then read until EOF, and the server's
//!   `copy` ends by itself.

use std::{error::Error, time::Duration};

use futures::{AsyncReadExt, AsyncWriteExt, future::try_join_all};
use smol::{Timer, net::TcpListener};
use ws_stream_tungstenite::WsStream;
use ws_stream_tungstenite::async_tungstenite::{accept_async, smol::connect_async};

type BoxError = Box<dyn Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    smol::block_on(smol::future::or(run(), async {
        Timer::after(Duration::from_secs(10)).await;
        Err("timed out".into())
    }))
}

async fn run() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("echo server on ws://{addr}/");

    // The server task lives as long as the listener; it is dropped (cancelled) when `run` ends.
    let _server = smol::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            smol::spawn(async move {
                if let Err(err) = echo(tcp).await {
                    eprintln!("server: {peer}: {err}");
                }
            })
            .detach();
        }
    });

    let clients = ["first", "second", "third"].map(|name| client(format!("ws://{addr}/"), name));
    for (name, echoed) in try_join_all(clients).await? {
        println!("{name}: echoed {echoed} bytes intact");
    }
    Ok(())
}

/// Sends every byte read back, until the client closes.
async fn echo(tcp: smol::net::TcpStream) -> Result<(), BoxError> {
    let (reader, mut writer) = WsStream::new(accept_async(tcp).await?).split();
    futures::io::copy(reader, &mut writer).await?;
    Ok(())
}

/// Sends a message made of `name`, checks the echo, closes cleanly.
async fn client(url: String, name: &'static str) -> Result<(&'static str, usize), BoxError> {
    let (ws, _response) = connect_async(url).await?;
    let mut stream = WsStream::new(ws);

    let message = name.repeat(10_000);
    stream.write_all(message.as_bytes()).await?;
    stream.flush().await?;
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed).await?;
    if echoed != message.as_bytes() {
        return Err(format!("{name}: the echo differs").into());
    }

    stream.close().await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?; // EOF: the server completed the close handshake
    Ok((name, echoed.len()))
}
