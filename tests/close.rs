//! Closing: 1000 by default, a chosen code and reason, a timeout, refusal of writes after.

mod support;

use std::{io, time::Duration};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use support::*;
use tungstenite::{Message, protocol::frame::coding::CloseCode};
use ws_stream_tungstenite::{Config, WsErr, WsStream};

async fn peer_close_frame(mut peer: Ws) -> Option<(u16, String)> {
    while let Some(Ok(msg)) = peer.next().await {
        if let Message::Close(frame) = msg {
            let frame = frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
            drain_messages(peer).await;
            return frame;
        }
    }
    None
}

#[tokio::test]
async fn close_sends_1000_and_reading_completes_the_handshake() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        stream.write_all(b"last words").await.unwrap();
        stream.close().await.unwrap();
        let (read, frame) = futures::join!(read_all_then_drop(stream), peer_close_frame(peer));
        assert_eq!(read.unwrap(), b"", "EOF once the peer answered");
        assert_eq!(frame, Some((1000, String::new())));
    })
    .await;
}

#[tokio::test]
async fn close_with_a_code_and_reason() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        stream
            .close_with(CloseCode::Library(4000), "done here")
            .await
            .unwrap();
        let (read, frame) = futures::join!(read_all_then_drop(stream), peer_close_frame(peer));
        assert_eq!(read.unwrap(), b"");
        assert_eq!(frame, Some((4000, "done here".to_owned())));
    })
    .await;
}

#[tokio::test]
async fn close_with_cuts_long_reasons_at_a_char_boundary() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let reason = "é".repeat(100); // 200 bytes; a close frame carries at most 123
        stream.close_with(CloseCode::Away, &reason).await.unwrap();
        let (_, frame) = futures::join!(read_all_then_drop(stream), peer_close_frame(peer));
        let (code, got) = frame.unwrap();
        assert_eq!(code, 1001);
        assert_eq!(got, "é".repeat(61));
    })
    .await;
}

#[tokio::test]
async fn close_with_a_reserved_code_is_refused() {
    within(10, async {
        let (ws, _peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        for code in [1005u16, 1006, 1015, 999, 2000] {
            let err = stream
                .close_with(CloseCode::from(code), "")
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{code}");
        }
        // Nothing was sent: the stream is still usable.
        stream.write_all(b"still open").await.unwrap();
        stream.flush().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_stuck_close_handshake_times_out() {
    within(10, async {
        // The peer never reads, so it never answers the close frame.
        let (ws, _peer) = ws_pair().await;
        let config = Config::default().close_timeout(Some(Duration::from_millis(300)));
        let mut stream = WsStream::with_config(ws, config);
        stream
            .close_with(CloseCode::Library(4001), "bye")
            .await
            .unwrap();
        let start = std::time::Instant::now();
        let err = stream.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(
            err.get_ref().and_then(|e| e.downcast_ref::<WsErr>()),
            Some(WsErr::CloseTimeout)
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_keeps_the_transport_open_after_the_handshake_ends_cleanly() {
    within(10, async {
        // The peer answers the close frame but never closes the pipe: both close frames were
        // exchanged, so the timeout ends the stream as a clean close, not as an error.
        let (ws, mut peer) = ws_pair().await;
        let config = Config::default().close_timeout(Some(Duration::from_millis(300)));
        let mut stream = WsStream::with_config(ws, config);
        stream.close().await.unwrap();
        let keep_open = async {
            while let Some(Ok(_)) = peer.next().await {}
            peer // returned, not dropped
        };
        let mut got = Vec::new();
        let (read, _peer) = futures::join!(stream.read_to_end(&mut got), keep_open);
        assert_eq!(read.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn closing_twice_is_harmless() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        stream.close().await.unwrap();
        stream.close().await.unwrap();
        let (read, frame) = futures::join!(read_all_then_drop(stream), peer_close_frame(peer));
        assert_eq!(read.unwrap(), b"");
        assert_eq!(frame.map(|f| f.0), Some(1000));
    })
    .await;
}

#[tokio::test]
async fn both_ends_close_at_once() {
    within(10, async {
        let (a, b) = ws_pair().await;
        let (mut a, mut b) = (WsStream::new(a), WsStream::new(b));
        let (ra, rb) = futures::join!(a.close(), b.close());
        ra.unwrap();
        rb.unwrap();
        let (ra, rb) = futures::join!(read_all_then_drop(a), read_all_then_drop(b));
        assert_eq!(ra.unwrap(), b"");
        assert_eq!(rb.unwrap(), b"");
    })
    .await;
}

/// A shutdown signal closes a stream whose halves are busy in two other tasks: the peer gets
/// every byte written before, then 1001; the writer's next write fails; the reader gets EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_handle_closes_halves_busy_in_other_tasks() {
    within(10, async {
        let (ours, peer) = ws_pair().await;
        let (mut reader, mut writer) = WsStream::new(ours).into_split();
        let handle = writer.close_handle();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            let end = reader.read_to_end(&mut got).await;
            (got, end)
        });
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let writing = tokio::spawn(async move {
            let mut written = Vec::new();
            let mut started = Some(started_tx);
            for i in 0u32.. {
                let chunk = i.to_be_bytes();
                match writer.write_all(&chunk).await {
                    Ok(()) => written.extend_from_slice(&chunk),
                    Err(err) => return (written, err),
                }
                if i % 64 == 0 {
                    if let Err(err) = writer.flush().await {
                        return (written, err);
                    }
                    if let Some(tx) = started.take() {
                        let _ = tx.send(());
                    }
                    tokio::task::yield_now().await;
                }
            }
            unreachable!()
        });
        let peer_task = tokio::spawn(async move {
            let mut peer = WsStream::new(peer);
            let mut got = Vec::new();
            let end = peer.read_to_end(&mut got).await;
            (got, end)
        });
        started_rx.await.unwrap();
        handle
            .close(CloseCode::Away, "server shutting down")
            .unwrap();
        let (written, err) = writing.await.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{err:?}");
        let (peer_got, peer_end) = peer_task.await.unwrap();
        assert!(peer_end.is_ok(), "1001 is a clean end: {peer_end:?}");
        // Every byte the writer saw accepted went out ahead of the close frame, in order.
        assert_eq!(peer_got.len(), written.len());
        assert!(peer_got == written, "the peer got other bytes");
        let (_, end) = reading.await.unwrap();
        assert!(
            end.is_ok(),
            "our reader ends with EOF once the peer answered: {end:?}"
        );
    })
    .await;
}

/// A reader parked on a silent peer is woken by the request and sends the close itself.
#[tokio::test]
async fn a_close_handle_wakes_a_parked_reader() {
    within(10, async {
        let (ours, peer) = ws_pair().await;
        let mut stream = WsStream::new(ours);
        let handle = stream.close_handle();
        // Invalid codes change nothing.
        assert!(matches!(
            handle.close(CloseCode::Status, ""),
            Err(WsErr::InvalidCloseCode { .. })
        ));
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            handle.close(CloseCode::Library(4100), "bye").unwrap();
            // Later requests change nothing.
            handle.close(CloseCode::Normal, "again").unwrap();
        });
        let peer_task = tokio::spawn(peer_close_frame(peer));
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
        closer.await.unwrap();
        assert_eq!(peer_task.await.unwrap(), Some((4100, "bye".to_owned())));
        // The stream knows it closed: close() reports Ok, writes are refused.
        stream.close().await.unwrap();
        assert_eq!(
            stream.write(b"x").await.unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    })
    .await;
}
