//! Hostile peers: each test plays a raw WebSocket peer (hand-built frames over an in-memory
//! pipe) that misbehaves in one way, and states the expected outcome: the close code the peer
//! observes, the `io::ErrorKind` the reader gets, the `WsEvent`s, and that every byte sent
//! before the bad input was read. Every test runs under a timeout.
//!
//! Floods and memory bounds are in `tests/hostile_memory.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by panicking.

mod support;

use std::{
    future::Future,
    io,
    time::{Duration, Instant},
};

use async_tungstenite::WebSocketStream;
use futures::{
    StreamExt,
    future::{Either, join, select},
    io::{AsyncReadExt, AsyncWriteExt},
};
use pharos::{Channel, Observable, ObserveConfig};
use tungstenite::protocol::{Role, WebSocketConfig};
use ws_stream_tungstenite::{Config, TextPolicy, WsErr, WsEvent, WsStream};

use support::{
    frames::{self, Decoded, Decoder, Frame},
    pipe::{End, pipe},
};

/// Runs `fut` on a current-thread tokio runtime; fails the test after `secs`.
fn run<F: Future>(secs: u64, fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(secs), fut)
            .await
            .expect("the test timed out")
    })
}

/// A raw peer: writes hand-built frames, decodes what our stream sends.
struct Peer {
    io: End,
    decoder: Decoder,
    /// The peer is the client: its frames are masked.
    client: bool,
}

impl Peer {
    async fn send(&mut self, frame: Frame) {
        let bytes = frame.sent_by_client(self.client).encode();
        self.io.write_all(&bytes).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next frame from our stream, or `None` at the end of the transport.
    async fn next_frame(&mut self) -> Option<Decoded> {
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                return Some(frame);
            }
            let mut buf = [0u8; 4096];
            match self.io.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.push(&buf[..n]),
            }
        }
    }

    /// Frames up to and including our close frame; returns its code.
    async fn until_close(&mut self) -> (Vec<Decoded>, Option<u16>) {
        let mut seen = Vec::new();
        while let Some(frame) = self.next_frame().await {
            if frame.opcode == frames::CLOSE {
                let code = frame.close_code();
                seen.push(frame);
                return (seen, code);
            }
            seen.push(frame);
        }
        panic!("the transport ended before our close frame; saw {seen:?}");
    }
}

/// Our stream as the server (or client), and the raw peer.
async fn setup(
    client: bool,
    ws_config: Option<WebSocketConfig>,
    config: Config,
) -> (WsStream<End>, Peer) {
    let (ours, theirs) = pipe(1 << 20);
    let role = if client { Role::Client } else { Role::Server };
    let ws = WebSocketStream::from_raw_socket(ours, role, ws_config).await;
    let peer = Peer {
        io: theirs,
        decoder: Decoder::default(),
        client: !client,
    };
    (WsStream::with_config(ws, config), peer)
}

/// Reads until the end; returns the bytes and the end.
async fn read_all(stream: &mut WsStream<End>) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) => return (out, Err(err)),
        }
    }
}

fn ws_err(err: &io::Error) -> &WsErr {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<WsErr>())
        .expect("the io::Error carries a WsErr")
}

/// One bad-input case: the peer sends `before` as binary, then `bad`, then waits for our close
/// frame and answers it. Returns the close code it saw, the reader's error, the events.
struct BadCase {
    client: bool,
    ws_config: Option<WebSocketConfig>,
    config: Config,
    bad: Vec<Vec<u8>>,
}

struct BadOutcome {
    code: Option<u16>,
    err: io::Error,
    events: Vec<WsEvent>,
}

impl BadCase {
    fn server(bad: Vec<Vec<u8>>) -> Self {
        Self {
            client: false,
            ws_config: None,
            config: Config::default(),
            bad,
        }
    }

    fn run(self) -> BadOutcome {
        run(10, async move {
            let (mut stream, mut peer) = setup(self.client, self.ws_config, self.config).await;
            let events = stream.observe(ObserveConfig::default()).await.unwrap();
            peer.send(Frame::new(frames::BINARY, b"before ".to_vec()))
                .await;
            peer.send(Frame::new(frames::BINARY, b"the bad input".to_vec()))
                .await;
            for bytes in &self.bad {
                peer.send_raw(bytes).await;
            }
            let reader = read_all(&mut stream);
            let answer = async {
                let (_, code) = peer.until_close().await;
                // Complete the handshake, as a polite peer would.
                peer.send(Frame::new(frames::CLOSE, frames::close_payload(1000, "")))
                    .await;
                code
            };
            let ((got, end), code) = join(reader, answer).await;
            assert_eq!(got, b"before the bad input", "bytes before the bad input");
            let err = end.expect_err("bad input must end in an error");
            drop(stream);
            let events = events.collect::<Vec<_>>().await;
            BadOutcome { code, err, events }
        })
    }
}

impl BadOutcome {
    fn assert(&self, code: u16, kind: io::ErrorKind, matches: impl Fn(&WsErr) -> bool) {
        assert_eq!(self.code, Some(code), "close code the peer saw");
        assert_eq!(self.err.kind(), kind, "{:?}", self.err);
        assert!(matches(ws_err(&self.err)), "{:?}", self.err);
        let error_event = self
            .events
            .iter()
            .any(|e| matches!(e, WsEvent::Error(err) if matches(err)));
        assert!(error_event, "no matching error event in {:?}", self.events);
        assert!(
            matches!(self.events.last(), Some(WsEvent::Closed)),
            "Closed must be the last event: {:?}",
            self.events
        );
    }
}

fn masked(frame: Frame) -> Vec<u8> {
    frame.sent_by_client(true).encode()
}

#[test]
fn text_is_rejected_with_1003() {
    let outcome = BadCase::server(vec![masked(Frame::new(frames::TEXT, b"hi".to_vec()))]).run();
    outcome.assert(1003, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::ReceivedText)
    });
}

#[test]
fn invalid_utf8_is_rejected_with_1007() {
    let bad = masked(Frame::new(frames::TEXT, vec![b'o', b'k', 0xff, 0xfe]));
    let outcome = BadCase::server(vec![bad.clone()]).run();
    outcome.assert(1007, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::InvalidUtf8 { .. })
    });

    // Even when text is accepted as bytes.
    let mut case = BadCase::server(vec![bad]);
    case.config = Config::default().text_policy(TextPolicy::Accept);
    let outcome = case.run();
    outcome.assert(1007, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::InvalidUtf8 { .. })
    });
}

#[test]
fn fragmented_invalid_utf8_is_rejected_with_1007() {
    // A code point split across fragments is fine; the bad byte is in the second fragment.
    let mut case = BadCase::server(vec![
        masked(Frame::new(frames::TEXT, vec![b'a', 0xc3]).fin(false)),
        masked(Frame::new(frames::CONT, vec![0xa9, 0xff])),
    ]);
    case.config = Config::default().text_policy(TextPolicy::Accept);
    case.run().assert(1007, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::InvalidUtf8 { .. })
    });
}

#[test]
fn oversized_message_is_rejected_with_1009() {
    // Three 400-byte fragments: each frame fits, the message (1200) does not.
    let mut case = BadCase::server(vec![
        masked(Frame::new(frames::BINARY, vec![1; 400]).fin(false)),
        masked(Frame::new(frames::CONT, vec![2; 400]).fin(false)),
        masked(Frame::new(frames::CONT, vec![3; 400])),
    ]);
    case.ws_config = Some(
        WebSocketConfig::default()
            .max_message_size(Some(1024))
            .max_frame_size(Some(512)),
    );
    case.run().assert(1009, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::MessageTooBig { .. })
    });
}

#[test]
fn oversized_frame_is_rejected_with_1009() {
    let mut case = BadCase::server(vec![masked(Frame::new(frames::BINARY, vec![1; 600]))]);
    case.ws_config = Some(
        WebSocketConfig::default()
            .max_message_size(Some(1024))
            .max_frame_size(Some(512)),
    );
    case.run().assert(1009, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::MessageTooBig { .. })
    });
}

#[test]
fn reserved_opcodes_are_rejected_with_1002() {
    for opcode in [0x3, 0x7, 0xB, 0xF] {
        let outcome = BadCase::server(vec![masked(Frame::new(opcode, b"x".to_vec()))]).run();
        outcome.assert(1002, io::ErrorKind::InvalidData, |e| {
            matches!(e, WsErr::Protocol { .. })
        });
    }
}

#[test]
fn other_protocol_violations_are_rejected_with_1002() {
    let mut rsv = Frame::new(frames::BINARY, b"x".to_vec());
    rsv.rsv = 0x40;
    let cases = [
        // Unmasked frame from a client.
        Frame::new(frames::BINARY, b"x".to_vec()).encode(),
        // Reserved bits set.
        masked(rsv),
        // Continuation without a start.
        masked(Frame::new(frames::CONT, b"x".to_vec())),
        // A new message in the middle of a fragmented one.
        [
            masked(Frame::new(frames::BINARY, b"x".to_vec()).fin(false)),
            masked(Frame::new(frames::BINARY, b"y".to_vec())),
        ]
        .concat(),
        // Fragmented control frame.
        masked(Frame::new(frames::PING, b"x".to_vec()).fin(false)),
        // Control frame over 125 bytes.
        masked(Frame::new(frames::PING, vec![0; 126])),
        // A close frame with a one-byte payload.
        masked(Frame::new(frames::CLOSE, vec![3])),
    ];
    for (i, bad) in cases.into_iter().enumerate() {
        let outcome = BadCase::server(vec![bad]).run();
        assert_eq!(outcome.code, Some(1002), "case {i}");
        outcome.assert(1002, io::ErrorKind::InvalidData, |e| {
            matches!(e, WsErr::Protocol { .. })
        });
    }
}

#[test]
fn masked_frame_from_a_server_is_rejected_with_1002() {
    let mut case = BadCase::server(vec![
        Frame::new(frames::BINARY, b"x".to_vec())
            .masked([9, 8, 7, 6])
            .encode(),
    ]);
    case.client = true;
    // `before` frames are sent unmasked by the server peer; the bad one is masked.
    case.run().assert(1002, io::ErrorKind::InvalidData, |e| {
        matches!(e, WsErr::Protocol { .. })
    });
}

/// A close frame with a code that may not be sent (1005, 1006, 1015, out of range):
/// tungstenite answers 1002 and reports the close as a protocol error close; the reader gets
/// `ConnectionAborted` with code 1002, never EOF, after all the data.
#[test]
fn invalid_close_code_is_answered_with_1002() {
    for code in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
        run(10, async move {
            let (mut stream, mut peer) = setup(false, None, Config::default()).await;
            let events = stream.observe(ObserveConfig::default()).await.unwrap();
            peer.send(Frame::new(frames::BINARY, b"data".to_vec()))
                .await;
            peer.send(Frame::new(
                frames::CLOSE,
                frames::close_payload(code, "bad"),
            ))
            .await;
            let ((got, end), (_, seen)) = join(read_all(&mut stream), peer.until_close()).await;
            assert_eq!(got, b"data");
            assert_eq!(seen, Some(1002), "code {code}");
            let err = end.expect_err("an invalid close code is not a clean close");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "code {code}");
            assert!(
                matches!(ws_err(&err), WsErr::PeerClosed { code: c, .. } if u16::from(*c) == 1002)
            );
            drop(stream);
            let events = events.collect::<Vec<_>>().await;
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, WsEvent::CloseFrame(Some(_))))
            );
        });
    }
}

/// A close reason that is not UTF-8: 1007.
#[test]
fn close_reason_with_invalid_utf8_is_rejected_with_1007() {
    let mut payload = frames::close_payload(1000, "");
    payload.extend_from_slice(&[0xff, 0xfe]);
    BadCase::server(vec![masked(Frame::new(frames::CLOSE, payload))])
        .run()
        .assert(1007, io::ErrorKind::InvalidData, |e| {
            matches!(e, WsErr::InvalidUtf8 { .. })
        });
}

/// The peer sends half a frame and goes silent, transport open. Keepalive ends it: a ping goes
/// out after the interval, and when nothing arrives within the timeout the reader gets
/// `TimedOut` (`KeepaliveTimeout`).
#[test]
fn half_frame_then_silence_ends_by_keepalive() {
    run(10, async {
        let config = Config::default()
            .ping_interval(Some(Duration::from_millis(150)))
            .ping_timeout(Duration::from_millis(200));
        let (mut stream, mut peer) = setup(false, None, config).await;
        let events = stream.observe(ObserveConfig::default()).await.unwrap();
        peer.send(Frame::new(frames::BINARY, b"whole".to_vec()))
            .await;
        let half = Frame::new(frames::BINARY, vec![5; 100])
            .sent_by_client(true)
            .encode();
        peer.send_raw(&half[..50]).await;
        let start = Instant::now();
        let (got, end) = read_all(&mut stream).await;
        let took = start.elapsed();
        assert_eq!(got, b"whole");
        let err = end.expect_err("a silent peer is not a clean end");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(ws_err(&err), WsErr::KeepaliveTimeout));
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // The peer saw the keepalive ping.
        let ping = peer.next_frame().await.expect("a keepalive ping");
        assert_eq!(ping.opcode, frames::PING);
        drop(stream);
        let events = events.collect::<Vec<_>>().await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, WsEvent::Error(e) if matches!(**e, WsErr::KeepaliveTimeout)))
        );
        assert!(matches!(events.last(), Some(WsEvent::Closed)));
    });
}

/// We close; the peer sends half a frame and goes silent. The close timeout ends the reader
/// with `TimedOut` (`CloseTimeout`); the peer saw our close 1000.
#[test]
fn half_frame_then_silence_ends_by_close_timeout() {
    run(10, async {
        let config = Config::default().close_timeout(Some(Duration::from_millis(200)));
        let (mut stream, mut peer) = setup(false, None, config).await;
        let half = Frame::new(frames::BINARY, vec![5; 100])
            .sent_by_client(true)
            .encode();
        peer.send_raw(&half[..3]).await;
        stream.close().await.unwrap();
        let start = Instant::now();
        let (got, end) = read_all(&mut stream).await;
        assert!(got.is_empty());
        let err = end.expect_err("an unfinished handshake is not a clean end");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(ws_err(&err), WsErr::CloseTimeout));
        assert!(start.elapsed() < Duration::from_secs(3));
        let (_, code) = peer.until_close().await;
        assert_eq!(code, Some(1000));
    });
}

/// The peer closes; the stream answers but the peer never ends the transport: with both
/// close frames exchanged, the close timeout ends the reader cleanly (EOF).
#[test]
fn peer_close_then_silence_is_eof_after_the_timeout() {
    run(10, async {
        let config = Config::default().close_timeout(Some(Duration::from_millis(200)));
        let (mut stream, mut peer) = setup(false, None, config).await;
        peer.send(Frame::new(frames::BINARY, b"all".to_vec())).await;
        peer.send(Frame::new(frames::CLOSE, frames::close_payload(1000, "")))
            .await;
        let (got, end) = read_all(&mut stream).await;
        assert_eq!(got, b"all");
        end.unwrap();
        let (_, code) = peer.until_close().await;
        assert_eq!(code, Some(1000));
    });
}

/// A bounded observer (`Channel::Bounded(1)`) that is never drained: the reader waits for it
/// (backpressure, no event dropped); dropping the observer releases the reader.
#[test]
fn undrained_bounded_observer_holds_the_reader_until_dropped() {
    run(10, async {
        let (mut stream, mut peer) = setup(false, None, Config::default()).await;
        let observer = stream
            .observe(ObserveConfig::default().channel(Channel::Bounded(1)))
            .await
            .unwrap();
        for i in 0..10u8 {
            peer.send(Frame::new(frames::PING, vec![i])).await;
        }
        peer.send(Frame::new(frames::BINARY, b"after the pings".to_vec()))
            .await;
        peer.send(Frame::new(frames::CLOSE, frames::close_payload(1000, "")))
            .await;

        // The reader is held: the observer's channel is full.
        let mut buf = [0u8; 64];
        let held = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
        assert!(
            held.is_err(),
            "the reader went past a full observer: {held:?}"
        );
        let debug = format!("{stream:?}");
        assert!(debug.contains("unread: 0"), "{debug}");

        // Dropping the observer releases it.
        drop(observer);
        let (got, end) = read_all(&mut stream).await;
        assert_eq!(got, b"after the pings");
        end.unwrap();
    });
}

/// A bounded observer drained by another task gets every event, in order, and the stream of
/// events ends after `Closed`.
#[test]
fn drained_bounded_observer_loses_no_event() {
    run(20, async {
        let (mut stream, mut peer) = setup(false, None, Config::default()).await;
        let mut observer = stream
            .observe(ObserveConfig::default().channel(Channel::Bounded(1)))
            .await
            .unwrap();
        const PINGS: u16 = 2000;
        let send = async {
            for i in 0..PINGS {
                let op = if i % 2 == 0 {
                    frames::PING
                } else {
                    frames::PONG
                };
                peer.send(Frame::new(op, i.to_be_bytes().to_vec())).await;
                if i % 100 == 0 {
                    peer.send(Frame::new(frames::BINARY, i.to_be_bytes().to_vec()))
                        .await;
                }
            }
            peer.send(Frame::new(
                frames::CLOSE,
                frames::close_payload(1001, "bye"),
            ))
            .await;
        };
        let watch = async {
            let mut events = Vec::new();
            while let Some(event) = observer.next().await {
                // A slow observer.
                if events.len() % 97 == 0 {
                    tokio::task::yield_now().await;
                }
                events.push(event);
            }
            events
        };
        let ((), ((got, end), events)) = join(send, join(read_all(&mut stream), watch)).await;
        end.unwrap();
        let expected: Vec<u8> = (0..PINGS).step_by(100).flat_map(u16::to_be_bytes).collect();
        assert_eq!(got, expected);
        assert_eq!(
            events.len(),
            usize::from(PINGS) + 2,
            "pings, pongs, close frame, closed"
        );
        for (i, event) in events.iter().take(usize::from(PINGS)).enumerate() {
            let want = (i as u16).to_be_bytes();
            match event {
                WsEvent::Ping(p) if i % 2 == 0 => assert_eq!(p[..], want),
                WsEvent::Pong(p) if i % 2 == 1 => assert_eq!(p[..], want),
                other => panic!("event {i}: {other:?}"),
            }
        }
        assert!(
            matches!(&events[usize::from(PINGS)], WsEvent::CloseFrame(Some(f)) if u16::from(f.code) == 1001)
        );
        assert!(matches!(events.last(), Some(WsEvent::Closed)));
    });
}

/// Both ends close at the same time: both handshakes complete, both readers get EOF.
#[test]
fn both_ends_close_at_once() {
    run(10, async {
        let (a, b) = pipe(1 << 16);
        let (a, b) = join(
            WebSocketStream::from_raw_socket(a, Role::Client, None),
            WebSocketStream::from_raw_socket(b, Role::Server, None),
        )
        .await;
        let (mut a, mut b) = (WsStream::new(a), WsStream::new(b));
        a.write_all(b"from a").await.unwrap();
        b.write_all(b"from b").await.unwrap();
        let (ra, rb) = join(a.close(), b.close()).await;
        ra.unwrap();
        rb.unwrap();
        // Each side reads to EOF; the server then drops its transport, as a server does,
        // which ends the client's transport (no close timeout involved).
        let start = Instant::now();
        let read_a = async {
            let mut got = Vec::new();
            a.read_to_end(&mut got).await.unwrap();
            // Writing after the close is refused, not lost silently.
            let late = a.write(b"late").await.unwrap_err();
            assert_eq!(late.kind(), io::ErrorKind::NotConnected);
            got
        };
        let read_b = async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            drop(b);
            got
        };
        let (got_a, got_b) = join(read_a, read_b).await;
        assert_eq!((&got_a[..], &got_b[..]), (&b"from b"[..], &b"from a"[..]));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    });
}

/// A write is pending (the peer does not read, the pipe is full); the writer gives up on it and
/// closes. Once the peer reads, it gets every byte that a write accepted, then close 1000;
/// its answer completes the handshake and the reader gets EOF.
#[test]
fn close_while_a_write_is_pending() {
    run(10, async {
        let (ours, theirs) = pipe(4096);
        let ws = WebSocketStream::from_raw_socket(ours, Role::Client, None).await;
        let mut stream = WsStream::with_config(ws, Config::default().max_message_size(1024));
        let mut peer = Peer {
            io: theirs,
            decoder: Decoder::default(),
            client: false,
        };
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut accepted = 0;
        loop {
            let write = stream.write(&data[accepted..]);
            match tokio::time::timeout(Duration::from_millis(100), write).await {
                Ok(n) => accepted += n.unwrap(),
                Err(_) => break, // Pending: the transport is full.
            }
        }
        assert!(
            accepted < data.len(),
            "a peer that never reads must stop the writer"
        );
        let close = async {
            stream.close().await.unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.map(|_| rest)
        };
        let drain = async move {
            let (seen, code) = peer.until_close().await;
            peer.send(Frame::new(frames::CLOSE, frames::close_payload(1000, "")))
                .await;
            // A server ends the transport once the handshake is done.
            drop(peer);
            (frames::binary_payload(&seen), code)
        };
        let (rest, (sent, code)) = join(close, drain).await;
        assert!(rest.unwrap().is_empty());
        assert_eq!(code, Some(1000));
        assert_eq!(sent.len(), accepted);
        assert_eq!(sent, data[..accepted]);
    });
}

/// Dropping the stream in the middle of the close handshake: the peer sees our close frame and
/// then the end of the transport; nothing panics.
#[test]
fn drop_mid_close_handshake() {
    run(10, async {
        let (mut stream, mut peer) = setup(false, None, Config::default()).await;
        stream.write_all(b"last words").await.unwrap();
        stream.close().await.unwrap();
        drop(stream);
        let (seen, code) = peer.until_close().await;
        assert_eq!(frames::binary_payload(&seen), b"last words");
        assert_eq!(code, Some(1000));
        assert!(peer.next_frame().await.is_none());
    });
}

/// Dropped mid-handshake (HTTP upgrade): the other side gets an error, nothing panics.
#[test]
fn drop_mid_http_handshake() {
    run(10, async {
        // The server goes away after half the request.
        let (client_io, mut server_io) = pipe(1 << 16);
        let client = async_tungstenite::client_async("ws://localhost/", client_io);
        let cut = async move {
            let mut buf = [0u8; 20];
            server_io.read_exact(&mut buf).await.unwrap();
            drop(server_io);
        };
        let (result, ()) = join(client, cut).await;
        assert!(result.is_err());

        // The client goes away after half the request.
        let (mut client_io, server_io) = pipe(1 << 16);
        client_io
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
            .await
            .unwrap();
        drop(client_io);
        let result = async_tungstenite::accept_async(server_io).await;
        assert!(result.is_err());
    });
}

/// The peer vanishes without a close (transport EOF) while we read: `UnexpectedEof` after all
/// the data, and the same error again on the next read; writes are refused.
#[test]
fn peer_vanishes_without_close() {
    run(10, async {
        let (mut stream, mut peer) = setup(false, None, Config::default()).await;
        peer.send(Frame::new(frames::BINARY, b"partial".to_vec()))
            .await;
        drop(peer);
        let (got, end) = read_all(&mut stream).await;
        assert_eq!(got, b"partial");
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut buf = [0u8; 4];
        assert_eq!(
            stream.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(stream.write(b"x").await.is_err());
    });
}

/// A peer that closes with an application code: the reader gets all the data, then
/// `ConnectionAborted` with the code and reason, never EOF.
#[test]
fn peer_close_with_other_code_is_an_error() {
    run(10, async {
        let (mut stream, mut peer) = setup(false, None, Config::default()).await;
        peer.send(Frame::new(frames::BINARY, b"data".to_vec()))
            .await;
        peer.send(Frame::new(
            frames::CLOSE,
            frames::close_payload(4000, "shutting down"),
        ))
        .await;
        let (got, end) = read_all(&mut stream).await;
        assert_eq!(got, b"data");
        let err = end.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(
            matches!(ws_err(&err), WsErr::PeerClosed { code, reason } if u16::from(*code) == 4000 && reason == "shutting down")
        );
    });
}

/// A peer that keeps sending after its close frame (data, or garbage): none of it is part of
/// the stream, and the close frame alone decides the end (EOF for 1000), for a server (which
/// stops reading once it answered the close) and for a client (which reads on until the
/// transport ends) alike.
#[test]
fn data_after_the_peers_close_is_not_delivered() {
    for client in [false, true] {
        run(10, async move {
            let (mut stream, mut peer) = setup(client, None, Config::default()).await;
            peer.send(Frame::new(frames::BINARY, b"in".to_vec())).await;
            peer.send(Frame::new(frames::CLOSE, frames::close_payload(1000, "")))
                .await;
            peer.send(Frame::new(frames::BINARY, b"out".to_vec())).await;
            peer.send_raw(&[0x3d, 0x38, 0x5a]).await;
            let (got, end) = read_all(&mut stream).await;
            assert_eq!(got, b"in");
            end.unwrap();
            let (_, code) = peer.until_close().await;
            assert_eq!(code, Some(1000));
        });
    }
}

/// A select between a read and a timer, cancelled over and over (cancel safety): no byte lost.
#[test]
fn cancelled_reads_lose_nothing() {
    run(20, async {
        let (mut stream, mut peer) = setup(false, None, Config::default()).await;
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let send = async {
            for chunk in data.chunks(777) {
                peer.send(Frame::new(frames::BINARY, chunk.to_vec())).await;
                tokio::task::yield_now().await;
            }
            peer.send(Frame::new(frames::CLOSE, Vec::new())).await;
        };
        let read = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 300];
            loop {
                let timer = Box::pin(tokio::task::yield_now());
                match select(stream.read(&mut buf), timer).await {
                    Either::Left((Ok(0), _)) => break,
                    Either::Left((Ok(n), _)) => got.extend_from_slice(&buf[..n]),
                    Either::Left((Err(err), _)) => panic!("{err:?}"),
                    Either::Right(((), _)) => {}
                }
            }
            got
        };
        let ((), got) = join(send, read).await;
        assert_eq!(got, data);
    });
}
