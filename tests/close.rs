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
