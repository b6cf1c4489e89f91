//! Transport faults, injected by `support::fault::FaultIo`: random `Pending`s (each woken),
//! short reads and writes, and an error or EOF at a chosen byte offset of the input or the
//! output. For every offset, kind and seed: no panic, the error surfaces with the transport's
//! `io::ErrorKind` (a truncation without close is `UnexpectedEof`), every message completed
//! before the fault is delivered exactly once, and the transport is never polled after it
//! ended (it panics if it is).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by panicking.

mod support;

use std::io::{self, ErrorKind};

use async_tungstenite::WebSocketStream;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tungstenite::protocol::Role;
use ws_stream_tungstenite::{Config, WsErr, WsStream};

use support::{
    fault::{FaultIo, InputEnd},
    frames::{self, Frame},
    harness::drive,
};

/// The peer's input: messages (fragmented, with control frames between) and where each
/// message's last byte ends on the wire, then a close 1000.
fn script(peer_is_client: bool) -> (Vec<u8>, Vec<(usize, Vec<u8>)>) {
    let mut wire = Vec::new();
    let mut messages = Vec::new();
    let payloads: [&[u8]; 6] = [b"first", b"", &[7; 130], b"x", &[9; 300], b"last one"];
    for (i, payload) in payloads.iter().enumerate() {
        let enc = |f: Frame| f.sent_by_client(peer_is_client).encode();
        if i % 2 == 0 && payload.len() > 1 {
            let mid = payload.len() / 2;
            wire.extend(enc(
                Frame::new(frames::BINARY, payload[..mid].to_vec()).fin(false)
            ));
            wire.extend(enc(Frame::new(frames::PING, b"ping".to_vec())));
            wire.extend(enc(Frame::new(frames::CONT, payload[mid..].to_vec())));
            messages.push((wire.len(), payload.to_vec()));
        } else {
            wire.extend(enc(Frame::new(frames::BINARY, payload.to_vec())));
            messages.push((wire.len(), payload.to_vec()));
            wire.extend(enc(Frame::new(frames::PONG, Vec::new())));
        }
    }
    let close = Frame::new(frames::CLOSE, frames::close_payload(1000, ""));
    wire.extend(close.sent_by_client(peer_is_client).encode());
    (wire, messages)
}

fn role(client: bool) -> Role {
    if client { Role::Client } else { Role::Server }
}

/// Reads to the end with small reads; returns the bytes and the end.
async fn read_all<S>(stream: &mut WsStream<S>, buf_read: bool) -> (Vec<u8>, io::Result<()>)
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    loop {
        if buf_read {
            match stream.fill_buf().await {
                Ok([]) => return (out, Ok(())),
                Ok(chunk) => {
                    let n = chunk.len().min(7);
                    out.extend_from_slice(&chunk[..n]);
                    stream.consume_unpin(n);
                }
                Err(err) => return (out, Err(err)),
            }
        } else {
            let mut buf = [0u8; 13];
            match stream.read(&mut buf).await {
                Ok(0) => return (out, Ok(())),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(err) => return (out, Err(err)),
            }
        }
    }
}

/// The input is cut at every offset and ends there with EOF or an error; the reader gets the
/// messages completed before the cut, exactly once, then the matching error (or EOF when the
/// whole close frame arrived).
#[test]
fn read_fault_at_every_offset() {
    let mut runs = 0;
    for client in [false, true] {
        let (wire, messages) = script(!client);
        for end in [
            InputEnd::Eof,
            InputEnd::Error(ErrorKind::ConnectionReset),
            InputEnd::Error(ErrorKind::BrokenPipe),
        ] {
            for at in 0..=wire.len() {
                for seed in 0..3u64 {
                    let buf_read = seed == 1;
                    let io = FaultIo::new(wire[..at].to_vec(), end).adversarial(
                        seed * 7 + at as u64,
                        30,
                        9,
                    );
                    let record = io.recorder();
                    let (got, result, again) = drive(async {
                        let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
                        let mut stream = WsStream::new(ws);
                        let (got, result) = read_all(&mut stream, buf_read).await;
                        // The end repeats without polling the transport again.
                        let mut buf = [0u8; 4];
                        let again = stream.read(&mut buf).await.map_err(|e| e.kind());
                        (got, result, again)
                    });
                    runs += 1;
                    let whole: Vec<u8> = messages
                        .iter()
                        .filter(|(ends, _)| *ends <= at)
                        .flat_map(|(_, p)| p.clone())
                        .collect();
                    let ctx = format!(
                        "client {client}, {end:?} at {at}/{}, seed {seed}",
                        wire.len()
                    );
                    assert_eq!(got, whole, "{ctx}");
                    // Once the peer's close frame arrived whole, it decides the end: what the
                    // transport does after it (EOF or an error) changes nothing.
                    let complete = at == wire.len();
                    let expected = match end {
                        _ if complete => None,
                        InputEnd::Eof => Some(ErrorKind::UnexpectedEof),
                        InputEnd::Error(kind) => Some(kind),
                        InputEnd::Silent => unreachable!(),
                    };
                    assert_eq!(
                        result.as_ref().err().map(io::Error::kind),
                        expected,
                        "{ctx}: {result:?}"
                    );
                    assert_eq!(again.err(), expected, "{ctx}");
                    if expected.is_none() {
                        assert_eq!(again, Ok(0), "{ctx}");
                    }
                    if let Err(err) = &result {
                        let ws_err = err.get_ref().and_then(|e| e.downcast_ref::<WsErr>());
                        assert!(ws_err.is_some(), "{ctx}: the io::Error carries a WsErr");
                    }
                    assert!(record.lock().read <= at);
                }
            }
        }
    }
    println!("{runs} read-fault runs");
}

/// Writes fail at every offset of the output with `BrokenPipe` or `ConnectionReset`: the
/// error surfaces from a write, flush or close with that kind, and keeps surfacing (the
/// transport is not written again); what reached the transport is a prefix of the data.
#[test]
fn write_fault_at_every_offset() {
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 241) as u8).collect();
    let mut runs = 0;
    for client in [false, true] {
        for kind in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset] {
            for at in (0..3100).step_by(37) {
                for seed in 0..2u64 {
                    let io = FaultIo::new(Vec::new(), InputEnd::Silent)
                        .adversarial(seed + at as u64, 30, 50)
                        .write_fault(at, kind);
                    let record = io.recorder();
                    let outcome = drive(async {
                        let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
                        let mut stream =
                            WsStream::with_config(ws, Config::default().max_message_size(500));
                        let mut first_err = None;
                        for chunk in data.chunks(211) {
                            let step = match stream.write_all(chunk).await {
                                Ok(()) => stream.flush().await,
                                Err(err) => Err(err),
                            };
                            if let Err(err) = step {
                                first_err = Some(err.kind());
                                break;
                            }
                        }
                        let first_err = match first_err {
                            Some(kind) => Some(kind),
                            None => stream.close().await.err().map(|e| e.kind()),
                        };
                        // Later writes, flushes and closes keep failing the same way.
                        let later = [
                            stream.write(b"more").await.err().map(|e| e.kind()),
                            stream.flush().await.err().map(|e| e.kind()),
                            stream.close().await.err().map(|e| e.kind()),
                        ];
                        (first_err, later)
                    });
                    runs += 1;
                    let ctx = format!("client {client}, {kind:?} at {at}, seed {seed}");
                    let written = record.written();
                    let frames = frames::decode_all(&written);
                    let sent = frames::binary_payload(&frames);
                    assert_eq!(sent[..], data[..sent.len()], "{ctx}");
                    assert_eq!(record.lock().writes_after_error, 0, "{ctx}: wrote again");
                    if record.lock().write_failed {
                        assert_eq!(outcome.0, Some(kind), "{ctx}");
                        assert_eq!(outcome.1[0], Some(kind), "{ctx}: write after the fault");
                    } else {
                        // Everything, close frame included, fit before the fault offset.
                        assert_eq!(outcome.0, None, "{ctx}");
                        assert_eq!(sent, data, "{ctx}");
                    }
                }
            }
        }
    }
    println!("{runs} write-fault runs");
}

/// A write fault while the peer's close is being answered: the reader still ends, with the
/// transport's error or EOF, and never polls the transport after its end.
#[test]
fn write_fault_during_close_reply() {
    for client in [false, true] {
        let (wire, messages) = script(!client);
        let all: Vec<u8> = messages.iter().flat_map(|(_, p)| p.clone()).collect();
        for at in 0..40 {
            for seed in 0..4u64 {
                let io = FaultIo::new(wire.clone(), InputEnd::Eof)
                    .adversarial(seed, 30, 11)
                    .write_fault(at, ErrorKind::BrokenPipe);
                let (got, result) = drive(async {
                    let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
                    let mut stream = WsStream::new(ws);
                    read_all(&mut stream, false).await
                });
                let ctx = format!("client {client}, fault at {at}, seed {seed}");
                assert_eq!(got[..], all[..got.len()], "{ctx}");
                if let Err(err) = result {
                    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{ctx}");
                } else {
                    assert_eq!(got, all, "{ctx}");
                }
            }
        }
    }
}

/// The peer sends its close and ends its side of the transport (a half-close) while our
/// transport is not ready for writing: the answer to the close was queued by tungstenite but
/// not written when the end of the input was read. EOF must mean that the close handshake is
/// complete, so the answer goes out before the reader reports EOF.
#[test]
fn close_answer_goes_out_before_eof() {
    for client in [false, true] {
        for stalls in 0..4 {
            let close = Frame::new(frames::CLOSE, frames::close_payload(1000, ""));
            let wire = [
                Frame::new(frames::BINARY, b"data".to_vec())
                    .sent_by_client(!client)
                    .encode(),
                close.sent_by_client(!client).encode(),
            ]
            .concat();
            let io = FaultIo::new(wire, InputEnd::Eof).stall_writes(stalls);
            let record = io.recorder();
            let (got, result) = drive(async {
                let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
                let mut stream = WsStream::new(ws);
                read_all(&mut stream, false).await
            });
            let ctx = format!("client {client}, {stalls} stalled writes");
            assert_eq!(got, b"data", "{ctx}");
            result.unwrap();
            let answer = frames::decode_all(&record.written());
            let code = answer
                .iter()
                .find(|f| f.opcode == frames::CLOSE)
                .and_then(frames::Decoded::close_code);
            assert_eq!(
                code,
                Some(1000),
                "{ctx}: the close was not answered before EOF"
            );
        }
    }
}

/// After a write failed, bad input from the peer must not make the stream write to the failed
/// transport again (the close frame it would send cannot go out): the reader still gets the
/// bytes before the bad input and the bad input's error. (Found by the fuzzer.)
#[test]
fn no_close_frame_after_a_write_error() {
    for client in [false, true] {
        let wire = [
            Frame::new(frames::BINARY, b"x".to_vec())
                .sent_by_client(!client)
                .encode(),
            Frame::new(frames::TEXT, b"bad".to_vec())
                .sent_by_client(!client)
                .encode(),
        ]
        .concat();
        let io = FaultIo::new(wire, InputEnd::Eof).write_fault(0, ErrorKind::BrokenPipe);
        let record = io.recorder();
        let (flushed, (got, result)) = drive(async {
            let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
            let mut stream = WsStream::new(ws);
            stream.write_all(b"hello").await.unwrap();
            let flushed = stream.flush().await.map_err(|e| e.kind());
            (flushed, read_all(&mut stream, false).await)
        });
        assert_eq!(flushed, Err(ErrorKind::BrokenPipe));
        assert_eq!(got, b"x");
        assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidData);
        assert!(record.written().is_empty());
        assert_eq!(
            record.lock().writes_after_error,
            0,
            "wrote again after the error"
        );
    }
}

/// While the stream sends its close frame after bad input, the transport returns `Pending`
/// and wakes the task at once (as tokio's cooperative budget does): that wake-up must not be
/// lost, or the reader hangs. (Found by the fuzzer; `drive` panics on a lost wake-up.)
#[test]
fn no_lost_wakeup_while_failing() {
    for client in [false, true] {
        for stalls in 0..6 {
            let wire = [
                Frame::new(frames::BINARY, b"x".to_vec())
                    .sent_by_client(!client)
                    .encode(),
                Frame::new(0xB, b"?".to_vec())
                    .sent_by_client(!client)
                    .encode(),
            ]
            .concat();
            let io = FaultIo::new(wire, InputEnd::Eof).stall_writes(stalls);
            let record = io.recorder();
            let ws = drive(WebSocketStream::from_raw_socket(io, role(client), None));
            let mut stream = WsStream::new(ws);
            // One executor run (one waker) per read, as when the reader moves between tasks.
            let mut got = Vec::new();
            let err = loop {
                let mut buf = [0u8; 13];
                match drive(stream.read(&mut buf)) {
                    Ok(0) => panic!("EOF after bad input"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(err) => break err,
                }
            };
            assert_eq!(got, b"x");
            assert_eq!(err.kind(), ErrorKind::InvalidData);
            let sent = frames::decode_all(&record.written());
            assert_eq!(
                sent.last().and_then(frames::Decoded::close_code),
                Some(1002)
            );
        }
    }
}

/// Bad input, and the close frame that answers it meets a write error: the reader ends with
/// the bad input's error and the failed transport is not written again. (Found by the fuzzer.)
#[test]
fn close_frame_meets_a_write_error() {
    for client in [false, true] {
        for at in 0..3 {
            let wire = Frame::new(0x3, b"?".to_vec())
                .sent_by_client(!client)
                .encode();
            let io = FaultIo::new(wire, InputEnd::Eof).write_fault(at, ErrorKind::BrokenPipe);
            let record = io.recorder();
            let (got, result) = drive(async {
                let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
                let mut stream = WsStream::new(ws);
                read_all(&mut stream, false).await
            });
            assert!(got.is_empty());
            assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidData);
            assert_eq!(
                record.lock().writes_after_error,
                0,
                "wrote again after the error"
            );
        }
    }
}

/// Bytes handed to tungstenite but not flushed yet when the input ends: a later flush either
/// gets them out (`Ok`) or reports an error, never `Ok` with the bytes left behind.
/// (Found by the fuzzer.)
#[test]
fn flush_after_the_end_does_not_strand_bytes() {
    for client in [false, true] {
        for truncated in [false, true] {
            let input = if truncated {
                Vec::new()
            } else {
                let close = Frame::new(frames::CLOSE, frames::close_payload(1000, ""));
                close.sent_by_client(!client).encode()
            };
            let io = FaultIo::new(input, InputEnd::Eof);
            let record = io.recorder();
            let (flushed, end) = drive(async {
                let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
                let config = Config::default().max_message_size(4);
                let mut stream = WsStream::with_config(ws, config);
                // A full message goes into tungstenite's write buffer, unflushed.
                assert_eq!(stream.write(b"hello").await.unwrap(), 4);
                let mut buf = [0u8; 8];
                let end = stream.read(&mut buf).await.map_err(|e| e.kind());
                (stream.flush().await.map_err(|e| e.kind()), end)
            });
            let ctx = format!("client {client}, truncated {truncated}, end {end:?}");
            let sent = frames::binary_payload(&frames::decode_all(&record.written()));
            if flushed.is_ok() {
                assert_eq!(sent, b"hell", "{ctx}: flush said Ok");
            }
        }
    }
}
