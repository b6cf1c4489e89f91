//! Other tungstenite transports: tokio-tungstenite (what axum and hyper upgrades give).

mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use support::within;
use ws_stream_tungstenite::{Config, WsIo};

#[tokio::test]
async fn tokio_tungstenite_round_trip() {
    within(10, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let (mut r, mut w) = WsIo::from_transport(ws, Config::default()).split();
            let n = futures::io::copy(&mut r, &mut w).await.unwrap();
            w.close().await.unwrap();
            n
        });
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        let (mut reader, mut writer) = WsIo::from_transport(ws, Config::default()).into_split();
        let data = support::pseudo_random(100_000, 8);
        let mut back = vec![0u8; data.len()];
        let (write, read) = futures::join!(writer.write_all(&data), reader.read_exact(&mut back));
        write.unwrap();
        read.unwrap();
        writer.close().await.unwrap();
        assert_eq!(support::read_all(&mut reader).await.unwrap(), b"");
        assert!(back == data);
        assert_eq!(server.await.unwrap(), data.len() as u64);
    })
    .await;
}
