//! Liveness: every pending operation ends when the connection ends, output never starves, the
//! timers fire on any executor, and nothing written is lost or hidden.
//!
//! Cases (each fails or times out on 3757bd0; the line at the top of each test says how):
//!
//! 1. The write half is woken when the connection ends. Split halves in two tasks on a
//!    2-worker tokio runtime; the write half is blocked on a full transport (the peer stopped
//!    reading) in `write`, `flush`, `close` or `send_ping`; then the reader ends because of
//!    a keepalive timeout, a close timeout (the peer's close frame, our answer stuck), a text
//!    message, or a read error of the transport. The blocked operation must end with an error.
//!    Each runs over a pipe under tungstenite and over `support::stuck` (separate wakers per
//!    direction, so only the stream itself can wake the writer).
//!    - `writer_woken_by_keepalive_timeout`
//!    - `writer_woken_by_close_timeout`
//!    - `writer_woken_by_bad_input`
//!    - `writer_woken_by_transport_error`
//! 2. `flush`/`close` never return `Ok` after the peer's close stranded written bytes: either
//!    the peer received every byte, or they return `NotConnected`.
//!    - `close_never_hides_bytes_stranded_by_the_peers_close`
//!    - `close_never_hides_bytes_stranded_by_the_peers_close_split`
//! 3. Executors without a cooperative budget (`futures::executor::block_on`, smol,
//!    async-std) and a peer faster than the reader (transports that are never `Pending`, one
//!    at the message level, one at the byte level under a real tungstenite): a 3-byte write
//!    reaches the peer while we keep reading; after `close()` with a 100 ms close timeout the
//!    reader ends with `TimedOut` within 2 s although input never stops.
//!    - `no_budget_futures_executor`, `no_budget_smol`, `no_budget_async_std`
//! 4. Keepalive during a slow upload (3 MiB at about 320 KB/s, the peer sends nothing): not
//!    declared dead, a ping reaches the peer during the upload, the upload completes.
//!    - `keepalive_does_not_kill_a_slow_upload`
//! 5. `close()` against a peer that never reads: `close()` and the reader end with `TimedOut`
//!    (close timeout 200 ms) within 2 s; split halves and the whole stream.
//!    - `close_against_a_peer_that_never_reads_times_out`
//! 6. `Config::send_timeout`: a peer that stopped reading is shed (writer and reader get
//!    `TimedOut` / `WsErr::SendTimeout`, an `Error` event); a slow but progressing peer is not;
//!    with no send timeout nothing times out.
//!    - `send_timeout_sheds_only_a_stalled_peer`
//! 7. Control frames never poison the stream: with a 64-byte `max_write_buffer_size`, a
//!    125-byte ping fails with `InvalidInput`, and writes, pings and close go on working.
//!    - `an_oversized_ping_fails_alone`
//! 8. A full bounded observer holds back input only: output still goes out and the close
//!    timeout still ends the reader.
//!    - `a_full_observer_holds_input_not_output_or_timers`
//! 9. Cancel safety: `send_ping`, `flush` and `close_with` dropped at their first `Pending`
//!    lose nothing: reading goes on, a later `close()` completes, the peer gets every byte and
//!    the ping.
//!    - `cancelled_ping_flush_and_close_lose_nothing`
//!
//! Transports: `support::pipe` (in memory, fixed capacity, no cooperative budget, so a
//! `Pending` from it always means "full") wrapped in `support::breakable` (read errors on
//! command, without waking writers), `support::stuck` (message level: a sink that stops
//! taking messages, input pushed by the test) and `support::ready` (never `Pending`). Raw
//! peers speak hand-made frames (`support::frames`). Every test is bounded: tokio timeouts,
//! or `futures_timer` on the other executors, or a bounded number of reads. The slow upload
//! (case 4) takes about 10 s by design; the others well under 2 s once they pass.

mod support;

use std::{
    future::{Future, poll_fn},
    io,
    pin::{Pin, pin},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt, StreamExt,
    future::{Either, join_all},
};
use futures_timer::Delay;
use pharos::{Channel, Observable, ObserveConfig};
use support::{
    breakable::{Breakable, Breaker},
    frames::{self, Decoded, Decoder, Frame},
    pipe::{End, pipe},
    pseudo_random, read_all,
    ready::{EndlessIo, ReadyTransport},
    stuck::{StuckCtl, StuckTransport},
    within,
};
use tungstenite::{
    Message,
    protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
};
use ws_stream_tungstenite::{Config, Transport, WriteHalf, WsErr, WsEvent, WsIo, WsStream};

type Io = Breakable<End>;
type Stream = WsStream<Io>;

const MS: Duration = Duration::from_millis(1);

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

/// Our stream (the server) over an in-memory pipe of `capacity` bytes per direction whose read
/// side can be broken; the raw client end of the pipe (it must mask its frames).
async fn server_over_pipe(
    capacity: usize,
    ws: Option<WebSocketConfig>,
    config: Config,
) -> (Stream, End, Breaker) {
    let (ours, raw) = pipe(capacity);
    let (io, breaker) = Breakable::new(ours);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, ws).await;
    (WsStream::with_config(ws, config), raw, breaker)
}

/// Sends one frame from the raw client end (masked).
async fn send(raw: &mut End, frame: Frame) {
    raw.write_all(&frame.sent_by_client(true).encode())
        .await
        .expect("raw peer write");
}

fn close_frame(code: u16) -> Frame {
    Frame::new(frames::CLOSE, frames::close_payload(code, ""))
}

/// Polls once and reports the result without waiting.
async fn poll_once<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    poll_fn(|cx| Poll::Ready(f(cx))).await
}

/// Writes until a write is `Pending` (the transport and every buffer are full); returns the
/// bytes accepted. The pipe has no cooperative budget, so `Pending` really means full.
async fn fill<W: AsyncWrite + Unpin>(w: &mut W) -> Vec<u8> {
    let mut accepted = Vec::new();
    loop {
        let at = accepted.len();
        let chunk: Vec<u8> = (at..at + 1000).map(|i| (i % 251) as u8).collect();
        match poll_once(|cx| Pin::new(&mut *w).poll_write(cx, &chunk)).await {
            Poll::Ready(Ok(n)) => accepted.extend_from_slice(&chunk[..n]),
            Poll::Ready(Err(err)) => panic!("a write failed while filling the transport: {err}"),
            Poll::Pending => return accepted,
        }
        assert!(accepted.len() < 64 << 20, "the transport never filled up");
    }
}

/// Reads frames from the raw end until a close frame from the stream (included), the end of
/// the input, or `idle` without any byte.
async fn read_frames(raw: &mut End, idle: Duration) -> Vec<Decoded> {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(idle, raw.read(&mut buf)).await {
            Err(_) | Ok(Ok(0) | Err(_)) => return out,
            Ok(Ok(n)) => {
                decoder.push(&buf[..n]);
                for f in decoder.frames() {
                    let close = f.opcode == frames::CLOSE;
                    out.push(f);
                    if close {
                        return out;
                    }
                }
            }
        }
    }
}

/// A peer that reads `per_tick` bytes every `tick` and sends nothing until our close frame,
/// which it answers with the same code. Returns what it got and its end of the pipe.
async fn slow_peer(mut raw: End, per_tick: usize, tick: Duration) -> (Vec<Decoded>, End) {
    let mut decoder = Decoder::default();
    let mut got_frames = Vec::new();
    let mut buf = vec![0u8; per_tick];
    loop {
        let mut got = 0;
        while got < per_tick {
            let n = raw.read(&mut buf[..per_tick - got]).await.unwrap_or(0);
            if n == 0 {
                return (got_frames, raw);
            }
            got += n;
            decoder.push(&buf[..n]);
            for f in decoder.frames() {
                let code = f.close_code();
                let close = f.opcode == frames::CLOSE;
                got_frames.push(f);
                if close {
                    send(&mut raw, close_frame(code.unwrap_or(1000))).await;
                    return (got_frames, raw);
                }
            }
        }
        tokio::time::sleep(tick).await;
    }
}

fn ws_err(err: &io::Error) -> Option<&WsErr> {
    err.get_ref().and_then(|e| e.downcast_ref::<WsErr>())
}

/// A runtime-agnostic bound (futures-timer), for the executors without tokio.
async fn bounded<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match futures::future::select(pin!(fut), Delay::new(limit)).await {
        Either::Left((out, _)) => out,
        Either::Right(_) => panic!("{what}: no result within {limit:?}"),
    }
}

// -------------------------------------------------------------------------------------------
// 1. The write half is woken when the connection ends
// -------------------------------------------------------------------------------------------

/// What the write half is doing when the connection ends.
#[derive(Debug, Clone, Copy)]
enum Op {
    Write,
    Flush,
    Close,
    Ping,
}

const OPS: [Op; 4] = [Op::Write, Op::Flush, Op::Close, Op::Ping];

/// Why the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// ping interval 100 ms, ping timeout 200 ms, the peer is silent.
    Keepalive,
    /// The peer sends its close frame and never reads our answer; close timeout 200 ms.
    CloseTimeout,
    /// The peer sends a text message; close timeout 200 ms (our 1003 cannot go out).
    Text,
    /// The transport's read side fails with `ConnectionReset` (its write side stays full).
    TransportError,
}

async fn run_op<T: Transport>(writer: &mut WriteHalf<T>, op: Op) -> io::Result<()> {
    match op {
        Op::Write => writer.write(&[1u8; 100]).await.map(drop),
        Op::Flush => writer.flush().await,
        Op::Close => writer.close().await,
        Op::Ping => writer.send_ping(Bytes::from_static(b"op")).await,
    }
}

/// The other end of the connection of a case-1 scenario.
enum Peer {
    /// A raw client over a pipe; tungstenite in between.
    Pipe { raw: End, breaker: Breaker },
    /// A message-level transport whose sink is stuck and whose wakers are separate.
    Stuck(StuckCtl),
}

impl Peer {
    async fn inject(&mut self, cause: Cause) {
        match (self, cause) {
            (_, Cause::Keepalive) => {}
            (Peer::Pipe { raw, .. }, Cause::CloseTimeout) => send(raw, close_frame(1000)).await,
            (Peer::Pipe { raw, .. }, Cause::Text) => {
                send(raw, Frame::new(frames::TEXT, b"text".to_vec())).await;
            }
            (Peer::Pipe { breaker, .. }, Cause::TransportError) => {
                breaker.break_reads(io::ErrorKind::ConnectionReset);
            }
            (Peer::Stuck(ctl), Cause::CloseTimeout) => {
                ctl.push(Ok(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))));
            }
            (Peer::Stuck(ctl), Cause::Text) => ctl.push(Ok(Message::text("text"))),
            (Peer::Stuck(ctl), Cause::TransportError) => ctl.push(Err(tungstenite::Error::Io(
                io::ErrorKind::ConnectionReset.into(),
            ))),
        }
    }
}

/// One scenario of case 1; `Err` describes the failure.
async fn writer_woken(cause: Cause, op: Op, stuck: bool) -> Result<(), String> {
    let config = match cause {
        Cause::Keepalive => Config::default()
            .ping_interval(Some(100 * MS))
            .ping_timeout(200 * MS)
            .close_timeout(None),
        Cause::CloseTimeout | Cause::Text => Config::default().close_timeout(Some(200 * MS)),
        Cause::TransportError => Config::default().close_timeout(None),
    };
    if stuck {
        let (transport, ctl) = StuckTransport::new(1);
        let stream = WsIo::from_transport(transport, config);
        let tag = format!("stuck transport {cause:?}/{op:?}");
        writer_woken_on(stream, Peer::Stuck(ctl), cause, op, tag).await
    } else {
        let (stream, raw, breaker) = server_over_pipe(4096, None, config).await;
        let tag = format!("pipe {cause:?}/{op:?}");
        writer_woken_on(stream, Peer::Pipe { raw, breaker }, cause, op, tag).await
    }
}

async fn writer_woken_on<T>(
    stream: WsIo<T>,
    mut peer: Peer,
    cause: Cause,
    op: Op,
    tag: String,
) -> Result<(), String>
where
    T: Transport + Send + 'static,
{
    let (mut reader, mut writer) = stream.into_split();
    let mut read_task = tokio::spawn(async move { read_all(&mut reader).await });
    let (blocked_tx, blocked_rx) = futures::channel::oneshot::channel::<()>();
    let mut write_task = tokio::spawn(async move {
        fill(&mut writer).await;
        let mut fut = pin!(run_op(&mut writer, op));
        if let Poll::Ready(r) = futures::poll!(fut.as_mut()) {
            return Err(format!("did not wait on the full transport: {r:?}"));
        }
        let _ = blocked_tx.send(());
        Ok(fut.await)
    });

    if tokio::time::timeout(Duration::from_secs(5), blocked_rx)
        .await
        .is_err()
    {
        write_task.abort();
        read_task.abort();
        return Err(format!("{tag}: the transport never filled up"));
    }
    tokio::time::sleep(50 * MS).await;
    peer.inject(cause).await;

    let mut failures = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), &mut write_task).await {
        Err(_) => {
            write_task.abort();
            failures.push(format!("{tag}: {op:?} still pending 3 s after the cause"));
        }
        Ok(Err(join)) => failures.push(format!("{tag}: write task: {join}")),
        Ok(Ok(Err(msg))) => failures.push(format!("{tag}: {op:?} {msg}")),
        Ok(Ok(Ok(Ok(())))) => failures.push(format!(
            "{tag}: {op:?} returned Ok, but the written bytes never left"
        )),
        Ok(Ok(Ok(Err(err)))) => {
            let kind_ok = match cause {
                Cause::Keepalive => err.kind() == io::ErrorKind::TimedOut,
                Cause::CloseTimeout => matches!(
                    err.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::NotConnected
                ),
                Cause::Text | Cause::TransportError => true,
            };
            if !kind_ok {
                failures.push(format!("{tag}: {op:?} ended with the wrong error: {err:?}"));
            }
        }
    }
    match tokio::time::timeout(Duration::from_secs(2), &mut read_task).await {
        Err(_) => {
            read_task.abort();
            failures.push(format!("{tag}: the reader did not end"));
        }
        Ok(Err(join)) => failures.push(format!("{tag}: read task: {join}")),
        Ok(Ok(end)) => {
            let ok = match (cause, &end) {
                // The peer's close arrived; whether our stuck answer makes it an error is not
                // this test's business: the reader ended.
                (Cause::CloseTimeout, _) => true,
                (Cause::Keepalive, Err(e)) => e.kind() == io::ErrorKind::TimedOut,
                // Our close was pending when the text came: either end is fair.
                (Cause::Text, Err(e)) if matches!(op, Op::Close) => matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::TimedOut
                ),
                (Cause::Text, Err(e)) => e.kind() == io::ErrorKind::InvalidData,
                (Cause::TransportError, Err(e)) => e.kind() == io::ErrorKind::ConnectionReset,
                (_, Ok(_)) => false,
            };
            if !ok {
                failures.push(format!("{tag}: the reader ended with {end:?}"));
            }
        }
    }
    // The peer stays connected until here: its end closing would wake everything.
    drop(peer);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

async fn writer_woken_by(cause: Cause) {
    let scenarios = [false, true]
        .into_iter()
        .flat_map(|stuck| OPS.map(move |op| writer_woken(cause, op, stuck)));
    let results = join_all(scenarios).await;
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// fails on 3757bd0: write, flush, close and send_ping all still pending 3 s after the reader ended with KeepaliveTimeout (both transports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_woken_by_keepalive_timeout() {
    within(15, writer_woken_by(Cause::Keepalive)).await;
}

// fails on 3757bd0: stuck transport: all 4 ops still pending 3 s after the peer's close; pipe: close() returns Ok with the bytes stranded (the rest race with async-tungstenite's wake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_woken_by_close_timeout() {
    within(15, writer_woken_by(Cause::CloseTimeout)).await;
}

// fails on 3757bd0: stuck transport: all 4 ops still pending 3 s after the reader ended with InvalidData; pipe: close() returns Ok with the bytes stranded, or hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_woken_by_bad_input() {
    within(15, writer_woken_by(Cause::Text)).await;
}

// fails on 3757bd0: stuck transport: all 4 ops still pending 3 s after the reader ended with ConnectionReset; pipe: close() returns Ok with the bytes stranded, or hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_woken_by_transport_error() {
    within(15, writer_woken_by(Cause::TransportError)).await;
}

// -------------------------------------------------------------------------------------------
// 2. close() is never Ok after written bytes were lost
// -------------------------------------------------------------------------------------------

/// `Ok` from flush or close promises the peer got every byte; otherwise `NotConnected`.
fn check_no_silent_loss(
    what: &str,
    result: Result<io::Result<()>, tokio::time::error::Elapsed>,
    peer_got: &[u8],
    written: &[u8],
) -> Option<String> {
    match result {
        Err(_) => Some(format!("{what}: still pending after 3 s")),
        Ok(Ok(())) if peer_got.len() != written.len() || peer_got != written => Some(format!(
            "{what} returned Ok, but the peer got {} of the {} bytes written",
            peer_got.len(),
            written.len()
        )),
        Ok(Ok(())) => None,
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotConnected => None,
        Ok(Err(err)) => Some(format!("{what}: expected NotConnected, got {err:?}")),
    }
}

fn saw_close_frame(events: &mut pharos::Events<WsEvent>) -> bool {
    while let Some(Some(ev)) = events.next().now_or_never() {
        if matches!(ev, WsEvent::CloseFrame(_)) {
            return true;
        }
    }
    false
}

// fails on 3757bd0: close() returns Ok although the peer got 1000 bytes fewer than were written (the buffered message was stranded by the peer's close).
#[tokio::test]
async fn close_never_hides_bytes_stranded_by_the_peers_close() {
    within(15, async {
        let config = Config::default().max_message_size(1024);
        let (mut stream, mut raw, _breaker) = server_over_pipe(4096, None, config).await;
        let mut events = stream.observe(ObserveConfig::default()).await.unwrap();
        let written = fill(&mut stream).await;

        // The peer closes while our output is stuck in the full transport.
        send(&mut raw, close_frame(1000)).await;
        let mut buf = [0u8; 64];
        let mut read_done = false;
        let mut seen = false;
        for _ in 0..200 {
            if !read_done {
                let polled = poll_once(|cx| Pin::new(&mut stream).poll_read(cx, &mut buf)).await;
                read_done = polled.is_ready();
            }
            if saw_close_frame(&mut events) {
                seen = true;
                break;
            }
            tokio::time::sleep(10 * MS).await;
        }
        assert!(seen, "the stream never read the peer's close frame");

        // Now the peer reads everything that can still come.
        let peer = tokio::spawn(async move {
            let frames = read_frames(&mut raw, Duration::from_millis(500)).await;
            (frames, raw)
        });
        let flush = tokio::time::timeout(Duration::from_secs(3), stream.flush()).await;
        let close = tokio::time::timeout(Duration::from_secs(3), stream.close()).await;
        let (frames, _raw) = peer.await.unwrap();
        let peer_got = frames::binary_payload(&frames);
        let failures: Vec<String> = [
            check_no_silent_loss("flush", flush, &peer_got, &written),
            check_no_silent_loss("close", close, &peer_got, &written),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    })
    .await;
}

// fails on 3757bd0: the write half's close() returns Ok although the peer got 1000 bytes fewer than were written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_never_hides_bytes_stranded_by_the_peers_close_split() {
    within(15, async {
        let config = Config::default().max_message_size(1024);
        let (stream, mut raw, _breaker) = server_over_pipe(4096, None, config).await;
        let (mut reader, mut writer) = stream.into_split();
        let mut events = writer.observe(ObserveConfig::default()).await.unwrap();
        let read_task = tokio::spawn(async move { read_all(&mut reader).await });
        let written = fill(&mut writer).await;

        send(&mut raw, close_frame(1000)).await;
        let seen = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = events.next().await {
                if matches!(ev, WsEvent::CloseFrame(_)) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(seen, Ok(true), "the read half never read the peer's close");

        let peer = tokio::spawn(async move {
            let frames = read_frames(&mut raw, Duration::from_millis(500)).await;
            (frames, raw)
        });
        let flush = tokio::time::timeout(Duration::from_secs(3), writer.flush()).await;
        let close = tokio::time::timeout(Duration::from_secs(3), writer.close()).await;
        let (frames, _raw) = peer.await.unwrap();
        let peer_got = frames::binary_payload(&frames);
        let failures: Vec<String> = [
            check_no_silent_loss("flush", flush, &peer_got, &written),
            check_no_silent_loss("close", close, &peer_got, &written),
        ]
        .into_iter()
        .flatten()
        .collect();
        read_task.abort();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 3. Executors without a cooperative budget, peers faster than the reader
// -------------------------------------------------------------------------------------------

/// Reads until the peer has the 3 bytes; `sent` tells what the peer got so far.
async fn read_until_sent<S>(
    stream: &mut S,
    sent: impl Fn() -> Vec<u8>,
    label: &str,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let n = bounded(Duration::from_secs(2), "write", stream.write(b"abc"))
        .await
        .map_err(|e| format!("{label}: write: {e}"))?;
    if n != 3 {
        return Err(format!("{label}: the write took {n} of 3 bytes"));
    }
    let mut buf = [0u8; 64];
    for _ in 0..100 {
        let n = bounded(Duration::from_secs(2), "read", stream.read(&mut buf))
            .await
            .map_err(|e| format!("{label}: read: {e}"))?;
        if n == 0 {
            return Err(format!("{label}: EOF from a peer that never closes"));
        }
        if sent() == b"abc" {
            return Ok(());
        }
    }
    Err(format!(
        "{label}: after 100 reads the peer still has not got the 3 written bytes (got {:?})",
        sent()
    ))
}

/// After `close()` (close timeout 100 ms) the reader must end with `TimedOut` within 2 s,
/// although the peer never stops sending.
async fn close_times_out_while_reading<S>(
    stream: &mut S,
    closes_sent: impl Fn() -> usize,
    label: &str,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    bounded(Duration::from_secs(2), "close", stream.close())
        .await
        .map_err(|e| format!("{label}: close: {e}"))?;
    if closes_sent() != 1 {
        return Err(format!("{label}: the close frame did not reach the peer"));
    }
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match bounded(Duration::from_secs(2), "read", stream.read(&mut buf)).await {
            Ok(0) => return Err(format!("{label}: EOF, but the peer never answered")),
            Ok(_) if start.elapsed() > Duration::from_secs(2) => {
                return Err(format!(
                    "{label}: the reader still delivers data 2 s after close() \
                     (close timeout 100 ms)"
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
            Err(e) => return Err(format!("{label}: expected TimedOut, got {e:?}")),
        }
    }
}

/// An unmasked binary frame (a server's), repeated forever by `EndlessIo`.
fn endless_tungstenite() -> (EndlessIo, support::ready::EndlessRecorder) {
    let io = EndlessIo::new(Frame::new(frames::BINARY, vec![7u8; 64]).encode());
    let rec = io.recorder();
    (io, rec)
}

/// Case 3 on whatever executor runs it; returns the failures.
async fn no_budget_scenarios() -> Vec<String> {
    let mut failures = Vec::new();
    let close_100ms = Config::default().close_timeout(Some(100 * MS));

    // A message-level transport that is never Pending.
    let t = ReadyTransport::new(vec![7u8; 64]);
    let rec = t.recorder();
    let mut stream = WsIo::from_transport(t, Config::default());
    let sent = || rec.lock().sent_bytes();
    failures.extend(
        read_until_sent(&mut stream, sent, "ready transport")
            .await
            .err(),
    );

    let t = ReadyTransport::new(vec![7u8; 64]);
    let rec = t.recorder();
    let mut stream = WsIo::from_transport(t, close_100ms.clone());
    let closes = || rec.lock().sent_closes();
    failures.extend(
        close_times_out_while_reading(&mut stream, closes, "ready transport")
            .await
            .err(),
    );

    // A real tungstenite over a byte transport that is never Pending.
    let (io, rec) = endless_tungstenite();
    let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
    let mut stream = WsStream::new(ws);
    let sent = || frames::binary_payload(&frames::decode_all(&rec.written()));
    failures.extend(
        read_until_sent(&mut stream, sent, "endless tungstenite")
            .await
            .err(),
    );

    let (io, rec) = endless_tungstenite();
    let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
    let mut stream = WsStream::with_config(ws, close_100ms);
    let closes = || {
        frames::decode_all(&rec.written())
            .iter()
            .filter(|f| f.opcode == frames::CLOSE)
            .count()
    };
    failures.extend(
        close_times_out_while_reading(&mut stream, closes, "endless tungstenite")
            .await
            .err(),
    );
    failures
}

// fails on 3757bd0: the 3 bytes never leave the sink/tungstenite after 100 reads (no flush without a Pending), and after close() the reader still delivers data 2 s later (the close deadline is only checked when the transport is Pending); both transports.
#[test]
fn no_budget_futures_executor() {
    let failures = futures::executor::block_on(no_budget_scenarios());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// fails on 3757bd0: as no_budget_futures_executor, on smol::block_on.
#[test]
fn no_budget_smol() {
    let failures = smol::block_on(no_budget_scenarios());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// fails on 3757bd0: as no_budget_futures_executor, on async_std::task::block_on.
#[test]
fn no_budget_async_std() {
    let failures = async_std::task::block_on(no_budget_scenarios());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// -------------------------------------------------------------------------------------------
// 4. Keepalive during an upload
// -------------------------------------------------------------------------------------------

// fails on 3757bd0: the connection is declared dead (KeepaliveTimeout) about 0.8 s into the upload, since our output's progress does not count as a sign of life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_does_not_kill_a_slow_upload() {
    within(40, async {
        let config = Config::default()
            .ping_interval(Some(300 * MS))
            .ping_timeout(500 * MS);
        let (stream, raw, _breaker) = server_over_pipe(16 * 1024, None, config).await;
        let (mut reader, mut writer) = stream.into_split();
        let mut read_task = tokio::spawn(async move { read_all(&mut reader).await });
        // About 320 KB/s; the peer sends nothing, not even pongs.
        let peer = tokio::spawn(slow_peer(raw, 32 * 1024, 100 * MS));
        let data = pseudo_random(3 << 20, 4);
        let expected = data.clone();
        let mut upload = tokio::spawn(async move {
            for chunk in data.chunks(64 * 1024) {
                writer.write_all(chunk).await?;
            }
            writer.flush().await?;
            io::Result::Ok(writer)
        });
        let mut writer = tokio::select! {
            end = &mut read_task => panic!("the connection ended during the upload: {end:?}"),
            up = &mut upload => up.unwrap().expect("the upload"),
        };
        writer.close().await.expect("close after the upload");
        let end = read_task.await.unwrap();
        assert_eq!(end.expect("a clean end"), b"");
        let (got, _raw) = peer.await.unwrap();
        assert!(
            frames::binary_payload(&got) == expected,
            "the upload arrived damaged"
        );
        let first_ping = got.iter().position(|f| f.opcode == frames::PING);
        let last_data = got.iter().rposition(|f| f.opcode == frames::BINARY);
        assert!(
            matches!((first_ping, last_data), (Some(p), Some(d)) if p < d),
            "no keepalive ping reached the peer during the upload \
             (first ping at frame {first_ping:?}, last data frame {last_data:?})"
        );
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 5. Close against a peer that never reads
// -------------------------------------------------------------------------------------------

async fn close_split_never_reading_peer() -> Vec<String> {
    let config = Config::default().close_timeout(Some(200 * MS));
    let (stream, _raw, _breaker) = server_over_pipe(4096, None, config).await;
    let (mut reader, mut writer) = stream.into_split();
    let mut read_task = tokio::spawn(async move { read_all(&mut reader).await });
    let mut close_task = tokio::spawn(async move {
        fill(&mut writer).await;
        let start = Instant::now();
        (writer.close().await, start.elapsed())
    });
    let mut failures = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), &mut close_task).await {
        Err(_) => {
            close_task.abort();
            failures.push("split: close() still pending after 3 s".to_owned());
        }
        Ok(join) => {
            let (result, took) = join.unwrap();
            match result {
                Err(e) if e.kind() == io::ErrorKind::TimedOut && took < Duration::from_secs(2) => {}
                other => failures.push(format!("split: close() gave {other:?} after {took:?}")),
            }
        }
    }
    match tokio::time::timeout(Duration::from_secs(2), &mut read_task).await {
        Err(_) => {
            read_task.abort();
            failures.push("split: the reader did not end".to_owned());
        }
        Ok(join) => match join.unwrap() {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            other => failures.push(format!("split: the reader ended with {other:?}")),
        },
    }
    failures
}

async fn close_whole_never_reading_peer() -> Vec<String> {
    let config = Config::default().close_timeout(Some(200 * MS));
    let (mut stream, _raw, _breaker) = server_over_pipe(4096, None, config).await;
    fill(&mut stream).await;
    let mut failures = Vec::new();
    let start = Instant::now();
    match tokio::time::timeout(Duration::from_secs(2), stream.close()).await {
        Err(_) => failures.push("whole: close() still pending after 2 s".to_owned()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {}
        Ok(other) => failures.push(format!(
            "whole: close() gave {other:?} after {:?}",
            start.elapsed()
        )),
    }
    match tokio::time::timeout(Duration::from_secs(2), read_all(&mut stream)).await {
        Err(_) => failures.push("whole: the reader did not end".to_owned()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {}
        Ok(other) => failures.push(format!("whole: the reader ended with {other:?}")),
    }
    failures
}

// fails on 3757bd0: close() stays pending (the close deadline only starts once the close frame is queued, which never happens), and the reader never ends; split and whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_against_a_peer_that_never_reads_times_out() {
    within(15, async {
        let (split, whole) = tokio::join!(
            close_split_never_reading_peer(),
            close_whole_never_reading_peer()
        );
        let failures: Vec<String> = split.into_iter().chain(whole).collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 6. Send timeout
// -------------------------------------------------------------------------------------------

/// A peer that stopped reading is shed by the send timeout.
async fn send_timeout_stalled() -> Vec<String> {
    let config = Config::default().send_timeout(Some(300 * MS));
    let (mut stream, _raw, _breaker) = server_over_pipe(4096, None, config).await;
    let mut events = stream.observe(ObserveConfig::default()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut read_task = tokio::spawn(async move { read_all(&mut reader).await });
    let mut write_task = tokio::spawn(async move {
        let start = Instant::now();
        let data = vec![9u8; 4 << 20];
        (writer.write_all(&data).await, start.elapsed())
    });
    let mut failures = Vec::new();
    let is_send_timeout = |e: &io::Error| {
        e.kind() == io::ErrorKind::TimedOut && matches!(ws_err(e), Some(WsErr::SendTimeout))
    };
    match tokio::time::timeout(Duration::from_secs(3), &mut write_task).await {
        Err(_) => {
            write_task.abort();
            failures.push(
                "stalled: the writer still blocked 3 s after the peer stopped reading \
                 (send timeout 300 ms)"
                    .to_owned(),
            );
        }
        Ok(join) => match join.unwrap() {
            (Err(e), took) if is_send_timeout(&e) && took < Duration::from_secs(2) => {}
            (other, took) => {
                failures.push(format!("stalled: the writer got {other:?} after {took:?}"))
            }
        },
    }
    match tokio::time::timeout(Duration::from_secs(2), &mut read_task).await {
        Err(_) => {
            read_task.abort();
            failures.push("stalled: the reader did not end".to_owned());
        }
        Ok(join) => match join.unwrap() {
            Err(e) if is_send_timeout(&e) => {}
            other => failures.push(format!("stalled: the reader ended with {other:?}")),
        },
    }
    let published = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(ev) = events.next().await {
            if matches!(&ev, WsEvent::Error(e) if matches!(**e, WsErr::SendTimeout)) {
                return true;
            }
        }
        false
    })
    .await;
    if published != Ok(true) {
        failures.push("stalled: no WsEvent::Error(SendTimeout) was published".to_owned());
    }
    failures
}

/// A slow peer that keeps reading is not shed. tungstenite writes out its buffer before it
/// reports progress, so its write buffer is kept small (messages of 8 KiB, flushed at once):
/// progress shows every few tens of milliseconds.
async fn send_timeout_slow_reader() -> Vec<String> {
    let config = Config::default()
        .send_timeout(Some(300 * MS))
        .max_message_size(8 * 1024);
    let ws = WebSocketConfig::default().write_buffer_size(0);
    let (stream, raw, _breaker) = server_over_pipe(16 * 1024, Some(ws), config).await;
    let (mut reader, mut writer) = stream.into_split();
    let read_task = tokio::spawn(async move { read_all(&mut reader).await });
    // About 160 KB/s: 256 KiB take 1.6 s, more than 5 send timeouts.
    let peer = tokio::spawn(slow_peer(raw, 16 * 1024, 100 * MS));
    let data = pseudo_random(256 * 1024, 6);
    let mut failures = Vec::new();
    let upload = async {
        writer.write_all(&data).await?;
        writer.flush().await?;
        writer.close().await
    };
    match tokio::time::timeout(Duration::from_secs(10), upload).await {
        Err(_) => failures.push("slow reader: the upload did not finish".to_owned()),
        Ok(Err(e)) => failures.push(format!("slow reader: the upload failed: {e:?}")),
        Ok(Ok(())) => {}
    }
    match tokio::time::timeout(Duration::from_secs(3), read_task).await {
        Ok(Ok(Ok(rest))) if rest.is_empty() => {}
        other => failures.push(format!("slow reader: the reader ended with {other:?}")),
    }
    if let Ok(Ok((got, _raw))) = tokio::time::timeout(Duration::from_secs(3), peer).await {
        if frames::binary_payload(&got) != data {
            failures.push("slow reader: the peer got damaged data".to_owned());
        }
    } else {
        failures.push("slow reader: the peer did not finish".to_owned());
    }
    failures
}

/// Without a send timeout a stalled peer is waited for.
async fn no_send_timeout_stalled() -> Vec<String> {
    let (stream, _raw, _breaker) = server_over_pipe(4096, None, Config::default()).await;
    let (mut reader, mut writer) = stream.into_split();
    let read_task = tokio::spawn(async move { read_all(&mut reader).await });
    let mut failures = Vec::new();
    let data = vec![9u8; 4 << 20];
    if let Ok(result) = tokio::time::timeout(Duration::from_secs(1), writer.write_all(&data)).await
    {
        failures.push(format!(
            "no send timeout: the blocked write ended with {result:?}"
        ));
    }
    if read_task.is_finished() {
        failures.push(format!(
            "no send timeout: the reader ended with {:?}",
            read_task.await
        ));
    } else {
        read_task.abort();
    }
    failures
}

// fails on 3757bd0: send_timeout is not implemented: the writer stays blocked 3 s after the peer stopped reading, the reader never ends, no event (the two control scenarios pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_sheds_only_a_stalled_peer() {
    within(20, async {
        let (stalled, slow, none) = tokio::join!(
            send_timeout_stalled(),
            send_timeout_slow_reader(),
            no_send_timeout_stalled()
        );
        let failures: Vec<String> = stalled.into_iter().chain(slow).chain(none).collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 7. Control frames never poison the stream
// -------------------------------------------------------------------------------------------

// fails on 3757bd0: send_ping with 125 bytes fails with Other (tungstenite's WriteBufferFull), and that error poisons the stream: later writes fail.
#[tokio::test]
async fn an_oversized_ping_fails_alone() {
    within(10, async {
        let (ours, theirs) = pipe(1 << 20);
        let tiny = WebSocketConfig::default()
            .write_buffer_size(0)
            .max_write_buffer_size(64);
        let (ws, peer) = futures::join!(
            WebSocketStream::from_raw_socket(ours, Role::Client, Some(tiny)),
            WebSocketStream::from_raw_socket(theirs, Role::Server, None),
        );
        // The peer collects data, pings and the close code until the connection ends.
        let peer_task = tokio::spawn(async move {
            let mut peer = peer;
            let (mut bytes, mut pings, mut close) = (Vec::new(), Vec::new(), None);
            while let Some(Ok(msg)) = peer.next().await {
                match msg {
                    tungstenite::Message::Binary(b) => bytes.extend_from_slice(&b),
                    tungstenite::Message::Ping(p) => pings.push(p),
                    tungstenite::Message::Close(f) => close = f.map(|f| u16::from(f.code)),
                    _ => {}
                }
            }
            (bytes, pings, close)
        });
        let mut stream = WsStream::new(ws);
        stream.write_all(b"before").await.unwrap();
        stream.flush().await.unwrap();

        let err = stream
            .send_ping(Bytes::from(vec![b'p'; 125]))
            .await
            .expect_err("a ping frame larger than max_write_buffer_size");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err:?}");

        stream.write_all(b"after").await.expect("writes go on");
        stream.flush().await.expect("flushes go on");
        stream
            .send_ping(Bytes::from_static(b"small"))
            .await
            .expect("a ping that fits");
        stream.close().await.expect("close");
        assert_eq!(read_all(&mut stream).await.expect("a clean end"), b"");
        let (bytes, pings, close) = peer_task.await.unwrap();
        assert_eq!(bytes, b"beforeafter");
        assert_eq!(pings, [Bytes::from_static(b"small")]);
        assert_eq!(close, Some(1000));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 8. A full observer holds back input, not output or timers
// -------------------------------------------------------------------------------------------

// fails on 3757bd0: with the observer full, the 3 written bytes never reach the peer (the reader returns before pushing output), and after close() the reader never ends (the close deadline is not watched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_observer_holds_input_not_output_or_timers() {
    within(15, async {
        let config = Config::default().close_timeout(Some(300 * MS));
        let (mut stream, mut raw, _breaker) = server_over_pipe(1 << 20, None, config).await;
        let observer = stream
            .observe(ObserveConfig::default().channel(Channel::Bounded(1)))
            .await
            .unwrap();
        let (mut reader, mut writer) = stream.into_split();
        for i in 0..5u8 {
            send(&mut raw, Frame::new(frames::PING, vec![i])).await;
        }
        let mut read_task = tokio::spawn(async move { read_all(&mut reader).await });
        // The peer reads everything and never answers our close.
        let seen = Arc::new(Mutex::new(Vec::<Decoded>::new()));
        let seen2 = Arc::clone(&seen);
        let peer_task = tokio::spawn(async move {
            let mut decoder = Decoder::default();
            let mut buf = vec![0u8; 4096];
            while let Ok(n @ 1..) = raw.read(&mut buf).await {
                decoder.push(&buf[..n]);
                seen2.lock().unwrap().extend(decoder.frames());
            }
        });
        // Let the reader fill the observer.
        tokio::time::sleep(200 * MS).await;
        let mut failures = Vec::new();

        writer.write_all(b"abc").await.unwrap();
        let arrived = tokio::time::timeout(Duration::from_secs(1), async {
            while frames::binary_payload(&seen.lock().unwrap()) != b"abc" {
                tokio::time::sleep(10 * MS).await;
            }
        })
        .await;
        if arrived.is_err() {
            failures.push(
                "3 bytes written without a flush did not reach the peer within 1 s \
                 while the observer was full"
                    .to_owned(),
            );
        }

        match tokio::time::timeout(Duration::from_secs(2), writer.close()).await {
            Ok(Ok(())) => {}
            other => failures.push(format!("close() gave {other:?}")),
        }
        match tokio::time::timeout(Duration::from_secs(2), &mut read_task).await {
            Err(_) => {
                read_task.abort();
                failures.push(
                    "the reader did not end 2 s after close() (close timeout 300 ms, \
                     the observer full)"
                        .to_owned(),
                );
            }
            Ok(join) => match join.unwrap() {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                other => failures.push(format!("the reader ended with {other:?}")),
            },
        }
        let closes: Vec<Option<u16>> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.opcode == frames::CLOSE)
            .map(Decoded::close_code)
            .collect();
        if closes != [Some(1000)] {
            failures.push(format!("the peer got these close frames: {closes:?}"));
        }
        drop(observer);
        peer_task.abort();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 9. Cancel safety
// -------------------------------------------------------------------------------------------

// fails on 3757bd0: the ping whose send_ping future was dropped at its first Pending never reaches the peer (the payload lived in the dropped future).
#[tokio::test]
async fn cancelled_ping_flush_and_close_lose_nothing() {
    within(15, async {
        let (mut stream, mut raw, _breaker) = server_over_pipe(4096, None, Config::default()).await;
        send(&mut raw, Frame::new(frames::BINARY, b"hello".to_vec())).await;
        let written = fill(&mut stream).await;

        // Each future is polled once on the congested transport, then dropped.
        {
            let mut ping = pin!(stream.send_ping(Bytes::from_static(b"cancelled ping")));
            if let Poll::Ready(r) = futures::poll!(ping.as_mut()) {
                r.expect("send_ping on a full transport may wait, not fail");
            }
        }
        {
            let mut flush = pin!(stream.flush());
            assert!(
                futures::poll!(flush.as_mut()).is_pending(),
                "flush on a full transport"
            );
        }
        {
            let mut close = pin!(stream.close_with(CloseCode::Library(4000), "cancelled"));
            assert!(
                futures::poll!(close.as_mut()).is_pending(),
                "close_with on a full transport"
            );
        }

        // Reading goes on.
        let mut hello = [0u8; 5];
        stream
            .read_exact(&mut hello)
            .await
            .expect("reading goes on");
        assert_eq!(&hello, b"hello");

        // The peer starts reading and answers our close.
        let peer = tokio::spawn(async move {
            let frames = read_frames(&mut raw, Duration::from_secs(2)).await;
            if let Some(code) = frames.last().and_then(Decoded::close_code) {
                send(&mut raw, close_frame(code)).await;
            }
            (frames, raw)
        });
        tokio::time::timeout(Duration::from_secs(3), stream.close())
            .await
            .expect("close() still pending after 3 s")
            .expect("a later close() completes");
        let end = tokio::time::timeout(Duration::from_secs(3), read_all(&mut stream))
            .await
            .expect("the reader did not end");
        assert_eq!(end.expect("a clean end"), b"");

        let (got, _raw) = peer.await.unwrap();
        let payload = frames::binary_payload(&got);
        assert!(
            payload == written,
            "the peer got {} of the {} bytes written",
            payload.len(),
            written.len()
        );
        let pings: Vec<&[u8]> = got
            .iter()
            .filter(|f| f.opcode == frames::PING)
            .map(|f| &f.payload[..])
            .collect();
        assert_eq!(pings, [&b"cancelled ping"[..]], "the cancelled ping");
        let closes: Vec<Option<u16>> = got
            .iter()
            .filter(|f| f.opcode == frames::CLOSE)
            .map(Decoded::close_code)
            .collect();
        assert!(
            closes == [Some(1000)] || closes == [Some(4000)],
            "one close frame, from close() or from the cancelled close_with: {closes:?}"
        );
    })
    .await;
}
