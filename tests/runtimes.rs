//! The echo round trip over real TCP on 127.0.0.1 (port 0) on tokio, smol and async-std.

mod support;

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use ws_stream_tungstenite::WsStream;

const DATA_LEN: usize = 256 * 1024;

/// Client side: send the data in pieces, close, read the echo to the end.
async fn client_round_trip<S>(ws: async_tungstenite::WebSocketStream<S>) -> Vec<u8>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let data = support::pseudo_random(DATA_LEN, 42);
    let back = support::echo_client(ws, &data).await;
    assert!(back == data, "echo differs");
    back
}

/// Server side: echo with `futures::io::copy` over the split halves.
async fn serve_echo<S>(ws: async_tungstenite::WebSocketStream<S>) -> u64
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = WsStream::new(ws).split();
    let n = futures::io::copy(&mut reader, &mut writer).await.unwrap();
    writer.close().await.unwrap();
    n
}

/// A runtime-agnostic timeout.
async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    futures::select! {
        out = fut.fuse() => out,
        _ = futures_timer::Delay::new(Duration::from_secs(30)).fuse() => panic!("timed out"),
    }
}

#[test]
fn tokio_echo() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            serve_echo(async_tungstenite::tokio::accept_async(tcp).await.unwrap()).await
        });
        let (ws, _) = async_tungstenite::tokio::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        client_round_trip(ws).await;
        assert_eq!(server.await.unwrap(), DATA_LEN as u64);
    }));
}

#[test]
fn smol_echo() {
    smol::block_on(bounded(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = smol::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            serve_echo(async_tungstenite::accept_async(tcp).await.unwrap()).await
        });
        let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        client_round_trip(ws).await;
        assert_eq!(server.await, DATA_LEN as u64);
    }));
}

#[test]
fn async_std_echo() {
    async_std::task::block_on(bounded(async {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = async_std::task::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            serve_echo(async_tungstenite::accept_async(tcp).await.unwrap()).await
        });
        // async-std is discontinued upstream; plain `client_async` over its TcpStream still works.
        let tcp = async_std::net::TcpStream::connect(addr).await.unwrap();
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        client_round_trip(ws).await;
        assert_eq!(server.await, DATA_LEN as u64);
    }));
}
