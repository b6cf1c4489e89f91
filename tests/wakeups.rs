//! Wake-ups of the engine's shortcuts, under adversarial interleavings:
//!
//! - the transport's input is polled with a waker of its own and, once it returned `Pending`,
//!   not polled again until that waker fired, the drive step made output progress, or the phase
//!   changed (`Wakers::input_quiet`);
//! - a served reader, and a writer whose flush, close or ping completed, leave no waker behind.
//!
//! Each test fails (hang, caught by a timeout, or a wrong result) if one of these loses a wake:
//!
//! 1. `answers_after_our_flush_*`: a message-level transport whose stream yields only what the
//!    peer answers to what our sink flushed (data echoed, ping answered, close answered and the
//!    input ended); one flavour wakes the stream's waker from inside our flush (re-entrantly,
//!    while the engine is busy), one never wakes at all (only our output progress can tell the
//!    engine to look again). One task under `join!` and two tasks on a 2-worker runtime.
//! 2. `input_woken_from_another_thread_*`: a transport whose input is delivered by another
//!    thread, which wakes the input waker while `poll_next` is still running, shortly after
//!    it returned, or spuriously and then for real; 300 messages, on tokio's multi-threaded
//!    runtime and on `futures::executor` (no cooperative budget).
//! 3. `split_reader_parked_while_the_writer_closes` (client, 30 rounds, various delays) and
//!    `server_reader_ends_after_the_peers_close_without_a_byte_more` (tungstenite's server role
//!    ends the input right after its close answer is out; the answer waits behind our
//!    unflushed data on a small pipe; the peer keeps its end open).
//! 4. `select_reader_and_writer_in_one_task_*`: split halves in one task under `select!`
//!    (futures recreated every round, so cancelled at every `Pending`), an echo peer, small
//!    pipes; tokio and `futures::executor`.
//! 5. `stress_split_echo_with_random_yields`: 12 seeds, two tasks on a 2-worker runtime, random
//!    write/read sizes, yields, flushes and pings, random pipe capacity and message size.
//! 6. `keepalive_pongs_reach_a_parked_reader`: the timer's ping goes out and the pong comes
//!    back while the only task is parked in `read`; it must not time out.
//! 7. `close_handle_from_another_task_*`: over tungstenite and over the never-waking transport.
//! 8. `a_full_bounded_observer_then_drained`: input is held back while the observer is full and
//!    flows again as soon as it is drained.
//! 9. `one_waker_slot_transport_*`: a transport that keeps one waker for its stream and sink
//!    (wakes whichever was registered last): the engine must still read what arrives.

mod support;

use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, mpsc},
    task::{Context, Poll, Waker},
    thread,
    time::Duration,
};

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, Sink, Stream, StreamExt};
use pharos::{Channel, Observable, ObserveConfig};
use support::{
    Ws,
    frames::{self, Decoder, Frame},
    pipe::pipe,
    pseudo_random, read_all,
    rng::Rng,
    within, ws_pair, ws_pair_with,
};
use tungstenite::{
    Error as TungErr, Message,
    protocol::{CloseFrame, Role, frame::coding::CloseCode},
};
use ws_stream_tungstenite::{Config, WsEvent, WsIo, WsStream};

const MS: Duration = Duration::from_millis(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `make()` on `futures::executor::block_on` in a thread of its own and fails the test
/// if it does not finish within `secs` (the stuck thread is left behind).
fn block_on_within<F, M>(secs: u64, name: &str, make: M)
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        futures::executor::block_on(make());
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: timed out after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: panicked"),
    }
}

// -------------------------------------------------------------------------------------------
// 1. A transport that answers only what our sink flushed
// -------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct AnswerState {
    incoming: VecDeque<Message>,
    ended: bool,
    stream_waker: Option<Waker>,
    unflushed: Vec<Message>,
    flushed: Vec<Message>,
}

/// Its peer answers at the moment our sink flushes: binary messages are echoed, pings get a
/// pong, a close gets a close and then the input ends. With `wake`, the stream's waker is
/// woken from inside `poll_flush`; without, never (the input changes only through our sink).
#[derive(Debug, Clone)]
struct Answering {
    state: Arc<Mutex<AnswerState>>,
    wake: bool,
}

impl Answering {
    fn new(wake: bool) -> Self {
        Self {
            state: Arc::default(),
            wake,
        }
    }
}

impl Stream for Answering {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = lock(&self.state);
        if let Some(msg) = s.incoming.pop_front() {
            return Poll::Ready(Some(Ok(msg)));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        s.stream_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Sink<Message> for Answering {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), TungErr> {
        lock(&self.state).unflushed.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        let waker = {
            let mut s = lock(&self.state);
            let batch = std::mem::take(&mut s.unflushed);
            let mut answered = false;
            for msg in batch {
                let answer = match &msg {
                    Message::Binary(b) => Some(Message::Binary(b.clone())),
                    Message::Ping(p) => Some(Message::Pong(p.clone())),
                    Message::Close(f) if !s.ended => Some(Message::Close(f.clone())),
                    _ => None,
                };
                if let Some(answer) = answer {
                    let closes = matches!(answer, Message::Close(_));
                    s.incoming.push_back(answer);
                    s.ended |= closes;
                    answered = true;
                }
                s.flushed.push(msg);
            }
            if answered && self.wake {
                s.stream_waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        self.poll_flush(cx)
    }
}

/// Writes a chunk and flushes it only once the reader has read the echo of the previous one
/// and parked again on the quiet input (one task, `join!`, the read polled first); then
/// closes while reading to the end.
async fn answering_one_task(wake: bool) {
    let transport = Answering::new(wake);
    let state = Arc::clone(&transport.state);
    let io = WsIo::from_transport(transport, Config::default().max_message_size(100));
    let (mut reader, mut writer) = io.into_split();
    let data = pseudo_random(5000, 7);
    let (echoed_tx, mut echoed) = futures::channel::mpsc::unbounded::<()>();
    let read = async {
        let mut back = Vec::new();
        for chunk in data.chunks(333) {
            let mut piece = vec![0u8; chunk.len()];
            reader.read_exact(&mut piece).await.expect("the echo");
            back.extend_from_slice(&piece);
            echoed_tx.unbounded_send(()).expect("signal");
        }
        back
    };
    let write = async {
        for chunk in data.chunks(333) {
            writer.write_all(chunk).await.expect("write");
            writer.flush().await.expect("flush");
            echoed.next().await.expect("the reader's signal");
        }
    };
    let (back, ()) = futures::join!(read, write);
    assert_eq!(back, data, "the echo differs");
    let (closed, rest) = futures::join!(writer.close(), read_all(&mut reader));
    closed.expect("close");
    assert_eq!(rest.expect("a clean end"), b"", "nothing after the echo");
    assert!(
        lock(&state)
            .flushed
            .iter()
            .any(|m| matches!(m, Message::Close(_))),
        "our close frame was flushed"
    );
}

#[test]
fn answers_after_our_flush_one_task_waking() {
    block_on_within(5, "waking transport, one task", || answering_one_task(true));
}

#[test]
fn answers_after_our_flush_one_task_never_waking() {
    block_on_within(5, "never-waking transport, one task", || {
        answering_one_task(false)
    });
}

/// The reader in its own task, parked; the writer flushes in another: the echo, a ping's pong
/// (an event only: no write wakes the reader for it) and the close answer reach the reader.
async fn answering_two_tasks(wake: bool) {
    let transport = Answering::new(wake);
    let mut io = WsIo::from_transport(transport, Config::default().max_message_size(64));
    let mut events = io.observe(ObserveConfig::default()).await.expect("observe");
    let (mut reader, mut writer) = io.into_split();
    let data = pseudo_random(20_000, 11);
    let expected = data.clone();
    let (echoed_tx, mut echoed) = tokio::sync::mpsc::unbounded_channel::<()>();
    // Every chunk waits for the echo of the previous one: the reader is parked on the quiet
    // input whenever the writer writes and flushes.
    let read_task = tokio::spawn(async move {
        let mut back = Vec::new();
        for chunk in expected.chunks(1000) {
            let mut piece = vec![0u8; chunk.len()];
            reader.read_exact(&mut piece).await.expect("the echo");
            back.extend_from_slice(&piece);
            echoed_tx.send(()).expect("signal");
        }
        let rest = read_all(&mut reader).await.expect("a clean end");
        (back, rest)
    });
    for (i, chunk) in data.chunks(1000).enumerate() {
        // Sometimes give the reader time to park for good.
        if i % 2 == 0 {
            tokio::time::sleep(MS).await;
        }
        writer.write_all(chunk).await.expect("write");
        writer.flush().await.expect("flush");
        echoed.recv().await.expect("the reader's signal");
    }
    if wake {
        // The pong is answered at our flush; only the (parked) reader reads it.
        writer
            .send_ping(Bytes::from_static(b"p1"))
            .await
            .expect("ping");
        let round_trip = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(ev) = events.next().await {
                if matches!(ev, WsEvent::RoundTrip { .. }) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            round_trip,
            Ok(true),
            "the pong did not reach the parked reader"
        );
    }
    writer.close().await.expect("close");
    let (back, rest) = read_task.await.expect("reader task");
    assert_eq!(back, data, "the echo differs");
    assert_eq!(rest, b"", "nothing after the echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_after_our_flush_two_tasks_waking() {
    within(5, answering_two_tasks(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_after_our_flush_two_tasks_never_waking() {
    within(5, answering_two_tasks(false)).await;
}

// -------------------------------------------------------------------------------------------
// 2. Input woken from another thread, during and after the poll
// -------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ThreadState {
    incoming: VecDeque<Message>,
    ended: bool,
    /// A delivery was asked for and has not arrived yet.
    requested: bool,
}

/// Every `Pending` asks a helper thread for the next message. The helper pushes it and wakes:
/// for message `i % 3 == 0` while `poll_next` still runs (it waits for the helper), for
/// `== 1` shortly after it returned, for `== 2` once spuriously during the poll (nothing
/// pushed yet) and again after pushing.
struct FromThread {
    state: Arc<Mutex<ThreadState>>,
    requests: mpsc::Sender<(usize, Waker)>,
    acks: mpsc::Receiver<()>,
    asked: usize,
}

impl FromThread {
    fn new(total: usize) -> Self {
        let state = Arc::new(Mutex::new(ThreadState::default()));
        let (requests, rx) = mpsc::channel::<(usize, Waker)>();
        let (ack_tx, acks) = mpsc::channel();
        let helper_state = Arc::clone(&state);
        thread::spawn(move || {
            let push = |i: usize| {
                let mut s = lock(&helper_state);
                if i < total {
                    s.incoming
                        .push_back(Message::Binary(Bytes::from(format!("m{i};"))));
                } else {
                    s.incoming.push_back(Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    })));
                    s.ended = true;
                }
                s.requested = false;
            };
            while let Ok((i, waker)) = rx.recv() {
                match i % 3 {
                    0 => {
                        push(i);
                        waker.wake_by_ref();
                        let _ = ack_tx.send(());
                    }
                    1 => {
                        thread::sleep(Duration::from_micros(200));
                        push(i);
                        waker.wake_by_ref();
                    }
                    _ => {
                        waker.wake_by_ref();
                        let _ = ack_tx.send(());
                        thread::sleep(Duration::from_micros(100));
                        push(i);
                        waker.wake();
                    }
                }
            }
        });
        Self {
            state,
            requests,
            acks,
            asked: 0,
        }
    }
}

impl Stream for FromThread {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        {
            let mut s = lock(&this.state);
            if let Some(msg) = s.incoming.pop_front() {
                return Poll::Ready(Some(Ok(msg)));
            }
            if s.ended {
                return Poll::Ready(None);
            }
            if s.requested {
                // Woken spuriously: the helper still has our (unchanging) waker.
                return Poll::Pending;
            }
            s.requested = true;
        }
        let i = this.asked;
        this.asked += 1;
        this.requests
            .send((i, cx.waker().clone()))
            .expect("helper thread");
        if i % 3 != 1 {
            // The helper wakes us before this poll returns.
            this.acks
                .recv_timeout(Duration::from_secs(5))
                .expect("helper ack");
        }
        Poll::Pending
    }
}

impl Sink<Message> for FromThread {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, _item: Message) -> Result<(), TungErr> {
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }
}

const THREAD_MESSAGES: usize = 300;

async fn read_from_thread() {
    let mut io = WsIo::from_transport(FromThread::new(THREAD_MESSAGES), Config::default());
    let got = read_all(&mut io).await.expect("a clean end");
    let want: String = (0..THREAD_MESSAGES).map(|i| format!("m{i};")).collect();
    assert_eq!(String::from_utf8(got).expect("utf-8"), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_woken_from_another_thread_tokio() {
    within(10, read_from_thread()).await;
}

#[test]
fn input_woken_from_another_thread_futures_executor() {
    block_on_within(10, "input woken from another thread", read_from_thread);
}

// -------------------------------------------------------------------------------------------
// 3. Split halves on a multi-threaded runtime: the reader parked while the writer closes
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reader_parked_while_the_writer_closes() {
    within(20, async {
        for round in 0..30u32 {
            let (client, server) = ws_pair().await;
            let peer = tokio::spawn(async move {
                let mut server = server;
                server
                    .send(Message::Binary(Bytes::from_static(b"hello")))
                    .await
                    .expect("peer send");
                let mut got = Vec::new();
                while let Some(Ok(msg)) = server.next().await {
                    got.push(msg);
                }
                got
            });
            let (mut reader, mut writer) = WsStream::new(client).into_split();
            let read_task = tokio::spawn(async move { read_all(&mut reader).await });
            // Not flushed: the close must push it out first.
            writer.write_all(b"bytes").await.expect("write");
            match round % 3 {
                0 => {}
                1 => tokio::task::yield_now().await,
                _ => tokio::time::sleep(2 * MS).await,
            }
            writer.close().await.expect("close");
            let read = tokio::time::timeout(Duration::from_secs(2), read_task)
                .await
                .unwrap_or_else(|_| panic!("round {round}: the parked reader never ended"))
                .expect("reader task");
            assert_eq!(read.expect("a clean end"), b"hello", "round {round}");
            let got = peer.await.expect("peer");
            let data: Vec<u8> = got
                .iter()
                .filter_map(|m| match m {
                    Message::Binary(b) => Some(b.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(data, b"bytes", "round {round}");
            assert!(
                matches!(got.last(), Some(Message::Close(_))),
                "round {round}: {got:?}"
            );
        }
    })
    .await;
}

/// tungstenite's server role ends its input as soon as its answer to the peer's close is
/// written: no byte arrives to wake anyone. Here that answer waits behind our unflushed data
/// on a small pipe, the writer is blocked in `flush`, the reader parked; the peer reads
/// everything but keeps its end open. The reader must reach EOF well before the close timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reader_ends_after_the_peers_close_without_a_byte_more() {
    within(20, async {
        for (round, capacity) in [64usize, 256, 1024, 4096, 1 << 16].into_iter().enumerate() {
            let (ours, mut raw) = pipe(capacity);
            let ws = WebSocketStream::from_raw_socket(ours, Role::Server, None).await;
            let config = Config::default().close_timeout(Some(Duration::from_secs(30)));
            let (mut reader, mut writer) = WsStream::with_config(ws, config).into_split();
            let read_task = tokio::spawn(async move { read_all(&mut reader).await });
            let data = pseudo_random(8000, round as u64);
            let write_task = tokio::spawn(async move {
                writer.write_all(&data).await?;
                writer.flush().await
            });
            tokio::time::sleep(10 * MS).await;
            let close = Frame::new(frames::CLOSE, frames::close_payload(1000, ""))
                .sent_by_client(true)
                .encode();
            raw.write_all(&close).await.expect("raw close");
            // Read until the close answer; keep the pipe open afterwards.
            let mut decoder = Decoder::default();
            let mut buf = vec![0u8; 4096];
            let answered = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    let n = raw.read(&mut buf).await.expect("raw read");
                    assert!(n > 0, "round {round}: our side dropped the pipe first");
                    decoder.push(&buf[..n]);
                    if decoder.frames().iter().any(|f| f.opcode == frames::CLOSE) {
                        return;
                    }
                }
            })
            .await;
            assert!(answered.is_ok(), "round {round}: no close answer");
            let read = tokio::time::timeout(Duration::from_secs(3), read_task)
                .await
                .unwrap_or_else(|_| panic!("round {round}: the reader never reached the end"))
                .expect("reader task");
            assert_eq!(read.expect("EOF after a clean close"), b"", "round {round}");
            let written = tokio::time::timeout(Duration::from_secs(3), write_task)
                .await
                .unwrap_or_else(|_| panic!("round {round}: the blocked flush never ended"))
                .expect("writer task");
            // The peer's close may strand some of it: either outcome, but an answer.
            if let Err(e) = written {
                assert_eq!(e.kind(), io::ErrorKind::NotConnected, "round {round}: {e}");
            }
            drop(raw);
        }
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 4. Reader and writer in one task under select!
// -------------------------------------------------------------------------------------------

/// Echoes binary messages until the stream ends, then drops the connection.
async fn echo_peer<S>(mut ws: WebSocketStream<S>)
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_binary() && ws.send(msg).await.is_err() {
            break;
        }
    }
}

enum Step {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Flushed(io::Result<()>),
}

/// One select loop: writes `data` in 977-byte steps and flushes, reading the echo all along;
/// every round recreates the futures (the losing one is dropped at its `Pending`).
async fn select_echo<T>(io: WsIo<T>, data: &[u8]) -> WsIo<T>
where
    T: ws_stream_tungstenite::Transport,
{
    let (mut reader, mut writer) = io.into_split();
    let (mut sent, mut flushed) = (0, false);
    let mut back = Vec::new();
    let mut buf = vec![0u8; 1500];
    while back.len() < data.len() {
        let step = {
            let read = reader.read(&mut buf).fuse();
            let write = async {
                if sent < data.len() {
                    let end = (sent + 977).min(data.len());
                    Step::Wrote(writer.write(&data[sent..end]).await)
                } else if !flushed {
                    Step::Flushed(writer.flush().await)
                } else {
                    futures::future::pending().await
                }
            }
            .fuse();
            futures::pin_mut!(read, write);
            futures::select! {
                r = read => Step::Read(r),
                w = write => w,
            }
        };
        match step {
            Step::Read(r) => {
                let n = r.expect("read");
                assert!(n > 0, "EOF in the middle of the echo");
                back.extend_from_slice(&buf[..n]);
            }
            Step::Wrote(w) => sent += w.expect("write"),
            Step::Flushed(f) => {
                f.expect("flush");
                flushed = true;
            }
        }
    }
    assert_eq!(back, data, "the echo differs");
    let (closed, rest) = futures::join!(writer.close(), read_all(&mut reader));
    closed.expect("close");
    assert_eq!(rest.expect("a clean end"), b"", "nothing after the echo");
    reader.reunite(writer).expect("the same stream")
}

#[tokio::test]
async fn select_reader_and_writer_in_one_task_tokio() {
    within(20, async {
        for capacity in [200usize, 1024, 1 << 16] {
            let (client, server) = ws_pair_with(capacity, None, None).await;
            let peer = tokio::spawn(echo_peer(server));
            let io = WsStream::with_config(client, Config::default().max_message_size(700));
            let data = pseudo_random(100_000, capacity as u64);
            drop(select_echo(io, &data).await);
            within(2, peer).await.expect("peer");
        }
    })
    .await;
}

#[test]
fn select_reader_and_writer_in_one_task_futures_executor() {
    block_on_within(20, "select! on futures::executor", || async {
        for capacity in [100usize, 3000, 1 << 16] {
            let (ours, theirs) = pipe(capacity);
            let peer = thread::spawn(move || {
                futures::executor::block_on(async {
                    let ws = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
                    echo_peer(ws).await;
                });
            });
            let ws = WebSocketStream::from_raw_socket(ours, Role::Client, None).await;
            let io = WsStream::with_config(ws, Config::default().max_message_size(500));
            let data = pseudo_random(60_000, capacity as u64);
            let io = select_echo(io, &data).await;
            // The peer ends after our close; dropping our end lets it see EOF in any case.
            drop(io);
            peer.join().expect("peer thread");
        }
    });
}

// -------------------------------------------------------------------------------------------
// 5. Stress: two tasks, random sizes, yields, flushes and pings
// -------------------------------------------------------------------------------------------

async fn random_yields(rng: &mut Rng) {
    for _ in 0..rng.range(0, 3) {
        tokio::task::yield_now().await;
    }
}

async fn stress_round(seed: u64) {
    let mut rng = Rng::new(seed);
    let capacity = [64usize, 700, 1 << 16][(seed % 3) as usize];
    let max_message = rng.range(1, 2000);
    let (client, server) = ws_pair_with(capacity, None, None).await;
    let peer = tokio::spawn(echo_peer(server));
    let io = WsStream::with_config(client, Config::default().max_message_size(max_message));
    let (mut reader, mut writer) = io.into_split();
    let data = pseudo_random(40_000, seed);
    let len = data.len();
    let (all_back_tx, all_back_rx) = tokio::sync::oneshot::channel();
    let mut read_rng = Rng::new(seed ^ 0xABCD);
    let read_task = tokio::spawn(async move {
        let mut back = Vec::with_capacity(len);
        let mut buf = vec![0u8; 4000];
        while back.len() < len {
            let room = read_rng.range(1, 4000);
            let n = reader.read(&mut buf[..room]).await.expect("read");
            assert!(n > 0, "EOF in the middle of the echo");
            back.extend_from_slice(&buf[..n]);
            random_yields(&mut read_rng).await;
        }
        let _ = all_back_tx.send(());
        let rest = read_all(&mut reader).await.expect("a clean end");
        (back, rest)
    });
    let mut sent = 0;
    while sent < len {
        let end = (sent + rng.range(1, 3000)).min(len);
        writer.write_all(&data[sent..end]).await.expect("write");
        sent = end;
        if rng.chance(20) {
            writer.flush().await.expect("flush");
        }
        if rng.chance(5) {
            writer
                .send_ping(Bytes::from_static(b"stress"))
                .await
                .expect("ping");
        }
        random_yields(&mut rng).await;
    }
    writer.flush().await.expect("final flush");
    all_back_rx.await.expect("the reader got the whole echo");
    writer.close().await.expect("close");
    let (back, rest) = read_task.await.expect("reader task");
    assert!(back == data, "seed {seed}: the echo differs");
    assert_eq!(rest, b"", "seed {seed}: nothing after the echo");
    peer.await.expect("peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_split_echo_with_random_yields() {
    for seed in 0..12u64 {
        tokio::time::timeout(Duration::from_secs(15), stress_round(seed))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: timed out"));
    }
}

// -------------------------------------------------------------------------------------------
// 6. Keepalive while the reader is parked
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn keepalive_pongs_reach_a_parked_reader() {
    within(5, async {
        let (client, server) = ws_pair().await;
        let config = Config::default()
            .ping_interval(Some(30 * MS))
            .ping_timeout(100 * MS);
        let mut ours = WsStream::with_config(client, config);
        let events = ours
            .observe(ObserveConfig::default())
            .await
            .expect("observe");
        let peer = tokio::spawn(async move {
            let (mut tx, mut rx) = server.split();
            let pump = async {
                let mut pings = 0;
                while let Some(Ok(msg)) = rx.next().await {
                    pings += usize::from(msg.is_ping());
                }
                pings
            };
            let talk = async {
                // Silent for six ping timeouts: only the pongs keep us alive. (A ping goes out
                // every `ping_timeout` at most: the timer is re-armed when it fires.)
                tokio::time::sleep(600 * MS).await;
                tx.send(Message::Binary(Bytes::from_static(b"late")))
                    .await
                    .expect("peer send");
                tx.close(None).await.expect("peer close");
            };
            let (pings, ()) = futures::join!(pump, talk);
            pings
        });
        let got = read_all(&mut ours).await.expect("no keepalive timeout");
        assert_eq!(got, b"late");
        drop(ours);
        let pings = peer.await.expect("peer");
        assert!(pings >= 3, "only {pings} keepalive pings in 600 ms");
        let events: Vec<WsEvent> = events.collect().await;
        let round_trips = events
            .iter()
            .filter(|e| matches!(e, WsEvent::RoundTrip { .. }))
            .count();
        assert!(round_trips >= 3, "only {round_trips} round trips");
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 7. CloseHandle from another task while the reader is parked
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_handle_from_another_task_tungstenite() {
    within(10, async {
        for round in 0..10u32 {
            let (client, server) = ws_pair().await;
            let peer = tokio::spawn(support::drain_messages(server));
            let mut ours = WsStream::new(client);
            let handle = ours.close_handle();
            let read_task = tokio::spawn(async move { read_all(&mut ours).await });
            tokio::spawn(async move {
                tokio::time::sleep(round * MS).await;
                handle.close(CloseCode::Away, "bye").expect("close request");
            });
            let read = tokio::time::timeout(Duration::from_secs(2), read_task)
                .await
                .unwrap_or_else(|_| panic!("round {round}: the reader never ended"))
                .expect("reader task");
            assert_eq!(read.expect("a clean end"), b"", "round {round}");
            let got = peer.await.expect("peer");
            match got.last() {
                Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
                other => panic!("round {round}: the peer got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_handle_from_another_task_never_waking_transport() {
    within(5, async {
        let transport = Answering::new(false);
        let state = Arc::clone(&transport.state);
        let mut ours = WsIo::from_transport(transport, Config::default());
        let handle = ours.close_handle();
        let read_task = tokio::spawn(async move { read_all(&mut ours).await });
        tokio::time::sleep(20 * MS).await;
        handle.close(CloseCode::Away, "bye").expect("close request");
        let read = read_task.await.expect("reader task");
        assert_eq!(read.expect("a clean end"), b"");
        assert!(matches!(
            lock(&state).flushed.last(),
            Some(Message::Close(Some(f))) if f.code == CloseCode::Away
        ));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 8. A full bounded observer, then drained
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_bounded_observer_then_drained() {
    within(5, async {
        let (client, server) = ws_pair().await;
        let mut ours = WsStream::new(client);
        let mut events = ours
            .observe(ObserveConfig::default().channel(Channel::Bounded(1)))
            .await
            .expect("observe");
        let peer = tokio::spawn(async move {
            let mut server: Ws = server;
            for i in 0..3u8 {
                server
                    .send(Message::Ping(Bytes::from(vec![i])))
                    .await
                    .expect("peer ping");
            }
            server
                .send(Message::Binary(Bytes::from_static(b"after")))
                .await
                .expect("peer send");
            server.close(None).await.expect("peer close");
            let mut pongs = 0;
            while let Some(Ok(msg)) = server.next().await {
                pongs += usize::from(msg.is_pong());
            }
            pongs
        });
        let mut read_task = tokio::spawn(async move { read_all(&mut ours).await });
        tokio::time::sleep(100 * MS).await;
        assert!(
            !read_task.is_finished(),
            "a full observer must hold back the input"
        );
        let mut pings = 0;
        let drained = async {
            while let Some(ev) = events.next().await {
                pings += usize::from(matches!(ev, WsEvent::Ping(_)));
            }
        };
        let (read, ()) = futures::join!(&mut read_task, drained);
        assert_eq!(read.expect("reader task").expect("a clean end"), b"after");
        assert_eq!(pings, 3);
        assert_eq!(peer.await.expect("peer"), 3, "every ping answered");
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// 9. One waker slot for stream and sink
// -------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct SlotState {
    incoming: VecDeque<Message>,
    /// The waker of the latest `Pending`, from the stream or the sink.
    waker: Option<Waker>,
    /// Messages the sink still takes.
    room: usize,
    sent: Vec<Message>,
}

/// A transport with one waker for both directions, as many hand-made ones have: whichever
/// poll returned `Pending` last is woken, when input arrives or room frees up.
#[derive(Debug, Clone, Default)]
struct OneSlot(Arc<Mutex<SlotState>>);

impl OneSlot {
    fn wake_after(&self, f: impl FnOnce(&mut SlotState)) {
        let waker = {
            let mut s = lock(&self.0);
            f(&mut s);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn push(&self, msg: Message) {
        self.wake_after(|s| s.incoming.push_back(msg));
    }

    fn grant(&self, n: usize) {
        self.wake_after(|s| s.room += n);
    }
}

impl Stream for OneSlot {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = lock(&self.0);
        match s.incoming.pop_front() {
            Some(Message::Close(None)) => Poll::Ready(None),
            Some(msg) => Poll::Ready(Some(Ok(msg))),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Sink<Message> for OneSlot {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        let mut s = lock(&self.0);
        if s.room > 0 {
            return Poll::Ready(Ok(()));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), TungErr> {
        let mut s = lock(&self.0);
        s.room -= 1;
        s.sent.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }
}

/// The reader is parked on the input; then the writer's drive finds the sink full, so the one
/// slot now holds the sink's waker; then a message arrives and wakes that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_waker_slot_transport_split() {
    within(5, async {
        let transport = OneSlot::default();
        transport.grant(1);
        let ctl = transport.clone();
        let io = WsIo::from_transport(transport, Config::default().max_message_size(4));
        let (mut reader, mut writer) = io.into_split();
        let read_task = tokio::spawn(async move {
            let mut got = [0u8; 5];
            reader.read_exact(&mut got).await.map(|()| got)
        });
        tokio::time::sleep(20 * MS).await;
        // The first message takes the room (the reader, woken by the write, flushes it and
        // parks on the input again); the second finds the sink full: the slot now holds the
        // waker of the sink, and the engine's input is quiet.
        writer.write_all(b"abcd").await.expect("write");
        tokio::time::sleep(20 * MS).await;
        writer.write_all(b"efgh").await.expect("write");
        tokio::time::sleep(20 * MS).await;
        ctl.push(Message::Binary(Bytes::from_static(b"hello")));
        let got = tokio::time::timeout(Duration::from_secs(2), read_task)
            .await
            .expect("the message that arrived never reached the reader")
            .expect("reader task")
            .expect("read");
        assert_eq!(&got, b"hello");
        ctl.grant(10);
        writer.flush().await.expect("flush");
        let sent = lock(&ctl.0).sent.clone();
        assert_eq!(
            sent,
            vec![
                Message::Binary(Bytes::from_static(b"abcd")),
                Message::Binary(Bytes::from_static(b"efgh"))
            ]
        );
    })
    .await;
}

/// The same in one task: `join!` of a read and of a write that fills the sink.
#[test]
fn one_waker_slot_transport_one_task() {
    block_on_within(5, "one waker slot, one task", || async {
        let transport = OneSlot::default();
        transport.grant(1);
        let ctl = transport.clone();
        let io = WsIo::from_transport(transport, Config::default().max_message_size(4));
        let (mut reader, mut writer) = io.into_split();
        let feeder = ctl.clone();
        let mut got = [0u8; 5];
        let write = async {
            writer.write_all(b"abcd").await.expect("write");
            // The reader (woken by the write) flushes it and parks on the input again.
            futures_timer::Delay::new(20 * MS).await;
            // The sink is full: the slot now holds its waker.
            writer.write_all(b"efgh").await.expect("write");
            // From another thread, once the reader parked again.
            thread::spawn(move || {
                thread::sleep(20 * MS);
                feeder.push(Message::Binary(Bytes::from_static(b"hello")));
            });
        };
        // The read first: it parks on the input before the writes.
        let (read, ()) = futures::join!(reader.read_exact(&mut got), write);
        read.expect("read");
        assert_eq!(&got, b"hello");
        ctl.grant(10);
        writer.flush().await.expect("flush");
    });
}

/// A sink whose flushes do not complete at the first `poll_flush`. Every other flush yields:
/// its first two polls wake the waker at once and return `Pending` (as tokio's cooperative
/// budget does), the third completes. The others complete a moment later on a thread of their
/// own that then wakes the waker of the latest poll: immediately, racing with whatever the
/// engine does right after the `Pending`, or after a short sleep. (The engine registers the
/// writer's waker only once a first attempt could not complete, and then tries again.)
#[derive(Debug, Clone, Default)]
struct SlowFlush(Arc<Mutex<FlushState>>);

#[derive(Debug, Default)]
struct FlushState {
    waker: Option<Waker>,
    /// A helper thread is on its way to complete the flush.
    in_flight: bool,
    /// The helper completed it: the next `poll_flush` is `Ready`.
    done: bool,
    /// Polls of the current flush that yielded.
    yielded: usize,
    flushes: usize,
    sent: usize,
}

impl Stream for SlowFlush {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Nothing ever arrives (only written to in these tests).
        Poll::Pending
    }
}

impl Sink<Message> for SlowFlush {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), TungErr> {
        if let Message::Binary(b) = item {
            lock(&self.0).sent += b.len();
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        let mut s = lock(&self.0);
        if s.done {
            s.done = false;
            s.flushes += 1;
            return Poll::Ready(Ok(()));
        }
        if s.flushes % 2 == 0 {
            if s.yielded == 2 {
                s.yielded = 0;
                s.flushes += 1;
                return Poll::Ready(Ok(()));
            }
            s.yielded += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        s.waker = Some(cx.waker().clone());
        if !s.in_flight {
            s.in_flight = true;
            let shared = Arc::clone(&self.0);
            let nap = s.flushes % 4 == 3;
            thread::spawn(move || {
                if nap {
                    thread::sleep(Duration::from_micros(200));
                }
                let waker = {
                    let mut s = lock(&shared);
                    s.in_flight = false;
                    s.done = true;
                    s.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            });
        }
        Poll::Pending
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }
}

/// 300 writes, each flushed, while no flush of the sink completes at its first poll: no flush
/// may hang, whichever comes first, the wake or the engine's registration of the waker.
/// (Checked to hang when the engine registers after a `Pending` first attempt without trying
/// again.)
async fn flushes_yielding_or_completed_elsewhere() {
    let transport = SlowFlush::default();
    let ctl = transport.clone();
    let mut io = WsIo::from_transport(transport, Config::default());
    for i in 0..300u32 {
        io.write_all(&i.to_be_bytes()).await.expect("write");
        io.flush().await.expect("flush");
    }
    let s = lock(&ctl.0);
    assert_eq!(s.sent, 1200);
    assert!(s.flushes >= 300, "{} flushes completed", s.flushes);
}

#[test]
fn flush_that_yields_or_completes_elsewhere_futures_executor() {
    block_on_within(
        20,
        "flushes that yield or complete elsewhere",
        flushes_yielding_or_completed_elsewhere,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_that_yields_or_completes_elsewhere_tokio() {
    within(20, flushes_yielding_or_completed_elsewhere()).await;
}
