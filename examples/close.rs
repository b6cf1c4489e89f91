//! The close timeout: a client closes with a code and a reason; the server never answers.
//!
//! ```sh
//! cargo run --example close
//! ```
//!
//! The client calls `close_with(CloseCode::Away, "maintenance")` (1001, going away: a normal
//! finish, which the peer reads as the end of the stream) and keeps reading to complete the
//! handshake, but the server (busy elsewhere) does not read for 5 s, so it never answers in
//! time. With `Config::close_timeout` at 2 s, the client's reader ends with `TimedOut` and the
//! client drops the connection. When the server finally reads, it sees the client's close frame
//! (code and reason) and then the connection gone. Both ends print what happened; exits 0 in
//! about 5 s.

use std::{error::Error, time::Duration};

use futures::{AsyncReadExt, StreamExt};
use tokio::net::TcpListener;
use ws_stream_tungstenite::{
    CloseCode, Config, Observable, ObserveConfig, WsErr, WsEvent, WsStream,
    async_tungstenite::tokio::{accept_async, connect_async},
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut stream = WsStream::new(accept_async(tcp).await?);
        let mut events = stream.observe(ObserveConfig::default()).await?;
        println!("server: connected, now busy for 5 s without reading");
        tokio::time::sleep(Duration::from_secs(5)).await;

        let mut rest = Vec::new();
        let result = stream.read_to_end(&mut rest).await;
        while let Some(event) = events.next().await {
            if let WsEvent::CloseFrame(Some(frame)) = event {
                println!(
                    "server: the client had closed with {} {:?}",
                    frame.code,
                    frame.reason.as_str()
                );
            }
        }
        match result {
            Ok(_) => println!("server: end of stream"),
            Err(err) => println!("server: the connection ended: {err} ({:?})", err.kind()),
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    });

    let (ws, _) = connect_async(format!("ws://{addr}/")).await?;
    let config = Config::default().close_timeout(Duration::from_secs(2));
    let mut stream = WsStream::with_config(ws, config);

    println!("client: closing with 1001 \"maintenance\"");
    stream.close_with(CloseCode::Away, "maintenance").await?;
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let err = stream
        .read_to_end(&mut rest)
        .await
        .expect_err("the server never answers");
    let timed_out = matches!(
        err.get_ref().and_then(|e| e.downcast_ref::<WsErr>()),
        Some(WsErr::CloseTimeout)
    );
    println!(
        "client: gave up after {:.1} s: {err} (kind {:?}, close timeout: {timed_out})",
        started.elapsed().as_secs_f64(),
        err.kind()
    );
    drop(stream); // release the connection

    server.await??;
    Ok(())
}
