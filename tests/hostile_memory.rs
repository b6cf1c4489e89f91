//! Floods and a peer that never reads: no stack growth, no early `Ok(0)`, and memory bounded,
//! measured with a counting global allocator (live heap bytes above the test's start, sampled
//! while the flood runs).
//!
//! The tests in this binary run one at a time (a lock), so the live heap figure belongs to the
//! running test. `cargo test --test hostile_memory -- --nocapture` prints the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by panicking.

mod support;

use std::{
    alloc::System,
    future::Future,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicIsize, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use async_tungstenite::WebSocketStream;
use futures::{
    executor::block_on,
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tungstenite::protocol::{Role, WebSocketConfig};
use ws_stream_tungstenite::WsStream;

use support::{
    frames::{self, Decoder, Frame},
    pipe::{End, pipe},
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One test at a time: the allocator's figures are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Live heap bytes at the start of the running test, and the most seen above it.
static BASE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn live() -> isize {
    // stats_alloc already books a realloc's growth in `bytes_allocated` and its shrinking in
    // `bytes_deallocated`; `bytes_reallocated` is the same amount again, so it stays out.
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Starts a test: takes the lock and resets the peak.
fn start() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    BASE.store(live(), Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    guard
}

/// Records the live heap now.
fn sample() {
    PEAK.fetch_max(live() - BASE.load(Ordering::SeqCst), Ordering::SeqCst);
}

fn peak_kib() -> isize {
    PEAK.load(Ordering::SeqCst) / 1024
}

const SMALL_STACK: usize = 256 * 1024;

/// Runs `f` on a thread with a 256 KiB stack.
fn spawn_small<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    rx
}

/// Runs `fut` on its own thread.
fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(block_on(fut));
    });
    rx
}

fn wait<T>(rx: &mpsc::Receiver<T>, secs: u64) -> T {
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the thread failed or timed out")
}

fn server(io: End) -> WsStream<End> {
    WsStream::new(block_on(WebSocketStream::from_raw_socket(
        io,
        Role::Server,
        None,
    )))
}

fn client_frame(opcode: u8, payload: Vec<u8>) -> Vec<u8> {
    Frame::new(opcode, payload).sent_by_client(true).encode()
}

const FLOOD: usize = 100_000;

/// 100,000 empty pings, then 64 KiB of data, then a close, from a peer that reads our pongs
/// as it goes. The reader runs on a 256 KiB stack: control frames are handled in a loop, so
/// the stack does not grow. The data arrives whole, then EOF; the live heap stays bounded.
#[test]
fn ping_flood_then_data() {
    let _serial = start();
    let (ours, mut theirs) = pipe(64 * 1024);
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 247) as u8).collect();
    let expected = data.clone();

    let peer = spawn(async move {
        let mut decoder = Decoder::default();
        let mut pongs = 0usize;
        let mut close = None;
        let mut buf = vec![0u8; 16 * 1024];
        let ping = client_frame(frames::PING, Vec::new());
        let batch: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 1000)
            .collect();
        let mut count = |decoder: &mut Decoder, close: &mut Option<u16>| {
            for f in decoder.frames() {
                match f.opcode {
                    frames::PONG => pongs += 1,
                    frames::CLOSE => *close = f.close_code(),
                    other => panic!("unexpected opcode {other}"),
                }
            }
        };
        for _ in 0..FLOOD / 1000 {
            theirs.write_all(&batch).await.unwrap();
            // Take what is there without waiting, so our pongs never fill the pipe.
            while theirs.incoming_stats().buffered > 0 {
                let n = theirs.read(&mut buf).await.unwrap();
                decoder.push(&buf[..n]);
            }
            count(&mut decoder, &mut close);
            sample();
        }
        theirs
            .write_all(&client_frame(frames::BINARY, data))
            .await
            .unwrap();
        let bye = client_frame(frames::CLOSE, frames::close_payload(1000, ""));
        theirs.write_all(&bye).await.unwrap();
        while close.is_none() {
            let n = theirs.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            decoder.push(&buf[..n]);
            count(&mut decoder, &mut close);
        }
        (pongs, close)
    });

    let reader = spawn_small(move || {
        let mut stream = server(ours);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = block_on(stream.read(&mut buf)).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let got = wait(&reader, 120);
    let (pongs, close) = wait(&peer, 120);
    assert_eq!(got, expected);
    assert_eq!(close, Some(1000));
    assert!((1..=FLOOD).contains(&pongs), "{pongs} pongs");
    // Buffers: two 64 KiB pipes, tungstenite's 128 KiB read buffer, the 64 KiB message and
    // its copy in the test. A per-ping leak of even 8 bytes would add 800 KiB.
    println!(
        "ping flood: {pongs} pongs for {FLOOD} pings; live heap peak +{} KiB",
        peak_kib()
    );
    assert!(peak_kib() < 1024, "live heap grew by {} KiB", peak_kib());
}

/// 100,000 pings from a peer that never reads, so the pongs cannot go out. The data after the
/// flood still arrives (read on a 256 KiB stack). Returns the live heap peak in KiB.
fn ping_flood_unread(ws_config: Option<WebSocketConfig>) -> isize {
    let (ours, mut theirs) = pipe(64 * 1024);
    let peer = spawn(async move {
        let ping = client_frame(frames::PING, b"are you there?".to_vec());
        let batch: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 1000)
            .collect();
        for _ in 0..FLOOD / 1000 {
            theirs.write_all(&batch).await.unwrap();
            sample();
        }
        theirs
            .write_all(&client_frame(frames::BINARY, b"still here".to_vec()))
            .await
            .unwrap();
        theirs
    });
    let reader = spawn_small(move || {
        let ws = block_on(WebSocketStream::from_raw_socket(
            ours,
            Role::Server,
            ws_config,
        ));
        let mut stream = WsStream::new(ws);
        let mut got = [0u8; 10];
        block_on(stream.read_exact(&mut got)).unwrap();
        sample();
        got
    });
    assert_eq!(&wait(&reader, 120), b"still here");
    drop(wait(&peer, 120));
    peak_kib()
}

/// With `WebSocketConfig::max_write_buffer_size` set, tungstenite keeps only the latest
/// unsent pong, so the live heap stays bounded however long the flood.
#[test]
fn ping_flood_from_a_peer_that_never_reads() {
    let _serial = start();
    let limited = WebSocketConfig::default().max_write_buffer_size(256 * 1024);
    let peak = ping_flood_unread(Some(limited));
    println!(
        "ping flood, peer never reads, max_write_buffer_size 256 KiB: live heap peak +{peak} KiB"
    );
    assert!(peak < 1024, "live heap grew by {peak} KiB");
}

/// The same with tungstenite's default `max_write_buffer_size` (unlimited): every pong is
/// appended to tungstenite's write buffer while the transport is full, so memory grows with
/// the flood (about one pong per ping). This documents the default; it is not a bound.
#[test]
fn ping_flood_from_a_peer_that_never_reads_default_config() {
    let _serial = start();
    let peak = ping_flood_unread(None);
    println!("ping flood, peer never reads, default WebSocketConfig: live heap peak +{peak} KiB");
    // 100,000 pongs of 16 bytes each: 1.6 MB at most, plus the fixed buffers.
    assert!(peak < 4 * 1024, "live heap grew by {peak} KiB");
}

/// 100,000 empty binary messages, then data, then a close. `read` never returns `Ok(0)`
/// before the end, and `fill_buf` never hands out an empty buffer before the end; on a 256 KiB
/// stack, with the live heap bounded.
#[test]
fn empty_message_flood() {
    let _serial = start();
    for buf_read in [false, true] {
        let (ours, mut theirs) = pipe(64 * 1024);
        let peer = spawn(async move {
            let empty = client_frame(frames::BINARY, Vec::new());
            let batch: Vec<u8> = empty
                .iter()
                .copied()
                .cycle()
                .take(empty.len() * 1000)
                .collect();
            for _ in 0..FLOOD / 1000 {
                theirs.write_all(&batch).await.unwrap();
                sample();
            }
            theirs
                .write_all(&client_frame(frames::BINARY, b"tail".to_vec()))
                .await
                .unwrap();
            let bye = client_frame(frames::CLOSE, Vec::new());
            theirs.write_all(&bye).await.unwrap();
            // Wait for our close answer.
            let mut rest = Vec::new();
            theirs.read_to_end(&mut rest).await.unwrap();
            frames::decode_all(&rest).last().map(|f| f.opcode)
        });
        let reader = spawn_small(move || {
            let mut stream = server(ours);
            let mut got = Vec::new();
            let mut calls = 0usize;
            loop {
                calls += 1;
                if buf_read {
                    let chunk = block_on(stream.fill_buf()).unwrap();
                    if chunk.is_empty() {
                        break;
                    }
                    got.extend_from_slice(chunk);
                    let n = chunk.len();
                    stream.consume_unpin(n);
                } else {
                    let mut buf = [0u8; 16];
                    let n = block_on(stream.read(&mut buf)).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            (got, calls)
        });
        let (got, calls) = wait(&reader, 120);
        assert_eq!(got, b"tail", "buf_read {buf_read}");
        // One call for the tail, one for EOF: no empty read in between.
        assert_eq!(calls, 2, "buf_read {buf_read}");
        assert_eq!(wait(&peer, 120), Some(frames::CLOSE));
    }
    println!("empty-message flood: live heap peak +{} KiB", peak_kib());
    assert!(peak_kib() < 1024, "live heap grew by {} KiB", peak_kib());
}

/// A peer that never reads while we write: writes return `Pending` once the transport is full,
/// so what a writer can push in is bounded (the pipe, tungstenite's write buffer, one of our
/// messages), and so is the live heap. Once the peer reads, every accepted byte arrives.
#[test]
fn peer_that_never_reads() {
    let _serial = start();
    const CAPACITY: usize = 64 * 1024;
    let (ours, mut theirs) = pipe(CAPACITY);
    let watch = ours.watch();
    let mut stream = server(ours);
    let chunk: Vec<u8> = (0..16 * 1024u32).map(|i| (i % 239) as u8).collect();
    let mut accepted = 0usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Try to write 8 MiB; stop when a write stays pending.
        while accepted < 8 << 20 {
            let at = accepted % chunk.len();
            let write = stream.write(&chunk[at..]);
            match tokio::time::timeout(Duration::from_millis(200), write).await {
                Ok(n) => accepted += n.unwrap(),
                Err(_) => break,
            }
            sample();
        }
        let flush = tokio::time::timeout(Duration::from_millis(200), stream.flush()).await;
        assert!(
            flush.is_err(),
            "flush cannot finish while the peer does not read"
        );
    });
    let in_pipe = watch.stats().buffered;
    println!(
        "never-reading peer: accepted {} KiB, {} KiB in the pipe, {stream:?}, live heap peak +{} KiB",
        accepted / 1024,
        in_pipe / 1024,
        peak_kib()
    );
    // The pipe (64 KiB) + tungstenite's write buffer (128 KiB + one frame) + our message
    // buffer (64 KiB) + a frame in flight.
    assert!(
        accepted < 400 * 1024,
        "accepted {accepted} bytes from a writer with nowhere to go"
    );
    assert!(peak_kib() < 1024, "live heap grew by {} KiB", peak_kib());

    // The peer starts reading: every accepted byte arrives, in order.
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let received = rt2.block_on(async {
        let drain = async {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 32 * 1024];
            let mut frames_seen = Vec::new();
            while got.len() < accepted {
                let n = theirs.read(&mut buf).await.unwrap();
                decoder.push(&buf[..n]);
                let new = decoder.frames();
                got.extend(frames::binary_payload(&new));
                frames_seen.extend(new);
            }
            got
        };
        let flush = async { stream.flush().await.unwrap() };
        let run = futures::future::join(flush, drain);
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap()
            .1
    });
    assert_eq!(received.len(), accepted);
    let expected: Vec<u8> = chunk.iter().copied().cycle().take(accepted).collect();
    assert_eq!(received, expected);
}
