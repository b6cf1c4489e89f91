//! tokio's IO traits behave like the futures-io ones (same core).
#![cfg(feature = "tokio_io")]

mod support;

use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tungstenite::Message;
use ws_stream_tungstenite::WsStream;

#[tokio::test]
async fn tokio_read_write_shutdown() {
    within(10, async {
        let (client, server) = ws_pair().await;
        let server = async {
            let mut stream = WsStream::new(server);
            let mut got = Vec::new();
            AsyncReadExt::read_to_end(&mut stream, &mut got)
                .await
                .unwrap();
            got
        };
        let client = async {
            let mut stream = WsStream::new(client);
            AsyncWriteExt::write_all(&mut stream, b"tokio ")
                .await
                .unwrap();
            let bufs = [
                std::io::IoSlice::new(b"vec"),
                std::io::IoSlice::new(b"tored"),
            ];
            // Gathered writes save nothing here, so callers are told not to bother, but a
            // vectored write still takes every slice.
            assert!(!tokio::io::AsyncWrite::is_write_vectored(&stream));
            let n = AsyncWriteExt::write_vectored(&mut stream, &bufs)
                .await
                .unwrap();
            assert_eq!(n, 8);
            AsyncWriteExt::shutdown(&mut stream).await.unwrap();
            let mut rest = Vec::new();
            AsyncReadExt::read_to_end(&mut stream, &mut rest)
                .await
                .unwrap();
            drop(stream);
            rest
        };
        let (got, rest) = futures::join!(server, client);
        assert_eq!(got, b"tokio vectored");
        assert!(rest.is_empty());
    })
    .await;
}

#[tokio::test]
async fn tokio_buf_read_lines_and_eof() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        peer.send(Message::binary(b"first li".to_vec()))
            .await
            .unwrap();
        peer.send(Message::binary(Vec::new())).await.unwrap();
        peer.send(Message::binary(b"ne\nsecond line\n".to_vec()))
            .await
            .unwrap();
        peer.close(None).await.unwrap();
        let mut lines = WsStream::new(ws).lines();
        assert_eq!(
            lines.next_line().await.unwrap().as_deref(),
            Some("first line")
        );
        assert_eq!(
            lines.next_line().await.unwrap().as_deref(),
            Some("second line")
        );
        assert_eq!(lines.next_line().await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn tokio_copy_echo_does_not_stall() {
    within(30, async {
        let small = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
        let (client, server) = ws_pair_with(256, Some(small), Some(small)).await;
        let data = pseudo_random(256 * 1024, 9);
        let echo = async {
            let (mut r, mut w) = tokio::io::split(WsStream::new(server));
            let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
            n
        };
        // A WebSocket has no half-close: once the client's close frame arrives, the server
        // may not send more. So the client closes after it got every byte back.
        let client = async {
            let (mut r, mut w) = tokio::io::split(WsStream::new(client));
            let send = async {
                for c in data.chunks(777) {
                    w.write_all(c).await.unwrap();
                }
                w.flush().await.unwrap();
            };
            let mut back = vec![0; data.len()];
            let (_, n) = futures::join!(send, r.read_exact(&mut back));
            n.unwrap();
            w.shutdown().await.unwrap();
            let mut rest = Vec::new();
            assert_eq!(r.read_to_end(&mut rest).await.unwrap(), 0);
            back
        };
        let (n, back) = futures::join!(echo, client);
        assert_eq!(n, data.len() as u64);
        assert!(back == data);
    })
    .await;
}
