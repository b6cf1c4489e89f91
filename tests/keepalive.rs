//! Keepalive: silent peers are detected, busy ones never are; pings under bulk traffic.

mod support;

use std::{
    io,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use pharos::{Observable, ObserveConfig};
use support::*;
use tungstenite::Message;
use ws_stream_tungstenite::{Config, WsErr, WsEvent, WsStream};

fn keepalive(interval_ms: u64, timeout_ms: u64) -> Config {
    Config::default()
        .ping_interval(Some(Duration::from_millis(interval_ms)))
        .ping_timeout(Duration::from_millis(timeout_ms))
}

#[tokio::test]
async fn a_silent_peer_is_declared_dead() {
    within(10, async {
        // After the handshake the raw peer neither reads nor writes: no pong ever comes.
        let (ws, _raw) = raw_client(None).await;
        let mut stream = WsStream::with_config(ws, keepalive(200, 300));
        let mut events = stream.observe(ObserveConfig::default()).await.unwrap();
        let start = Instant::now();
        let err = stream.read(&mut [0u8; 16]).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(
            err.get_ref().and_then(|e| e.downcast_ref::<WsErr>()),
            Some(WsErr::KeepaliveTimeout)
        ));
        // interval + timeout = 500 ms; generous margin for a loaded machine.
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Writes fail too, and an event said so.
        assert_eq!(
            stream.write(b"x").await.unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        drop(stream);
        let all: Vec<WsEvent> = events.by_ref().collect().await;
        assert!(
            all.iter()
                .any(|e| matches!(e, WsEvent::Error(e) if matches!(**e, WsErr::KeepaliveTimeout)))
        );
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_alive() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let mut stream = WsStream::with_config(ws, keepalive(100, 200));
        let mut events = stream.observe(ObserveConfig::default()).await.unwrap();
        // The peer reads all the time (so tungstenite answers each ping) and sends nothing for
        // a second: ten keepalive intervals.
        let (mut tx, mut rx) = peer.split();
        let reading = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
        let sending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            tx.send(Message::binary(b"still here".to_vec()))
                .await
                .unwrap();
            tx.close(None).await.unwrap();
        });
        let got = read_all_then_drop(stream).await.unwrap();
        assert_eq!(got, b"still here");
        sending.await.unwrap();
        reading.await.unwrap();
        let keepalive_round_trips = events
            .by_ref()
            .filter(|e| futures::future::ready(matches!(e, WsEvent::RoundTrip { .. })))
            .count()
            .await;
        assert!(keepalive_round_trips >= 2, "{keepalive_round_trips}");
    })
    .await;
}

#[tokio::test]
async fn a_slow_large_download_is_never_declared_dead() {
    within(20, async {
        // The peer never reads (so never answers a ping), but keeps sending data more often
        // than the interval: any frame is a sign of life.
        let (mut peer, ws) = ws_pair().await;
        let stream = WsStream::with_config(ws, keepalive(150, 150));
        let sender = tokio::spawn(async move {
            for i in 0..30u8 {
                peer.send(Message::binary(vec![i; 1000])).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peer.send(Message::Close(None)).await.unwrap();
            // Wait for our answer without reading data: the pipe is roomy.
            while let Some(Ok(msg)) = peer.next().await {
                if msg.is_close() {
                    break;
                }
            }
        });
        let got = read_all_then_drop(stream).await.unwrap();
        sender.await.unwrap();
        let expected: Vec<u8> = (0..30u8).flat_map(|i| vec![i; 1000]).collect();
        assert_eq!(got, expected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_and_pongs_under_bulk_writes_both_ways() {
    within(60, async {
        let (a, b) = ws_pair_with(16 * 1024, None, None).await;
        let data = pseudo_random(2 << 20, 21);
        let side = |ws, data: Vec<u8>| async move {
            let (mut reader, mut writer) = WsStream::new(ws).into_split();
            let mut events = reader.observe(ObserveConfig::default()).await.unwrap();
            let len = data.len();
            let write = tokio::spawn(async move {
                for (i, chunk) in data.chunks(10_000).enumerate() {
                    writer.write_all(chunk).await.unwrap();
                    if i % 20 == 0 {
                        writer.send_ping(Bytes::from(i.to_string())).await.unwrap();
                    }
                }
                writer.flush().await.unwrap();
                writer
            });
            // A WebSocket has no half-close: read everything the other side sends before
            // closing.
            let mut got = vec![0u8; len];
            reader.read_exact(&mut got).await.unwrap();
            let mut writer = write.await.unwrap();
            writer.close().await.unwrap();
            assert_eq!(read_all(&mut reader).await.unwrap(), b"");
            drop(reader.reunite(writer).unwrap());
            let round_trips = events
                .by_ref()
                .filter(|e| futures::future::ready(matches!(e, WsEvent::RoundTrip { .. })))
                .count()
                .await;
            (got, round_trips)
        };
        let (ra, rb) = tokio::join!(
            tokio::spawn(side(a, data.clone())),
            tokio::spawn(side(b, data.clone()))
        );
        let ((got_a, rt_a), (got_b, rt_b)) = (ra.unwrap(), rb.unwrap());
        assert!(got_a == data && got_b == data, "bulk data intact both ways");
        // Pings were answered while both sides were busy writing.
        assert!(rt_a > 0 && rt_b > 0, "{rt_a} {rt_b}");
    })
    .await;
}
