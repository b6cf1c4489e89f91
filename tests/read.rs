//! Reading: only binary payloads, in order; empty messages skipped; EOF only after a clean close.

mod support;

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::{AsyncBufReadExt, AsyncReadExt, SinkExt, Stream};
use support::*;
use tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use ws_stream_tungstenite::{Config, WsErr, WsIo, WsStream};

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

#[tokio::test]
async fn binary_payloads_in_order_control_frames_left_out() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let stream = WsStream::new(ws);
        let peer_side = async {
            peer.send(Message::binary(b"one ".to_vec())).await.unwrap();
            peer.send(Message::Ping(Bytes::from_static(b"ping!")))
                .await
                .unwrap();
            peer.send(Message::binary(b"two ".to_vec())).await.unwrap();
            peer.send(Message::Pong(Bytes::from_static(b"pong!")))
                .await
                .unwrap();
            peer.send(Message::binary(b"three".to_vec())).await.unwrap();
            peer.close(None).await.unwrap();
            drain_messages(peer).await
        };
        let (_, got) = futures::join!(peer_side, read_all_then_drop(stream));
        assert_eq!(got.unwrap(), b"one two three");
    })
    .await;
}

#[tokio::test]
async fn empty_messages_are_skipped_never_read_as_eof() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        for _ in 0..100 {
            peer.send(Message::binary(Vec::new())).await.unwrap();
        }
        peer.send(Message::binary(b"data".to_vec())).await.unwrap();
        for _ in 0..100 {
            peer.send(Message::binary(Vec::new())).await.unwrap();
        }
        peer.close(None).await.unwrap();

        // AsyncBufRead: never an empty buffer before the end.
        let chunk = stream.fill_buf().await.unwrap();
        assert_eq!(chunk, b"data");
        let n = chunk.len();
        stream.consume_unpin(n);
        let mut buf = [0u8; 16];
        assert_eq!(
            stream.read(&mut buf).await.unwrap(),
            0,
            "EOF after the clean close"
        );
    })
    .await;
}

#[tokio::test]
async fn fill_buf_hands_out_the_whole_message() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let payload = pseudo_random(10_000, 1);
        peer.send(Message::binary(payload.clone())).await.unwrap();
        let chunk = stream.fill_buf().await.unwrap();
        assert_eq!(
            chunk,
            &payload[..],
            "one message, no copy into a smaller buffer"
        );
        // Consuming more than available is clamped, not a panic.
        stream.consume_unpin(usize::MAX);
        peer.close(None).await.unwrap();
        assert!(stream.fill_buf().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn one_read_spans_several_buffered_messages() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        for i in 0..10u8 {
            peer.feed(Message::binary(vec![i; 10])).await.unwrap();
        }
        peer.flush().await.unwrap();
        let mut buf = [0u8; 100];
        // Wait for the first byte, then the rest is already buffered in the transport.
        let mut n = stream.read(&mut buf).await.unwrap();
        while n < 100 {
            n += stream.read(&mut buf[n..]).await.unwrap();
        }
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 10]).collect();
        assert_eq!(&buf[..], &expected[..]);
    })
    .await;
}

async fn end_with_close(msg: Message) -> io::Result<Vec<u8>> {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let stream = WsStream::new(ws);
        peer.send(Message::binary(b"before".to_vec()))
            .await
            .unwrap();
        peer.send(msg).await.unwrap();
        let (result, _) = futures::join!(read_all_then_drop(stream), drain_messages(peer));
        result
    })
    .await
}

#[tokio::test]
async fn clean_close_codes_are_eof() {
    assert_eq!(end_with_close(close(1000, "bye")).await.unwrap(), b"before");
    assert_eq!(
        end_with_close(close(1001, "away")).await.unwrap(),
        b"before"
    );
    assert_eq!(
        end_with_close(Message::Close(None)).await.unwrap(),
        b"before"
    );
}

#[tokio::test]
async fn other_close_codes_are_errors_with_code_and_reason() {
    let err = end_with_close(close(4000, "custom")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<WsErr>());
    match inner {
        Some(WsErr::PeerClosed { code, reason }) => {
            assert_eq!(u16::from(*code), 4000);
            assert_eq!(reason, "custom");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = end_with_close(close(1011, "server error"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
}

#[tokio::test]
async fn transport_ending_without_close_is_unexpected_eof() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        peer.send(Message::binary(b"partial".to_vec()))
            .await
            .unwrap();
        drop(peer); // the pipe ends: no close frame
        let mut got = Vec::new();
        let err = stream.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(got, b"partial", "bytes before the truncation are delivered");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // The error is sticky.
        let err = stream.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    })
    .await;
}

/// A transport that panics when polled after it ended, like tokio-util's test of StreamReader.
struct Fused {
    messages: Vec<Result<Message, tungstenite::Error>>,
    ended: bool,
}

impl Stream for Fused {
    type Item = Result<Message, tungstenite::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        assert!(!self.ended, "polled after the end");
        if self.messages.is_empty() {
            self.ended = true;
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(self.messages.remove(0)))
        }
    }
}

impl futures::Sink<Message> for Fused {
    type Error = tungstenite::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn never_polls_the_transport_after_its_end() {
    within(10, async {
        let transport = Fused {
            messages: vec![Ok(Message::binary(b"x".to_vec())), Ok(Message::Close(None))],
            ended: false,
        };
        let mut stream = WsIo::from_transport(transport, Config::default());
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"x");
        for _ in 0..3 {
            assert_eq!(stream.read(&mut [0u8; 4]).await.unwrap(), 0);
            assert!(stream.fill_buf().await.unwrap().is_empty());
        }

        // And after an error.
        let transport = Fused {
            messages: vec![
                Ok(Message::binary(b"y".to_vec())),
                Err(tungstenite::Error::Io(
                    io::ErrorKind::ConnectionReset.into(),
                )),
            ],
            ended: false,
        };
        let mut stream = WsIo::from_transport(transport, Config::default());
        let mut got = Vec::new();
        let err = stream.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(got, b"y");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        let err = stream.read(&mut [0u8; 4]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    })
    .await;
}

#[tokio::test]
async fn many_pings_do_not_grow_the_stack() {
    // 20,000 pings read on a thread with a 256 KiB stack: recursion per control frame would
    // overflow it (the public crate aborts at a few hundred in debug builds).
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(within(60, async {
                let (mut peer, ws) = ws_pair_with(1 << 16, None, None).await;
                let stream = WsStream::new(ws);
                let flood = async {
                    for _ in 0..20_000 {
                        peer.feed(Message::Ping(Bytes::new())).await.unwrap();
                    }
                    peer.send(Message::binary(b"after the flood".to_vec()))
                        .await
                        .unwrap();
                    peer.close(None).await.unwrap();
                    // Read the pongs so the pipe never fills up.
                    drain_messages(peer).await.len()
                };
                let (pongs, got) = futures::join!(flood, read_all_then_drop(stream));
                assert_eq!(got.unwrap(), b"after the flood");
                // tungstenite may coalesce pongs it has not sent yet; at least one must go out.
                assert!(pongs >= 1);
            }))
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}
