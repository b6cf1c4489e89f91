//! `proto`'s sessions over `WsStream` on both ends, natively: the same client and server code
//! that the browser tests (`wasm-client/tests/browser.rs`) run over `BrowserStream` against the
//! live server. Over an in-memory pipe, each test bounded by a timeout.
#![allow(
    clippy::expect_used,
    reason = "a test fails by panicking, with a message"
)]

use std::{future::Future, time::Duration};

use async_tungstenite::tokio::{TokioAdapter, accept_async, client_async};
use proto::{Client, Reply, Request, serve};
use tokio::io::DuplexStream;
use ws_stream_tungstenite::WsStream;

type Stream = WsStream<TokioAdapter<DuplexStream>>;

/// A WebSocket client and server over an in-memory pipe, as byte streams.
async fn pair() -> (Stream, Stream) {
    let (a, b) = tokio::io::duplex(16 * 1024);
    let (client, server) = tokio::join!(client_async("ws://localhost/", a), accept_async(b));
    let (client, _response) = client.expect("client handshake");
    (
        WsStream::new(client),
        WsStream::new(server.expect("server handshake")),
    )
}

async fn timed<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn several_calls_then_the_client_closes() {
    timed(async {
        let (client_io, server_io) = pair().await;
        let client = async {
            let mut client = Client::new(client_io);
            let echo = client.call(Request::Echo { text: "hi".into() }).await?;
            let big = "0123456789".repeat(5_000);
            let big_echo = client.call(Request::Echo { text: big.clone() }).await?;
            client.close().await?;
            Ok::<_, proto::Error>((echo, big_echo == Reply::Echo { text: big }))
        };
        let (client, served) = tokio::join!(client, serve(server_io));

        let (echo, big_ok) = client.expect("client session");
        assert_eq!(echo, Reply::Echo { text: "hi".into() });
        assert!(big_ok, "the 50 KB echo differs");
        let served = served.expect("server session");
        assert_eq!(served.requests, 2);
        assert!(!served.bye);
    })
    .await;
}

#[tokio::test]
async fn bye_lets_the_server_close_first() {
    timed(async {
        let (client_io, server_io) = pair().await;
        let client = async {
            let mut client = Client::new(client_io);
            let sum = client.call(Request::Add { a: 20, b: 22 }).await?;
            client.bye().await?;
            Ok::<_, proto::Error>(sum)
        };
        let (client, served) = tokio::join!(client, serve(server_io));

        assert_eq!(client.expect("client session"), Reply::Sum { value: 42 });
        let served = served.expect("server session");
        assert_eq!(served.requests, 2);
        assert!(served.bye);
    })
    .await;
}
