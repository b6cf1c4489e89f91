//! The engine's edge cases at the message level, over a scripted transport: a sink that
//! refuses frames that do not fit or fails, input that ends, fails or stays silent.
//!
//! - `a_close_reason_that_does_not_fit_falls_back_to_the_code`
//! - `a_broken_write_side_still_delivers_what_arrived`
//! - `a_broken_write_side_with_silent_input_ends_at_the_close_deadline`
//! - `a_ping_waiting_when_the_peer_closes_fails`
//! - `a_pong_answered_while_the_observer_is_full_leaves`

mod support;

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, Sink, Stream};
use pharos::{Channel, Observable, ObserveConfig};
use support::{stuck::StuckTransport, within};
use tungstenite::{
    Error as TungErr, Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use ws_stream_tungstenite::{Config, WsErr, WsIo};

/// What the scripted sink does and saw.
#[derive(Debug, Default)]
struct Script {
    /// Served in order; when empty, the input ends (`end`) or stays silent.
    incoming: VecDeque<Result<Message, TungErr>>,
    end: bool,
    /// Close frames whose payload is longer than this are refused with `WriteBufferFull`.
    close_room: usize,
    /// Data messages fail with this error (the transport broke).
    fail_data: Option<io::ErrorKind>,
    /// Every message the sink took.
    sent: Vec<Message>,
    flushes: usize,
}

#[derive(Debug, Clone, Default)]
struct Scripted(Arc<Mutex<Script>>);

impl Scripted {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap()
    }
}

impl Stream for Scripted {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = self.script();
        match s.incoming.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if s.end => Poll::Ready(None),
            // Silent: never woken.
            None => Poll::Pending,
        }
    }
}

impl Sink<Message> for Scripted {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), TungErr> {
        let mut s = self.script();
        match &msg {
            Message::Close(Some(frame)) if 2 + frame.reason.len() > s.close_room => {
                return Err(TungErr::WriteBufferFull(Box::new(msg)));
            }
            Message::Binary(_) => {
                if let Some(kind) = s.fail_data {
                    return Err(TungErr::Io(kind.into()));
                }
            }
            _ => {}
        }
        s.sent.push(msg);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        self.script().flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }
}

fn kind_of(err: &io::Error) -> Option<&WsErr> {
    err.get_ref().and_then(|e| e.downcast_ref::<WsErr>())
}

#[tokio::test]
async fn a_close_reason_that_does_not_fit_falls_back_to_the_code() {
    within(5, async {
        let t = Scripted::default();
        t.script().close_room = 2;
        let mut stream = WsIo::from_transport(t.clone(), Config::default());
        stream.write_all(b"data").await.unwrap();
        stream
            .close_with(CloseCode::Library(4000), "a reason the sink cannot take")
            .await
            .unwrap();
        let s = t.script();
        assert!(matches!(&s.sent[0], Message::Binary(b) if b == "data"));
        match &s.sent[1] {
            Message::Close(Some(CloseFrame { code, reason })) => {
                assert_eq!(*code, CloseCode::Library(4000));
                assert!(reason.is_empty());
            }
            other => panic!("expected the bare close frame, got {other:?}"),
        }
        assert_eq!(s.sent.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_broken_write_side_still_delivers_what_arrived() {
    within(5, async {
        let t = Scripted::default();
        {
            let mut s = t.script();
            s.fail_data = Some(io::ErrorKind::BrokenPipe);
            s.incoming
                .push_back(Ok(Message::Binary(Bytes::from_static(b"abc"))));
            s.end = true;
        }
        let mut stream = WsIo::from_transport(t.clone(), Config::default());
        stream.write_all(b"lost").await.unwrap();
        let err = stream.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        // Writes, flush and close keep reporting it; nothing pretends to be sent.
        assert_eq!(
            stream.write(b"x").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(
            stream.close().await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        // What the peer sent before is still read, then the write error ends the reader.
        let mut got = [0u8; 3];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
        let err = stream.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        // No close frame went to the failed transport.
        assert!(t.script().sent.is_empty());
        assert!(format!("{stream:?}").contains("failed"), "{stream:?}");
    })
    .await;
}

#[tokio::test]
async fn a_broken_write_side_with_silent_input_ends_at_the_close_deadline() {
    within(5, async {
        let t = Scripted::default();
        t.script().fail_data = Some(io::ErrorKind::ConnectionReset);
        let config = Config::default().close_timeout(Some(Duration::from_millis(200)));
        let mut stream = WsIo::from_transport(t, config);
        stream.write_all(b"x").await.unwrap();
        assert!(stream.flush().await.is_err());
        let start = Instant::now();
        let err = stream.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
    })
    .await;
}

#[tokio::test]
async fn a_ping_waiting_when_the_peer_closes_fails() {
    within(5, async {
        // The sink takes nothing: the ping waits in the engine.
        let (t, ctl) = StuckTransport::new(0);
        let stream = WsIo::from_transport(t, Config::default());
        let (mut reader, mut writer) = stream.into_split();
        let ping = tokio::spawn(async move {
            let result = writer.send_ping(Bytes::from_static(b"p")).await;
            (writer, result)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        ctl.push(Ok(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))));
        // The reader sees the close; the ping can never go out now.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(300), reader.read_to_end(&mut rest));
        drop(read.await);
        let (_writer, result) = ping.await.unwrap();
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{err:?}");
        assert!(matches!(kind_of(&err), Some(WsErr::Closed)));
    })
    .await;
}

#[tokio::test]
async fn a_pong_answered_while_the_observer_is_full_leaves() {
    within(5, async {
        let t = Scripted::default();
        for i in 0..3u8 {
            t.script()
                .incoming
                .push_back(Ok(Message::Ping(Bytes::from(vec![i]))));
        }
        let mut stream = WsIo::from_transport(t.clone(), Config::default());
        let _observer = stream
            .observe(ObserveConfig::default().channel(Channel::Bounded(1)))
            .await
            .unwrap();
        // The observer fills up; the reader waits for it.
        let read =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut [0u8; 8])).await;
        assert!(read.is_err(), "the reader should wait for the observer");
        // The answers tungstenite queued were flushed all the same.
        assert!(t.script().flushes >= 1);
    })
    .await;
}
