//! Events: pings, pongs, the peer's close frame, errors and the end, out of band.

mod support;

use bytes::Bytes;
use futures::{AsyncReadExt, SinkExt, StreamExt};
use pharos::{Channel, Observable, ObserveConfig};
use support::*;
use tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use ws_stream_tungstenite::{WsErr, WsEvent, WsStream};

#[tokio::test]
async fn ping_pong_close_and_closed_are_observed_in_order() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let mut events = stream.observe(ObserveConfig::default()).await.unwrap();

        peer.send(Message::Ping(Bytes::from_static(b"p1")))
            .await
            .unwrap();
        peer.send(Message::Pong(Bytes::from_static(b"p2")))
            .await
            .unwrap();
        peer.send(Message::binary(b"data".to_vec())).await.unwrap();
        peer.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        let peer_saw = drain_messages(peer);
        let (read, peer_saw) = futures::join!(read_all_then_drop(stream), peer_saw);
        assert_eq!(read.unwrap(), b"data");
        assert!(
            peer_saw
                .iter()
                .any(|m| matches!(m, Message::Pong(p) if &p[..] == b"p1")),
            "the ping was answered: {peer_saw:?}"
        );

        let all: Vec<WsEvent> = events.by_ref().collect().await; // ends after Closed
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(matches!(&all[0], WsEvent::Ping(p) if &p[..] == b"p1"));
        assert!(matches!(&all[1], WsEvent::Pong(p) if &p[..] == b"p2"));
        match &all[2] {
            WsEvent::CloseFrame(Some(f)) => {
                assert_eq!(f.code, CloseCode::Normal);
                assert_eq!(f.reason.as_str(), "bye");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(all[3], WsEvent::Closed));
    })
    .await;
}

#[tokio::test]
async fn errors_are_published_too() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let mut events = stream.observe(ObserveConfig::default()).await.unwrap();
        peer.send(Message::text("not bytes")).await.unwrap();
        let (read, _) = futures::join!(read_all_then_drop(stream), drain_messages(peer));
        assert!(read.is_err());
        let all: Vec<WsEvent> = events.by_ref().collect().await;
        assert!(matches!(&all[0], WsEvent::Error(e) if matches!(**e, WsErr::ReceivedText)));
        assert!(matches!(all.last(), Some(WsEvent::Closed)));
    })
    .await;
}

#[tokio::test]
async fn a_bounded_observer_applies_backpressure_and_loses_nothing() {
    within(20, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let mut events = stream
            .observe(ObserveConfig::default().channel(Channel::Bounded(2)))
            .await
            .unwrap();
        let pings = 500usize;
        let flood = async {
            for i in 0..pings {
                peer.feed(Message::Ping(Bytes::from(i.to_string())))
                    .await
                    .unwrap();
            }
            peer.send(Message::binary(b"end".to_vec())).await.unwrap();
            peer.close(None).await.unwrap();
            drain_messages(peer).await;
        };
        let observer = async {
            let mut seen = Vec::new();
            while let Some(ev) = events.next().await {
                if let WsEvent::Ping(p) = ev {
                    seen.push(String::from_utf8(p.to_vec()).unwrap());
                }
                // A slow observer.
                tokio::task::yield_now().await;
            }
            seen
        };
        let (_, read, seen) = futures::join!(flood, read_all_then_drop(stream), observer);
        assert_eq!(read.unwrap(), b"end");
        let expected: Vec<String> = (0..pings).map(|i| i.to_string()).collect();
        assert_eq!(seen, expected, "every ping event, in order");
    })
    .await;
}

#[tokio::test]
async fn dropping_an_observer_releases_the_reader() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let mut stream = WsStream::new(ws);
        let events = stream
            .observe(ObserveConfig::default().channel(Channel::Bounded(1)))
            .await
            .unwrap();
        for _ in 0..10 {
            peer.send(Message::Ping(Bytes::new())).await.unwrap();
        }
        peer.send(Message::binary(b"x".to_vec())).await.unwrap();
        // The observer is full after one event: the reader waits...
        let mut buf = [0u8; 1];
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(200), stream.read(&mut buf))
                .await;
        assert!(
            blocked.is_err(),
            "the reader waits for the bounded observer"
        );
        // ...until the observer goes away.
        drop(events);
        assert_eq!(stream.read(&mut buf).await.unwrap(), 1);
        assert_eq!(&buf, b"x");
    })
    .await;
}
