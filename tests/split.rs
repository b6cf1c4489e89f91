//! Split halves: two tasks, close with a code from the write half, pings, reunite, into_inner.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt};
use pharos::{Observable, ObserveConfig};
use support::*;
use tungstenite::{Message, protocol::frame::coding::CloseCode};
use ws_stream_tungstenite::{Config, Joined, WsEvent, WsIo, WsStream};

/// The peer's view: every binary byte and the close frame it got.
async fn peer_view(mut peer: Ws) -> (Vec<u8>, Option<(u16, String)>) {
    let mut bytes = Vec::new();
    let mut close = None;
    while let Some(Ok(msg)) = peer.next().await {
        match msg {
            Message::Binary(b) => bytes.extend_from_slice(&b),
            Message::Close(f) => {
                close = f.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
            }
            _ => {}
        }
    }
    (bytes, close)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_in_two_tokio_tasks_close_with_a_code() {
    within(20, async {
        let (ws, peer) = ws_pair().await;
        let (mut reader, mut writer) = WsStream::new(ws).into_split();
        let write_task = tokio::spawn(async move {
            for i in 0..100u32 {
                writer.write_all(&i.to_be_bytes()).await.unwrap();
            }
            writer
                .close_with(CloseCode::Library(4000), "write half done")
                .await
                .unwrap();
            writer
        });
        let read_task = tokio::spawn(async move {
            let got = read_all(&mut reader).await;
            (got, reader)
        });
        let peer_task = tokio::spawn(peer_view(peer));
        let writer = write_task.await.unwrap();
        let (got, reader) = read_task.await.unwrap();
        assert_eq!(got.unwrap(), b"", "EOF once the peer answered our close");
        let (bytes, close) = peer_task.await.unwrap();
        let expected: Vec<u8> = (0..100u32).flat_map(u32::to_be_bytes).collect();
        assert_eq!(bytes, expected);
        assert_eq!(close, Some((4000, "write half done".to_owned())));
        // The halves go back together.
        assert!(reader.is_pair_of(&writer));
        let stream = reader.reunite(writer).unwrap();
        assert!(format!("{stream:?}").contains("closed"), "{stream:?}");
    })
    .await;
}

#[test]
fn halves_in_two_smol_tasks_close_with_a_code() {
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = smol::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = async_tungstenite::accept_async(tcp).await.unwrap();
            let mut close = None;
            let mut bytes = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Binary(b) => bytes.extend_from_slice(&b),
                    Message::Close(f) => {
                        close = f.map(|f| (u16::from(f.code), f.reason.to_string()))
                    }
                    _ => {}
                }
            }
            (bytes, close)
        });
        let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        let (mut reader, mut writer) = WsStream::new(ws).into_split();
        let reading = smol::spawn(async move { read_all(&mut reader).await });
        let writing = smol::spawn(async move {
            writer.write_all(b"from smol").await.unwrap();
            writer
                .close_with(CloseCode::Library(4000), "smol write half")
                .await
                .unwrap();
        });
        let bounded = futures::future::select(
            Box::pin(async {
                writing.await;
                let got = reading.await.unwrap();
                let (bytes, close) = server.await;
                (got, bytes, close)
            }),
            Box::pin(futures_timer::Delay::new(Duration::from_secs(20))),
        )
        .await;
        let (got, bytes, close) = match bounded {
            futures::future::Either::Left((out, _)) => out,
            futures::future::Either::Right(_) => panic!("timed out"),
        };
        assert_eq!(got, b"");
        assert_eq!(bytes, b"from smol");
        assert_eq!(close, Some((4000, "smol write half".to_owned())));
    });
}

#[tokio::test]
async fn the_write_half_pings_and_the_read_half_reports_the_round_trip() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let (mut reader, mut writer) = WsStream::new(ws).into_split();
        let mut events = reader.observe(ObserveConfig::default()).await.unwrap();
        let peer_task = tokio::spawn(peer_view(peer)); // answers pings while it reads
        writer.send_ping(Bytes::from_static(b"rtt")).await.unwrap();
        let read = async {
            // Read until the round trip shows up, then close.
            let mut buf = [0u8; 8];
            let round_trip = async {
                while let Some(ev) = events.next().await {
                    if let WsEvent::RoundTrip { payload, rtt } = ev {
                        return (payload, rtt);
                    }
                }
                panic!("no round trip");
            };
            futures::select! {
                rt = round_trip.fuse() => rt,
                _ = reader.read(&mut buf).fuse() => panic!("unexpected data"),
            }
        };
        let (payload, rtt) = read.await;
        assert_eq!(&payload[..], b"rtt");
        assert!(rtt < Duration::from_secs(5));
        writer.close().await.unwrap();
        assert_eq!(read_all(&mut reader).await.unwrap(), b"");
        drop((reader, writer));
        peer_task.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn buffered_read_half_keeps_its_chunk_across_reunite() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        peer.send(Message::binary(b"hello world".to_vec()))
            .await
            .unwrap();
        let (mut reader, writer) = WsStream::new(ws).into_split();
        let chunk = reader.fill_buf().await.unwrap();
        assert_eq!(chunk, b"hello world");
        reader.consume_unpin(6);
        let stream = reader.reunite(writer).unwrap();
        // Unread bytes: into_inner refuses and gives the stream back.
        let mut stream = match stream.into_inner() {
            Ok(_) => panic!("would lose unread bytes"),
            Err(back) => back,
        };
        let mut rest = [0u8; 5];
        stream.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"world");
        // Unsent bytes: refused too, until flushed.
        stream.write_all(b"pending").await.unwrap();
        let mut stream = stream.into_inner().map(|_| ()).unwrap_err();
        stream.flush().await.unwrap();
        let ws = stream.into_inner().expect("nothing to lose now");
        drop(ws);
        let _ = &mut peer;
    })
    .await;
}

#[tokio::test]
async fn halves_of_different_streams_do_not_reunite() {
    within(10, async {
        let (a, b) = ws_pair().await;
        let (ra, wa) = WsStream::new(a).into_split();
        let (rb, wb) = WsStream::new(b).into_split();
        let err = ra.reunite(wb).unwrap_err();
        assert!(!err.0.is_pair_of(&err.1));
        assert!(err.0.is_pair_of(&wa));
        drop((rb, wa));
    })
    .await;
}

#[tokio::test]
async fn futures_split_still_works() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let (_reader, mut writer) = futures::AsyncReadExt::split(WsStream::new(ws));
        writer.write_all(b"via BiLock").await.unwrap();
        writer.close().await.unwrap();
        drop(writer);
        drop(_reader);
        let (bytes, close) = peer_view(peer).await;
        assert_eq!(bytes, b"via BiLock");
        assert_eq!(close.map(|c| c.0), Some(1000));
    })
    .await;
}

#[tokio::test]
async fn async_tungstenite_split_halves_are_a_transport() {
    within(10, async {
        let (ws, peer) = ws_pair().await;
        let (sender, receiver) = ws.split();
        let mut stream = WsIo::from_transport(Joined::new(receiver, sender), Config::default());
        stream.write_all(b"joined").await.unwrap();
        stream.close().await.unwrap();
        let (read, (bytes, _)) = futures::join!(read_all_then_drop(stream), peer_view(peer));
        assert_eq!(read.unwrap(), b"");
        assert_eq!(bytes, b"joined");
    })
    .await;
}
