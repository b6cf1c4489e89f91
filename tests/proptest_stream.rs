//! Property tests: whatever the data, the message fragmentation, the interleaved control frames,
//! the transport's chunking and `Pending`s, the read sizes and the write sizes and flush points,
//! the bytes arrive identical and in order, and EOF comes only at a clean close.
//!
//! Each property runs 1000 cases from a fixed seed (deterministic); failures found by proptest
//! are kept in `proptest-regressions/` and replayed first. Everything runs in memory on the
//! harness executor, which panics on a lost wake-up or a livelock, so a hang is a failure too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by panicking.

mod support;

use async_tungstenite::WebSocketStream;
use futures::{
    future::join,
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
};
use proptest::{
    prelude::*,
    test_runner::{Config as PtConfig, FileFailurePersistence, RngSeed},
};
use tungstenite::protocol::Role;
use ws_stream_tungstenite::{Config, WsStream};

use support::{
    fault::{FaultIo, InputEnd},
    frames::{self, Frame},
    harness::drive,
    pipe::pipe_chunked,
    rng::Rng,
};

fn config() -> PtConfig {
    PtConfig {
        cases: 1000,
        rng_seed: RngSeed::Fixed(0x5eed_0004),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/proptest_stream.txt",
        ))),
        ..PtConfig::default()
    }
}

fn role(client: bool) -> Role {
    if client { Role::Client } else { Role::Server }
}

/// How the reader reads.
#[derive(Debug, Clone, Copy)]
enum ReadMode {
    /// futures `AsyncRead::poll_read` with random buffer sizes.
    Read,
    /// futures `AsyncBufRead`: `fill_buf` then `consume` of a random amount.
    BufRead,
    /// tokio `AsyncRead::poll_read` with random buffer sizes.
    TokioRead,
    /// tokio `AsyncBufRead`.
    TokioBufRead,
}

fn read_mode() -> impl Strategy<Value = ReadMode> {
    prop_oneof![
        Just(ReadMode::Read),
        Just(ReadMode::BufRead),
        Just(ReadMode::TokioRead),
        Just(ReadMode::TokioBufRead),
    ]
}

/// One message from the peer: payload, fragment split points, control frames between
/// fragments (bit i: a ping or pong after fragment i).
type PeerMessage = (Vec<u8>, Vec<usize>, u8);

fn peer_messages() -> impl Strategy<Value = Vec<PeerMessage>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..80),
            prop::collection::vec(0usize..80, 0..4),
            any::<u8>(),
        ),
        0..12,
    )
}

/// The peer's bytes for these messages, then a close frame with `code`.
fn peer_input(messages: &[PeerMessage], peer_is_client: bool, code: u16) -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut data = Vec::new();
    let mut control = 0u8;
    for (payload, splits, controls) in messages {
        data.extend_from_slice(payload);
        let mut cuts: Vec<usize> = splits.iter().map(|s| s % (payload.len() + 1)).collect();
        cuts.push(payload.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut start = 0;
        for (i, &cut) in cuts.iter().enumerate() {
            let opcode = if i == 0 { frames::BINARY } else { frames::CONT };
            let fin = i + 1 == cuts.len();
            let frame = Frame::new(opcode, payload[start..cut].to_vec()).fin(fin);
            wire.extend(frame.sent_by_client(peer_is_client).encode());
            start = cut;
            if controls & (1 << (i % 8)) != 0 {
                control = control.wrapping_add(1);
                let op = if control % 3 == 0 {
                    frames::PONG
                } else {
                    frames::PING
                };
                let ctl = Frame::new(op, vec![control; usize::from(control % 5)]);
                wire.extend(ctl.sent_by_client(peer_is_client).encode());
            }
        }
    }
    let close = Frame::new(frames::CLOSE, frames::close_payload(code, ""));
    wire.extend(close.sent_by_client(peer_is_client).encode());
    (wire, data)
}

/// Reads everything with `mode` and random sizes; returns the bytes and the end.
async fn read_all<T>(
    stream: &mut WsStream<T>,
    mode: ReadMode,
    rng: &mut Rng,
    max_read: usize,
) -> (Vec<u8>, std::io::Result<()>)
where
    T: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    loop {
        let size = rng.range(1, max_read);
        let step: std::io::Result<usize> = match mode {
            ReadMode::Read => {
                let mut buf = vec![0; size];
                stream
                    .read(&mut buf)
                    .await
                    .inspect(|&n| out.extend_from_slice(&buf[..n]))
            }
            ReadMode::BufRead => match stream.fill_buf().await {
                Ok(chunk) => {
                    let n = chunk.len().min(size);
                    out.extend_from_slice(&chunk[..n]);
                    let empty = chunk.is_empty();
                    stream.consume_unpin(n);
                    Ok(if empty { 0 } else { n })
                }
                Err(err) => Err(err),
            },
            #[cfg(feature = "tokio_io")]
            ReadMode::TokioRead => {
                let mut buf = Vec::with_capacity(size);
                tokio::io::AsyncReadExt::read_buf(stream, &mut buf)
                    .await
                    .inspect(|&n| out.extend_from_slice(&buf[..n]))
            }
            #[cfg(feature = "tokio_io")]
            ReadMode::TokioBufRead => match tokio::io::AsyncBufReadExt::fill_buf(stream).await {
                Ok(chunk) => {
                    let n = chunk.len().min(size);
                    out.extend_from_slice(&chunk[..n]);
                    let empty = chunk.is_empty();
                    tokio::io::AsyncBufReadExt::consume(stream, n);
                    Ok(if empty { 0 } else { n })
                }
                Err(err) => Err(err),
            },
            #[cfg(not(feature = "tokio_io"))]
            ReadMode::TokioRead | ReadMode::TokioBufRead => {
                let mut buf = vec![0; size];
                stream
                    .read(&mut buf)
                    .await
                    .inspect(|&n| out.extend_from_slice(&buf[..n]))
            }
        };
        match step {
            Ok(0) => return (out, Ok(())),
            Ok(_) => {}
            Err(err) => return (out, Err(err)),
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A raw peer sends binary messages cut into random fragments with pings and pongs between
    /// them, then a clean close; the transport delivers it in random chunks with random
    /// `Pending`s; the reader reads with random sizes. The bytes arrive identical, then EOF
    /// (never earlier: `AsyncBufRead` never hands out an empty buffer before the end).
    #[test]
    fn fragmented_input_arrives_whole(
        messages in peer_messages(),
        client in any::<bool>(),
        normal in any::<bool>(),
        mode in read_mode(),
        seed in any::<u64>(),
        max_chunk in 1usize..64,
        max_read in 1usize..200,
    ) {
        let code = if normal { 1000 } else { 1001 };
        let (wire, data) = peer_input(&messages, !client, code);
        let io = FaultIo::new(wire, InputEnd::Eof).adversarial(seed, 25, max_chunk);
        let record = io.recorder();
        let mut rng = Rng::new(seed);
        let (got, end) = drive(async {
            let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
            let mut stream = WsStream::new(ws);
            let result = read_all(&mut stream, mode, &mut rng, max_read).await;
            // EOF is final and does not touch the transport again (it panics if polled).
            let mut buf = [0u8; 8];
            assert_eq!(stream.read(&mut buf).await.ok(), Some(0));
            result
        });
        prop_assert!(end.is_ok(), "ended with {end:?}");
        prop_assert_eq!(got, data);
        // Our side answered the close with the same code; control payloads never leaked.
        let written = frames::decode_all(&record.written());
        let close = written.iter().find(|f| f.opcode == frames::CLOSE);
        prop_assert_eq!(close.and_then(frames::Decoded::close_code), Some(code));
        prop_assert!(written.iter().all(|f| f.masked == client));
    }

    /// The same input, truncated at a random byte (no close frame): the reader gets a prefix
    /// of the data made of whole messages, then `UnexpectedEof`, never EOF.
    #[test]
    fn truncated_input_is_never_eof(
        messages in peer_messages(),
        client in any::<bool>(),
        mode in read_mode(),
        seed in any::<u64>(),
        cut in any::<prop::sample::Index>(),
        max_read in 1usize..200,
    ) {
        let (wire, data) = peer_input(&messages, !client, 1000);
        // Cut before the last byte of the close frame, so the close never completes.
        let at = cut.index(wire.len());
        let io = FaultIo::new(wire[..at].to_vec(), InputEnd::Eof).adversarial(seed, 25, 16);
        let mut rng = Rng::new(seed);
        let (got, end) = drive(async {
            let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
            let mut stream = WsStream::new(ws);
            read_all(&mut stream, mode, &mut rng, max_read).await
        });
        let err = end.expect_err("a truncated stream must not end with EOF");
        prop_assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        prop_assert_eq!(&got[..], &data[..got.len()]);
    }

    /// Random data written with random write sizes (plain or vectored) and random flush points
    /// over a transport with short writes and `Pending`s, then a close: the peer decodes the
    /// same bytes, in messages no larger than the configured size and never empty, followed by
    /// close 1000; small writes between flushes are coalesced.
    #[test]
    fn written_bytes_arrive_whole(
        data in prop::collection::vec(any::<u8>(), 0..3000),
        writes in prop::collection::vec((1usize..400, any::<bool>(), any::<bool>()), 1..20),
        client in any::<bool>(),
        max_message in 1usize..700,
        seed in any::<u64>(),
        max_chunk in 1usize..64,
    ) {
        // The peer's answer to our close, waiting in the transport.
        let reply = Frame::new(frames::CLOSE, frames::close_payload(1000, ""))
            .sent_by_client(!client)
            .encode();
        let io = FaultIo::new(reply, InputEnd::Eof).adversarial(seed, 25, max_chunk);
        let record = io.recorder();
        let (flushes, cap) = drive(async {
            let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
            let mut stream = WsStream::with_config(ws, Config::default().max_message_size(max_message));
            let mut flushes = 0;
            let mut at = 0;
            let mut op = 0;
            while at < data.len() {
                let (size, flush, vectored) = writes[op % writes.len()];
                op += 1;
                let end = (at + size).min(data.len());
                if vectored {
                    // Two slices per call; partial acceptance is retried from where it stopped.
                    let mid = at + (end - at) / 2;
                    let mut pos = at;
                    while pos < end {
                        let bufs = if pos < mid {
                            vec![std::io::IoSlice::new(&data[pos..mid]), std::io::IoSlice::new(&data[mid..end])]
                        } else {
                            vec![std::io::IoSlice::new(&data[pos..end])]
                        };
                        let n = stream.write_vectored(&bufs).await.unwrap();
                        assert!(n > 0);
                        pos += n;
                    }
                } else {
                    stream.write_all(&data[at..end]).await.unwrap();
                }
                at = end;
                if flush {
                    stream.flush().await.unwrap();
                    flushes += 1;
                }
            }
            stream.close().await.unwrap();
            let mut rest = Vec::new();
            assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
            (flushes, stream.max_message_size())
        });
        let frames = frames::decode_all(&record.written());
        prop_assert!(frames.iter().all(|f| f.masked == client && f.fin));
        let binary: Vec<_> = frames.iter().filter(|f| f.opcode == frames::BINARY).collect();
        prop_assert!(binary.iter().all(|f| !f.payload.is_empty() && f.payload.len() <= cap));
        prop_assert!(cap <= max_message);
        prop_assert_eq!(frames::binary_payload(&frames), data.clone());
        prop_assert_eq!(frames.last().and_then(frames::Decoded::close_code), Some(1000));
        prop_assert!(binary.len() <= flushes + 1 + data.len() / cap, "{} messages", binary.len());
    }

    /// Two streams over an in-memory pipe with a random capacity and random chunking, each
    /// writing random data with random sizes and flushes from one half while the other half
    /// reads: both receive exactly what the other sent. Then the client closes, the server
    /// reads EOF, and the client's read completes the handshake with EOF.
    #[test]
    fn round_trip_over_a_pipe(
        a_data in prop::collection::vec(any::<u8>(), 0..2000),
        b_data in prop::collection::vec(any::<u8>(), 0..2000),
        capacity in 1usize..3000,
        chunk in 0usize..50,
        seed in any::<u64>(),
        max_message in 1usize..500,
    ) {
        let (a_io, b_io) = pipe_chunked(capacity, chunk, seed);
        let side = |io, client: bool, data: Vec<u8>, expect: usize, seed: u64| async move {
            let ws = WebSocketStream::from_raw_socket(io, role(client), None).await;
            let stream = WsStream::with_config(ws, Config::default().max_message_size(max_message));
            let (mut reader, mut writer) = stream.split();
            let write = async {
                let mut rng = Rng::new(seed);
                let mut at = 0;
                while at < data.len() {
                    let end = (at + rng.range(1, 300)).min(data.len());
                    writer.write_all(&data[at..end]).await.unwrap();
                    if rng.chance(30) {
                        writer.flush().await.unwrap();
                    }
                    at = end;
                }
                writer.flush().await.unwrap();
            };
            let read = async {
                let mut got = vec![0; expect];
                reader.read_exact(&mut got).await.unwrap();
                got
            };
            let ((), got) = join(write, read).await;
            let mut rest = Vec::new();
            if client {
                writer.close().await.unwrap();
                assert_eq!(reader.read_to_end(&mut rest).await.unwrap(), 0);
            } else {
                assert_eq!(reader.read_to_end(&mut rest).await.unwrap(), 0);
                writer.close().await.unwrap();
            }
            got
        };
        let (a_got, b_got) = drive(join(
            side(a_io, true, a_data.clone(), b_data.len(), seed),
            side(b_io, false, b_data.clone(), a_data.len(), seed ^ 1),
        ));
        prop_assert_eq!(a_got, b_data);
        prop_assert_eq!(b_got, a_data);
    }
}
