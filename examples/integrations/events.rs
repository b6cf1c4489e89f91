//! Observing what is not bytes: pings, pongs, round trips and the peer's close frame.
//!
//! ```sh
//! cargo run -p integrations --example events
//! ```
//!
//! The server wraps its WebSocket in a `WsStream` and observes its events through pharos (with
//! a bounded channel: a flood of pings then slows the reader down instead of growing memory).
//! The client, a plain async-tungstenite WebSocket, sends a ping, an unsolicited pong, some
//! bytes and then closes with code 4001 and a reason. The server also pings the client and gets
//! the round-trip time. The server's reader ends with an error carrying the code, since 4001 is
//! not a normal close. Runs on smol; exits 0 within a second.

use std::error::Error;

use futures::{AsyncReadExt, StreamExt};
use smol::net::{TcpListener, TcpStream};
use ws_stream_tungstenite::Bytes;
use ws_stream_tungstenite::async_tungstenite::{accept_async, client_async};
use ws_stream_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use ws_stream_tungstenite::{Channel, Observable, ObserveConfig};
use ws_stream_tungstenite::{WsEvent, WsStream};

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;

        let server = smol::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut stream = WsStream::new(accept_async(tcp).await?);
            let mut events = stream
                .observe(ObserveConfig::default().channel(Channel::Bounded(8)))
                .await?;
            let printer = smol::spawn(async move {
                while let Some(event) = events.next().await {
                    match event {
                        WsEvent::Ping(p) => println!("server: ping {p:?}"),
                        WsEvent::Pong(p) => println!("server: pong {p:?}"),
                        WsEvent::RoundTrip { payload, rtt } => {
                            println!("server: our ping {payload:?} came back in {rtt:?}")
                        }
                        WsEvent::CloseFrame(Some(f)) => {
                            println!(
                                "server: close frame, code {} reason {:?}",
                                f.code,
                                f.reason.as_str()
                            )
                        }
                        WsEvent::CloseFrame(None) => println!("server: close frame without code"),
                        WsEvent::Error(e) => println!("server: error event: {e}"),
                        WsEvent::Closed => println!("server: closed"),
                        other => println!("server: {other:?}"),
                    }
                }
            });
            stream.send_ping(Bytes::from_static(b"server ping")).await?;
            let mut data = Vec::new();
            let result = stream.read_to_end(&mut data).await;
            println!(
                "server: read {:?}, then {result:?}",
                String::from_utf8_lossy(&data)
            );
            drop(stream);
            printer.await;
            Ok::<_, Box<dyn Error + Send + Sync>>(())
        });

        let tcp = TcpStream::connect(addr).await?;
        let (mut ws, _) = client_async(format!("ws://{addr}/"), tcp).await?;
        // The server's ping; the library queues the pong and sends it with the next message.
        let first = ws.next().await.ok_or("server went away")??;
        assert!(first.is_ping());
        ws.send(Message::Ping(Bytes::from_static(b"client ping")))
            .await?;
        ws.send(Message::Pong(Bytes::from_static(b"unsolicited pong")))
            .await?;
        ws.send(Message::binary(b"some bytes".to_vec())).await?;
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "client is done".into(),
        })))
        .await?;
        // Read until the server has answered (the client's library answers pings itself).
        while let Some(Ok(_)) = ws.next().await {}
        server.await?;
        Ok(())
    })
}
