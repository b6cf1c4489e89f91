//! A line exchange with `tokio_util::codec::Framed` over the tokio IO traits.
//!
//! ```sh
//! cargo run -p integrations --example tokio_codec
//! ```
//!
//! With the feature `tokio_io`, `WsStream` implements tokio's `AsyncRead`, `AsyncBufRead` and
//! `AsyncWrite`, so tokio-util's codecs frame it directly. The server answers each line in
//! upper case; the client sends three lines, closes (`shutdown` sends close 1000) and reads to
//! the clean end. Exits 0 within a second.

use std::error::Error;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::{Framed, LinesCodec};
use ws_stream_tungstenite::WsStream;
use ws_stream_tungstenite::async_tungstenite::tokio::{accept_async, connect_async};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut lines = Framed::new(WsStream::new(accept_async(tcp).await?), LinesCodec::new());
        while let Some(line) = lines.next().await {
            lines.send(line?.to_uppercase()).await?;
        }
        println!("server: clean end of stream");
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    });

    let (ws, _) = connect_async(format!("ws://{addr}/")).await?;
    let mut lines = Framed::new(WsStream::new(ws), LinesCodec::new());
    for text in ["tokio", "util", "codec"] {
        lines.send(text).await?;
        let reply = lines.next().await.ok_or("server went away")??;
        println!("client: sent {text:?}, got {reply:?}");
    }
    SinkExt::<&str>::close(&mut lines).await?;
    assert!(lines.next().await.is_none(), "clean end after close");
    drop(lines);
    server.await??;
    Ok(())
}
