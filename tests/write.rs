//! Writing: coalescing, bounded messages, no stall without explicit flushes, refusal after close.

mod support;

use std::io::{self, IoSlice};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use support::*;
use tungstenite::{Message, protocol::WebSocketConfig};
use ws_stream_tungstenite::{Config, WsStream};

/// Payload sizes of the binary messages a plain peer receives until the end.
async fn message_sizes(mut peer: Ws) -> (Vec<usize>, Vec<u8>) {
    let mut sizes = Vec::new();
    let mut bytes = Vec::new();
    while let Some(Ok(msg)) = peer.next().await {
        if let Message::Binary(b) = msg {
            sizes.push(b.len());
            bytes.extend_from_slice(&b);
        }
    }
    (sizes, bytes)
}

#[tokio::test]
async fn small_writes_between_flushes_become_one_message() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let writer = async {
            for i in 0..1000u32 {
                stream.write_all(&i.to_be_bytes()).await.unwrap();
            }
            stream.flush().await.unwrap();
            stream.write_all(b"second").await.unwrap();
            stream.close().await.unwrap();
            read_all_then_drop(stream).await.unwrap();
        };
        let (_, (sizes, bytes)) = futures::join!(writer, message_sizes(peer));
        assert_eq!(sizes, vec![4000, 6], "one message per flush");
        let expected: Vec<u8> = (0..1000u32)
            .flat_map(u32::to_be_bytes)
            .chain(*b"second")
            .collect();
        assert_eq!(bytes, expected);
    })
    .await;
}

#[tokio::test]
async fn large_writes_are_cut_into_bounded_messages() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::with_config(ws, Config::default().max_message_size(1000));
        let data = pseudo_random(10_500, 7);
        let writer = async {
            stream.write_all(&data).await.unwrap();
            stream.close().await.unwrap();
            read_all_then_drop(stream).await.unwrap();
        };
        let (_, (sizes, bytes)) = futures::join!(writer, message_sizes(peer));
        assert!(sizes.iter().all(|&s| s <= 1000), "{sizes:?}");
        assert_eq!(sizes.len(), 11);
        assert_eq!(bytes, data);
    })
    .await;
}

#[tokio::test]
async fn frame_headers_count_against_the_write_buffer_limit() {
    // The public crate fails a 64 KiB write_all here with `Other`: each 1024-byte message plus
    // its header passes `max_write_buffer_size`.
    within(10, async {
        let config = WebSocketConfig::default()
            .write_buffer_size(0)
            .max_write_buffer_size(1024);
        let (ws, peer) = ws_pair_with(1 << 20, Some(config), None).await;
        let mut stream = WsStream::new(ws);
        assert!(stream.max_message_size() + 14 <= 1024);
        let data = pseudo_random(64 * 1024, 3);
        let writer = async {
            stream.write_all(&data).await.unwrap();
            stream.close().await.unwrap();
            read_all_then_drop(stream).await.unwrap();
        };
        let (_, (sizes, bytes)) = futures::join!(writer, message_sizes(peer));
        assert!(sizes.iter().all(|&s| s + 14 <= 1024));
        assert_eq!(bytes, data);
    })
    .await;
}

#[tokio::test]
async fn vectored_writes_gather_slices() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let writer = async {
            let slices = [
                IoSlice::new(b""),
                IoSlice::new(b"abc"),
                IoSlice::new(b""),
                IoSlice::new(b"defg"),
            ];
            let n = stream.write_vectored(&slices).await.unwrap();
            assert_eq!(n, 7);
            assert_eq!(
                stream.write_vectored(&[IoSlice::new(b"")]).await.unwrap(),
                0
            );
            stream.close().await.unwrap();
            read_all_then_drop(stream).await.unwrap();
        };
        let (_, (sizes, bytes)) = futures::join!(writer, message_sizes(peer));
        assert_eq!(sizes, vec![7]);
        assert_eq!(bytes, b"abcdefg");
    })
    .await;
}

/// The server echoes with `futures::io::copy` over the split halves in one task (copy flushes
/// only at the very end), over a pipe of 64 bytes; the client sends 1 MiB and reads it back.
#[tokio::test]
async fn copy_echo_over_split_halves_does_not_stall() {
    within(60, async {
        // tungstenite zero-fills its read buffer (128 KiB by default) before each read of the
        // transport, which dominates a debug build when every read brings 64 bytes.
        let small = WebSocketConfig::default().read_buffer_size(4096);
        let (client, server) = ws_pair_with(64, Some(small), Some(small)).await;
        let data = pseudo_random(1 << 20, 11);

        let echo = async {
            let (mut reader, mut writer) = WsStream::new(server).split();
            let copied = futures::io::copy(&mut reader, &mut writer).await.unwrap();
            writer.close().await.unwrap();
            copied
        };
        let client_side = echo_client(client, &data);
        let (copied, back) = futures::join!(echo, client_side);
        assert_eq!(copied, data.len() as u64);
        assert!(back == data, "echoed bytes differ");
    })
    .await;
}

/// A tunnel: one task copies a source into the write half, another copies the read half out,
/// over a congested pipe; nobody flushes until the source ends.
#[tokio::test]
async fn two_task_tunnel_delivers_every_byte() {
    within(60, async {
        let (client, server) = ws_pair_with(128, None, None).await;
        let data = pseudo_random(512 * 1024, 5);

        let (mut reader, mut writer) = WsStream::new(client).split();
        let source = data.clone();
        let upload = tokio::spawn(async move {
            let mut src = futures::io::Cursor::new(source);
            futures::io::copy(&mut src, &mut writer).await.unwrap();
            writer.close().await.unwrap();
        });
        let download = tokio::spawn(async move {
            let mut sink = Vec::new();
            futures::io::copy(&mut reader, &mut sink).await.unwrap();
            sink
        });

        // The far end echoes through its own split halves, also without flushing.
        let far = tokio::spawn(async move {
            let (mut r, mut w) = WsStream::new(server).split();
            futures::io::copy(&mut r, &mut w).await.unwrap();
            w.close().await.unwrap();
        });

        upload.await.unwrap();
        let back = download.await.unwrap();
        far.await.unwrap();
        assert!(back == data, "tunnelled bytes differ");
    })
    .await;
}

#[tokio::test]
async fn writes_after_close_are_refused() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        stream.close().await.unwrap();
        let err = stream.write(b"late").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        // The peer answers; the handshake completes.
        let (read, _) = futures::join!(read_all_then_drop(stream), drain_messages(peer));
        assert_eq!(read.unwrap(), b"");
    })
    .await;
}

#[tokio::test]
async fn writes_after_the_peer_closed_are_refused() {
    within(10, async {
        let (ws, mut peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        peer.send(Message::Close(None)).await.unwrap();
        let reader = async {
            let mut buf = [0u8; 4];
            assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
            let err = stream.write_all(b"late").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        };
        futures::join!(reader, drain_messages(peer));
    })
    .await;
}

#[tokio::test]
async fn a_writer_that_is_never_read_gets_backpressure() {
    within(10, async {
        // The peer never reads: the pipe (4 KiB) fills, then writes return Pending instead of
        // buffering without bound.
        let (ws, _peer) = ws_pair_with(4096, None, None).await;
        let mut stream = WsStream::with_config(ws, Config::default().max_message_size(1024));
        let chunk = [7u8; 512];
        let mut accepted = 0usize;
        loop {
            let write = stream.write(&chunk);
            match tokio::time::timeout(std::time::Duration::from_millis(200), write).await {
                Ok(n) => accepted += n.unwrap(),
                Err(_) => break,
            }
            assert!(accepted < 1 << 20, "writes never pushed back");
        }
        // Bounded by the pipe, tungstenite's write buffer (128 KiB default) and one message.
        assert!(
            accepted <= 4096 + 128 * 1024 + 2 * 1024 + 1024,
            "{accepted}"
        );
    })
    .await;
}
