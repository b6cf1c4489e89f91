//! Property tests: operations interleaved on both halves of a split stream, against a peer that
//! writes, reads and closes (or drops the transport) at an arbitrary point.
//!
//! Two `WsStream`s (ours, split with `into_split`, and the peer's) talk over the in-memory pipe
//! (random capacity and chunking). Three tasks run random scripts: our write half (writes of
//! random sizes, plain or vectored, flushes, pings, `close` and `close_with`), our read half
//! (`read` and `fill_buf`) and the peer (writes, flushes, reads, pings, `close_with`, dropping
//! its transport). A step executor written here polls the current operation of one task per
//! step, in a random order, each task with its own waker that records wake-ups; an operation
//! that returned `Pending` is polled again only once it was woken (or, in some cases, on a
//! deliberately spurious poll). Then every task finishes: the peer closes (or drops) and reads
//! to the end, our reader reads to the end, our writer flushes or closes; a side whose reader
//! ended and whose operations completed is dropped, as a server drops its connection.
//!
//! Properties, checked for both directions (the peer is a `WsStream` too):
//! - (a) no silent loss: the bytes on the wire (recorded under each transport) are a prefix of
//!   what the writes accepted, and the bytes the other side read are a prefix of those; when a
//!   flush or close returns `Ok`, every byte accepted before it is on the wire; a reader that
//!   saw the other side's close frame (EOF, or the error of its close code) read every byte
//!   that preceded it;
//! - (b) nothing hangs: in the final phase no operation stays `Pending` without a wake-up
//!   recorded for its task (that would hang on any executor), everything completes within a
//!   bounded number of polls, and once both readers ended, within a few more;
//! - (c) no panic, whatever the interleaving;
//! - and the contract's outcomes: writes (and pings) after our close completed or after our
//!   reader ended fail; a reader returns EOF only after the other side's close frame arrived with
//!   1000 or 1001 (or as the answer to its own close), the other side's close 4000-4999 ends it
//!   with `ConnectionAborted`; a truncated connection ends with an error, never EOF; the end
//!   repeats on later reads.
//!
//! Each property runs 400 cases from a fixed seed; failures are kept in
//! `proptest-regressions/proptest_interleave.txt` and replayed first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests assert by panicking.
// Each task runs one operation at a time; its `RefCell` lends the half (or the peer's stream) to
// that operation's future for as long as it runs, so a borrow across an await cannot conflict.
#![allow(clippy::await_holding_refcell_ref)]

mod support;

use std::{
    cell::RefCell,
    collections::VecDeque,
    fmt::Write as _,
    future::Future,
    io::{self, ErrorKind, IoSlice},
    pin::Pin,
    rc::Rc,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use proptest::{
    prelude::*,
    test_runner::{Config as PtConfig, FileFailurePersistence, RngSeed},
};
use tungstenite::protocol::{Role, WebSocketConfig, frame::coding::CloseCode};
use ws_stream_tungstenite::{Config, ReadHalf, WriteHalf, WsStream};

use support::{
    frames::{self, Decoded},
    harness::drive,
    pipe::{End, pipe_chunked},
    rng::Rng,
    write_harness::Control,
};

fn config(seed: u64) -> PtConfig {
    PtConfig {
        cases: 400,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/proptest_interleave.txt",
        ))),
        ..PtConfig::default()
    }
}

/// The close reason our side sends with `close_with` (plain `close` sends none).
const OUR_REASON: &str = "us";
/// The close reason the peer sends. A close frame is answered with the same code and reason,
/// so the reason tells an answer from a close that side started itself.
const PEER_REASON: &str = "peer";

/// Polls of the final phase before it counts as a livelock.
const MAX_FINAL_POLLS: usize = 200_000;
/// Polls allowed once both readers ended.
const MAX_POLLS_AFTER_END: usize = 2_000;
/// Steps of the random phase.
const MAX_RANDOM_STEPS: usize = 20_000;

// ------------------------------------------------------------------------------------------
// The transport: one end of the pipe, with every byte it accepted recorded (the wire).
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Wire(Arc<Mutex<Vec<u8>>>);

impl Wire {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn frames(&self) -> Vec<Decoded> {
        frames::decode_all(&self.bytes())
    }
}

#[derive(Debug)]
struct Tap {
    inner: End,
    wire: Wire,
}

impl AsyncRead for Tap {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            let mut wire = this.wire.0.lock().unwrap_or_else(|p| p.into_inner());
            wire.extend_from_slice(&buf[..n]);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

type Ws = WebSocketStream<Tap>;

// ------------------------------------------------------------------------------------------
// Operations and their futures.
// ------------------------------------------------------------------------------------------

/// One operation of a task's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// One `write` (or `write_vectored`, two or three slices) of this many fresh bytes.
    Write {
        len: usize,
        vectored: bool,
    },
    Flush,
    /// `send_ping` with a payload of this many bytes.
    Ping(usize),
    /// `close` (None) or `close_with` this code.
    Close(Option<u16>),
    /// `read` into a buffer of this size.
    Read(usize),
    /// `fill_buf`, then `consume` of at most this many bytes.
    FillBuf(usize),
    /// The peer drops its stream, and with it the transport.
    Drop,
    /// The peer ends its direction of the transport (our reader sees EOF) and goes silent: it
    /// never reads again, and keeps its end open, so our writes back up without a wake-up from
    /// the transport. Ignored once the peer sent its close frame.
    Shutdown,
}

/// What an operation returned.
#[derive(Debug)]
enum Outcome {
    Write {
        offered: Vec<u8>,
        result: io::Result<usize>,
    },
    Flush(io::Result<()>),
    Ping(io::Result<()>),
    Close(io::Result<()>),
    /// `Ok(empty)` is EOF.
    Read(io::Result<Vec<u8>>),
}

type OpFuture = Pin<Box<dyn Future<Output = Outcome>>>;

fn write_op<W>(h: Rc<RefCell<W>>, offered: Vec<u8>, vectored: bool, cut: usize) -> OpFuture
where
    W: AsyncWrite + Unpin + 'static,
{
    Box::pin(async move {
        let mut w = h.borrow_mut();
        let result = if vectored {
            // Two or three slices (an empty one in the middle sometimes).
            let a = cut % (offered.len() + 1);
            let b = (a + cut / 3) % (offered.len() + 1);
            let (a, b) = (a.min(b), a.max(b));
            let slices = [
                IoSlice::new(&offered[..a]),
                IoSlice::new(&offered[a..b]),
                IoSlice::new(&offered[b..]),
            ];
            w.write_vectored(&slices).await
        } else {
            w.write(&offered).await
        };
        drop(w);
        Outcome::Write { offered, result }
    })
}

fn flush_op<W: AsyncWrite + Unpin + 'static>(h: Rc<RefCell<W>>) -> OpFuture {
    Box::pin(async move { Outcome::Flush(h.borrow_mut().flush().await) })
}

fn close_op<W>(h: Rc<RefCell<W>>, code: Option<u16>, reason: &'static str) -> OpFuture
where
    W: AsyncWrite + Control + Unpin + 'static,
{
    Box::pin(async move {
        let mut w = h.borrow_mut();
        let result = match code {
            None => w.close().await,
            Some(code) => w.close_code(CloseCode::from(code), reason).await,
        };
        Outcome::Close(result)
    })
}

fn ping_op<W: Control + 'static>(h: Rc<RefCell<W>>, len: usize) -> OpFuture {
    Box::pin(async move {
        let payload = Bytes::from(vec![0x70; len]);
        Outcome::Ping(h.borrow_mut().ping(payload).await)
    })
}

fn read_op<R: AsyncRead + Unpin + 'static>(h: Rc<RefCell<R>>, size: usize) -> OpFuture {
    Box::pin(async move {
        let mut buf = vec![0; size];
        let result = h.borrow_mut().read(&mut buf).await;
        Outcome::Read(result.map(|n| buf[..n].to_vec()))
    })
}

fn fill_buf_op<R>(h: Rc<RefCell<R>>, size: usize) -> OpFuture
where
    R: futures::io::AsyncBufRead + Unpin + 'static,
{
    Box::pin(async move {
        let mut r = h.borrow_mut();
        let result = match r.fill_buf().await {
            Ok(chunk) => {
                let n = chunk.len().min(size);
                let got = chunk[..n].to_vec();
                r.consume_unpin(n);
                Ok(got)
            }
            Err(err) => Err(err),
        };
        Outcome::Read(result)
    })
}

// ------------------------------------------------------------------------------------------
// The executor.
// ------------------------------------------------------------------------------------------

/// A task's waker: records that it was woken.
#[derive(Debug, Default)]
struct Flag {
    woken: AtomicBool,
    wakes: AtomicUsize,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    OurReader,
    OurWriter,
    Peer,
}

struct Task {
    who: Who,
    flag: Arc<Flag>,
    waker: Waker,
    script: VecDeque<Op>,
    /// The operation in progress and its future; it has returned `Pending` at least once.
    current: Option<(Op, OpFuture)>,
    /// In the final phase: read until the end.
    drain: bool,
}

impl Task {
    fn new(who: Who, script: &[Op]) -> Self {
        let flag = Arc::new(Flag::default());
        Self {
            who,
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            script: script.iter().copied().collect(),
            current: None,
            drain: false,
        }
    }

    fn woken(&self) -> bool {
        self.flag.woken.load(Ordering::SeqCst)
    }
}

/// What one side (ours or the peer's) did and saw.
#[derive(Debug)]
struct Side {
    name: &'static str,
    /// Close reasons this side sends when it starts a close.
    own_reasons: &'static [&'static str],
    wire: Wire,
    /// Bytes its writes accepted, in order.
    accepted: Vec<u8>,
    /// Bytes its reads returned, in order.
    received: Vec<u8>,
    /// How its reader ended (`Ok`: EOF).
    read_end: Option<Result<(), ErrorKind>>,
    /// A close operation was polled before the reader ended.
    close_polled: bool,
    /// A close operation completed (with any result).
    close_done: bool,
    /// The ping in progress started after our close completed or the reader ended. (One that
    /// started before may still succeed: it reached the transport before the end and its
    /// flush completed after.)
    ping_late: bool,
    /// Dropped, or shut down, before its reader ended.
    dropped_early: bool,
    /// Shut down (see `Op::Shutdown`).
    shut_down: bool,
    /// Dropped at all.
    dropped: bool,
    /// A flush or close failed when this many bytes had been accepted.
    flush_failed_at: Option<usize>,
    /// The data of its writes.
    rng: Rng,
}

impl Side {
    fn new(name: &'static str, own_reasons: &'static [&'static str], seed: u64) -> Self {
        Self {
            name,
            own_reasons,
            wire: Wire::default(),
            accepted: Vec::new(),
            received: Vec::new(),
            read_end: None,
            close_polled: false,
            close_done: false,
            ping_late: false,
            dropped_early: false,
            shut_down: false,
            dropped: false,
            flush_failed_at: None,
            rng: Rng::new(seed),
        }
    }

    /// The binary payload this side put on the wire.
    fn wire_payload(&self) -> Vec<u8> {
        frames::binary_payload(&self.wire.frames())
    }

    /// The first close frame this side put on the wire.
    fn first_close(&self) -> Option<Decoded> {
        self.wire
            .frames()
            .into_iter()
            .find(|f| f.opcode == frames::CLOSE)
    }

    /// This side started the close handshake (or may have: its close frame was queued but did
    /// not reach the wire).
    fn initiated(&self) -> bool {
        match self.first_close() {
            Some(frame) => {
                let reason = frame.payload.get(2..).unwrap_or_default();
                self.own_reasons.iter().any(|r| r.as_bytes() == reason)
            }
            None => self.close_polled,
        }
    }
}

/// The frames on a wire, in short: opcode and payload length (close: code and reason).
fn wire_summary(wire: &Wire) -> String {
    let mut decoder = frames::Decoder::default();
    decoder.push(&wire.bytes());
    let mut out = String::new();
    for f in decoder.frames() {
        match f.opcode {
            frames::CLOSE => {
                let _ = write!(out, "close {:?} {:?}, ", f.close_code(), close_reason(&f));
            }
            op => {
                let _ = write!(out, "{op:#x}:{}, ", f.payload.len());
            }
        }
    }
    let _ = write!(out, "{} bytes left over", decoder.leftover());
    out
}

fn close_reason(frame: &Decoded) -> String {
    String::from_utf8_lossy(frame.payload.get(2..).unwrap_or_default()).into_owned()
}

/// The whole scenario: the tasks, the objects they drive, what each side saw.
struct World {
    tasks: Vec<Task>,
    reader: Option<Rc<RefCell<ReadHalf<Ws>>>>,
    writer: Option<Rc<RefCell<WriteHalf<Ws>>>>,
    peer: Option<Rc<RefCell<WsStream<Tap>>>>,
    ours: Side,
    theirs: Side,
    rng: Rng,
    trace: Vec<String>,
    polls: usize,
    /// Record violations instead of panicking (for the survey).
    soft: bool,
    /// Print the trace as it happens.
    live: bool,
    violations: RefCell<Vec<String>>,
}

impl World {
    /// Adds a line to the trace (printed as it happens with `INTERLEAVE_TRACE=1`).
    fn note(&mut self, line: String) {
        if self.live {
            eprintln!("{line}");
        }
        self.trace.push(line);
    }

    /// Reports a broken promise: panics, or in soft mode records it and carries on.
    fn fail(&self, msg: impl std::fmt::Display) {
        if self.soft {
            self.violations.borrow_mut().push(msg.to_string());
            return;
        }
        let start = self.trace.len().saturating_sub(60);
        let mut out = String::new();
        for line in &self.trace[start..] {
            let _ = writeln!(out, "  {line}");
        }
        panic!(
            "{msg}\nours: accepted {}, received {}, end {:?}, wire payload {}\n\
             peer: accepted {}, received {}, end {:?}, wire payload {}\n\
             our wire: {}\npeer's wire: {}\nlast steps:\n{out}",
            self.ours.accepted.len(),
            self.ours.received.len(),
            self.ours.read_end,
            self.ours.wire_payload().len(),
            self.theirs.accepted.len(),
            self.theirs.received.len(),
            self.theirs.read_end,
            self.theirs.wire_payload().len(),
            wire_summary(&self.ours.wire),
            wire_summary(&self.theirs.wire),
        );
    }

    fn side(&mut self, who: Who) -> (&mut Side, &Side) {
        match who {
            Who::OurReader | Who::OurWriter => (&mut self.ours, &self.theirs),
            Who::Peer => (&mut self.theirs, &self.ours),
        }
    }

    /// The future of `op` on the task `who`, or `None` if the task's object is gone.
    fn start(&mut self, who: Who, op: Op) -> Option<OpFuture> {
        let cut = self.rng.range(0, 1000);
        let (side, _) = self.side(who);
        let data = match op {
            Op::Write { len, .. } => side.rng.bytes(len),
            _ => Vec::new(),
        };
        if matches!(op, Op::Close(_)) && side.read_end.is_none() {
            side.close_polled = true;
        }
        let fut = match (who, op) {
            (Who::OurReader, Op::Read(n)) => read_op(self.reader.clone()?, n),
            (Who::OurReader, Op::FillBuf(n)) => fill_buf_op(self.reader.clone()?, n),
            (Who::OurWriter, Op::Write { vectored, .. }) => {
                write_op(self.writer.clone()?, data, vectored, cut)
            }
            (Who::OurWriter, Op::Flush) => flush_op(self.writer.clone()?),
            (Who::OurWriter, Op::Ping(n)) => ping_op(self.writer.clone()?, n),
            (Who::OurWriter, Op::Close(code)) => close_op(self.writer.clone()?, code, OUR_REASON),
            (Who::Peer, Op::Write { vectored, .. }) => {
                write_op(self.peer.clone()?, data, vectored, cut)
            }
            (Who::Peer, Op::Flush) => flush_op(self.peer.clone()?),
            (Who::Peer, Op::Ping(n)) => ping_op(self.peer.clone()?, n),
            (Who::Peer, Op::Close(code)) => {
                close_op(self.peer.clone()?, code.or(Some(1000)), PEER_REASON)
            }
            (Who::Peer, Op::Read(n)) => read_op(self.peer.clone()?, n),
            (Who::Peer, Op::FillBuf(n)) => fill_buf_op(self.peer.clone()?, n),
            (who, op) => panic!("{op:?} is not an operation of {who:?}"),
        };
        Some(fut)
    }

    /// The task `i` has something to do: a woken operation, or a next one.
    fn runnable(&self, i: usize) -> bool {
        let task = &self.tasks[i];
        if task.current.is_some() {
            return task.woken();
        }
        let alive = match task.who {
            Who::OurReader => self.reader.is_some(),
            Who::OurWriter => self.writer.is_some(),
            Who::Peer => self.peer.is_some(),
        };
        let end = match task.who {
            Who::OurReader => self.ours.read_end,
            Who::OurWriter => None,
            Who::Peer => self.theirs.read_end,
        };
        alive && (!task.script.is_empty() || (task.drain && end.is_none()))
    }

    /// One step of task `i`: start its next operation if it has none, then poll it once.
    fn step(&mut self, i: usize) {
        self.polls += 1;
        let who = self.tasks[i].who;
        let (op, mut fut) = match self.tasks[i].current.take() {
            Some(current) => current,
            None => {
                let op = match self.tasks[i].script.pop_front() {
                    Some(op) => op,
                    // Draining: read on.
                    None => Op::Read(self.rng.range(1, 300)),
                };
                if op == Op::Drop {
                    self.drop_peer();
                    return;
                }
                if op == Op::Shutdown {
                    self.shut_down_peer();
                    return;
                }
                if matches!(op, Op::Ping(_)) {
                    let (side, _) = self.side(who);
                    side.ping_late = side.close_done || side.read_end.is_some();
                }
                let Some(fut) = self.start(who, op) else {
                    return;
                };
                self.note(format!("{who:?}: start {op:?}"));
                (op, fut)
            }
        };
        let task = &self.tasks[i];
        task.flag.woken.store(false, Ordering::SeqCst);
        let mut cx = Context::from_waker(&task.waker);
        match fut.as_mut().poll(&mut cx) {
            Poll::Pending => {
                if !self.soft || self.live {
                    let wires = (self.ours.wire.bytes().len(), self.theirs.wire.bytes().len());
                    self.note(format!("{who:?}: {op:?} pending (wires {wires:?})"));
                }
                self.tasks[i].current = Some((op, fut));
            }
            Poll::Ready(outcome) => {
                drop(fut);
                let wires = (self.ours.wire.bytes().len(), self.theirs.wire.bytes().len());
                self.note(format!(
                    "{who:?}: {op:?} -> {} (wires {wires:?})",
                    short(&outcome)
                ));
                self.record(who, op, outcome);
            }
        }
    }

    /// The peer drops its stream (and the transport), abandoning its operation.
    fn drop_peer(&mut self) {
        for task in &mut self.tasks {
            if task.who == Who::Peer {
                task.current = None;
                task.script.clear();
                task.drain = false;
            }
        }
        if self.peer.take().is_some() {
            self.note("Peer: dropped".into());
            self.theirs.dropped = true;
            self.theirs.dropped_early = self.theirs.read_end.is_none();
        }
    }

    /// The peer ends its direction of the transport and goes silent (see `Op::Shutdown`).
    fn shut_down_peer(&mut self) {
        if self.theirs.close_polled || self.theirs.close_done {
            return;
        }
        let Some(peer) = &self.peer else {
            return;
        };
        for task in &mut self.tasks {
            if task.who == Who::Peer {
                task.current = None;
                task.script.clear();
                task.drain = false;
            }
        }
        let mut peer = peer.borrow_mut();
        let tap = peer.get_mut().get_mut();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let _ = Pin::new(&mut tap.inner).poll_close(&mut cx);
        drop(peer);
        self.note("Peer: shut down".into());
        self.theirs.shut_down = true;
        self.theirs.dropped_early = self.theirs.read_end.is_none();
    }

    /// Checks one outcome against what is known so far and records it.
    fn record(&mut self, who: Who, op: Op, outcome: Outcome) {
        let (side, other) = self.side(who);
        let msg = match outcome {
            Outcome::Write { offered, result } => {
                let after_end = side.close_done || side.read_end.is_some();
                match result {
                    Ok(n) if after_end => Some(format!(
                        "{}: a write took {n} bytes after the connection ended",
                        side.name
                    )),
                    Ok(n) if n == 0 || n > offered.len() => Some(format!(
                        "{}: a write of {} bytes returned Ok({n})",
                        side.name,
                        offered.len()
                    )),
                    Ok(n) => {
                        side.accepted.extend_from_slice(&offered[..n]);
                        None
                    }
                    Err(_) => None,
                }
            }
            Outcome::Ping(result) => (side.ping_late && result.is_ok())
                .then(|| format!("{}: a ping succeeded after the end", side.name)),
            Outcome::Flush(result) | Outcome::Close(result) => {
                let closed = matches!(op, Op::Close(_));
                side.close_done |= closed;
                if result.is_ok() {
                    // (a) Ok means every byte accepted so far is on the wire, and after a
                    // close, a whole close frame (unless the transport is gone).
                    let on_wire = side.wire_payload();
                    if closed && side.first_close().is_none() && !other.dropped && !other.shut_down
                    {
                        Some(format!(
                            "{}: {op:?} returned Ok, but no whole close frame is on the wire",
                            side.name
                        ))
                    } else if on_wire.len() < side.accepted.len() {
                        // Silent, unless an earlier flush or close (after the missing bytes
                        // were accepted) failed: then this `Ok` contradicts that failure.
                        let reported = side.flush_failed_at.is_some_and(|at| at > on_wire.len());
                        Some(format!(
                            "{}: {op:?} returned Ok with {} of {} accepted bytes on the wire \
                             ({})",
                            side.name,
                            on_wire.len(),
                            side.accepted.len(),
                            if reported {
                                "an earlier flush or close failed: the error is not sticky"
                            } else {
                                "silent loss"
                            }
                        ))
                    } else {
                        None
                    }
                } else {
                    side.flush_failed_at = Some(side.accepted.len());
                    None
                }
            }
            Outcome::Read(result) => match (result, side.read_end) {
                (Ok(bytes), None) if bytes.is_empty() => {
                    side.read_end = Some(Ok(()));
                    None
                }
                (Ok(bytes), None) => {
                    side.received.extend_from_slice(&bytes);
                    // Nothing can be read before the other side wrote it.
                    let n = side.received.len();
                    (n > other.accepted.len() || side.received[..] != other.accepted[..n]).then(
                        || {
                            format!(
                                "{}: read bytes that are not a prefix of what the other side \
                                 wrote",
                                side.name
                            )
                        },
                    )
                }
                (Err(err), None) => {
                    side.read_end = Some(Err(err.kind()));
                    None
                }
                // The end repeats.
                (Ok(bytes), Some(Ok(()))) if bytes.is_empty() => None,
                (Err(err), Some(Err(kind))) if err.kind() == kind => None,
                (again, Some(end)) => Some(format!(
                    "{}: the reader ended with {end:?}, then returned {again:?}",
                    side.name
                )),
            },
        };
        if let Some(msg) = msg {
            self.fail(msg);
        }
    }

    /// Drops a side whose reader ended and whose operations are done, as a server drops the
    /// connection after the close handshake (a client waits for that to see the end).
    fn drop_finished_sides(&mut self) {
        let idle = |who: Who| {
            self.tasks
                .iter()
                .filter(|t| t.who == who)
                .all(|t| t.current.is_none() && t.script.is_empty())
        };
        let ours_done = self.reader.is_some()
            && self.ours.read_end.is_some()
            && idle(Who::OurReader)
            && idle(Who::OurWriter);
        let peer_done = self.peer.is_some() && self.theirs.read_end.is_some() && idle(Who::Peer);
        if ours_done {
            self.note("ours: done, dropped".into());
            self.reader = None;
            self.writer = None;
            self.ours.dropped = true;
        }
        if peer_done {
            self.note("peer: done, dropped".into());
            self.peer = None;
            self.theirs.dropped = true;
        }
    }

    fn pending_ops(&self) -> String {
        let mut out = String::new();
        for t in &self.tasks {
            if let Some((op, _)) = &t.current {
                let _ = write!(
                    out,
                    "{:?} {op:?} (woken: {}, wakes: {}); ",
                    t.who,
                    t.woken(),
                    t.flag.wakes.load(Ordering::SeqCst)
                );
            }
        }
        out
    }
}

fn short(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Write { offered, result } => format!("{result:?} of {}", offered.len()),
        Outcome::Flush(r) | Outcome::Ping(r) | Outcome::Close(r) => format!("{r:?}"),
        Outcome::Read(Ok(b)) if b.is_empty() => "EOF".into(),
        Outcome::Read(Ok(b)) => format!("{} bytes", b.len()),
        Outcome::Read(Err(e)) => format!("Err({e})"),
    }
}

// ------------------------------------------------------------------------------------------
// A case.
// ------------------------------------------------------------------------------------------

/// How the peer ends, after its script, unless its script did already.
#[derive(Debug, Clone, Copy)]
enum PeerEnd {
    Close(u16),
    Drop,
    Shutdown,
}

#[derive(Debug, Clone)]
struct Case {
    /// Our side is the client.
    client: bool,
    capacity: usize,
    chunk: usize,
    seed: u64,
    our_max_message: usize,
    peer_max_message: usize,
    /// tungstenite's write buffer (0: write through) and its limit, per side.
    our_buffers: (usize, Option<usize>),
    peer_buffers: (usize, Option<usize>),
    writer: Vec<Op>,
    reader: Vec<Op>,
    peer: Vec<Op>,
    /// Our writer's last operation: `Flush` or `Close`.
    our_final: Op,
    peer_end: PeerEnd,
    /// Poll pending operations now and then without a wake-up in the random phase.
    spurious: bool,
}

fn role(client: bool) -> Role {
    if client { Role::Client } else { Role::Server }
}

fn stream(
    io: End,
    wire: &Wire,
    client: bool,
    max_message: usize,
    (write_buffer, max_write_buffer): (usize, Option<usize>),
) -> WsStream<Tap> {
    let tap = Tap {
        inner: io,
        wire: wire.clone(),
    };
    let mut ws_config = WebSocketConfig::default().write_buffer_size(write_buffer);
    if let Some(max) = max_write_buffer {
        // tungstenite requires the limit to be above the write buffer.
        ws_config = ws_config.max_write_buffer_size(write_buffer + max);
    }
    let ws = drive(WebSocketStream::from_raw_socket(
        tap,
        role(client),
        Some(ws_config),
    ));
    let config = Config::default()
        .max_message_size(max_message)
        .close_timeout(None);
    WsStream::with_config(ws, config)
}

/// Runs one case; panics at the first broken promise, or with `soft`, returns them all.
fn run(case: &Case, soft: bool) -> Vec<String> {
    let (a, b) = pipe_chunked(case.capacity, case.chunk, case.seed);
    let ours = Side::new("ours", &["", OUR_REASON], case.seed ^ 0xa);
    let theirs = Side::new("peer", &[PEER_REASON], case.seed ^ 0xb);
    let our_stream = stream(
        a,
        &ours.wire,
        case.client,
        case.our_max_message,
        case.our_buffers,
    );
    let peer_stream = stream(
        b,
        &theirs.wire,
        !case.client,
        case.peer_max_message,
        case.peer_buffers,
    );
    let (reader, writer) = our_stream.into_split();

    let mut world = World {
        tasks: vec![
            Task::new(Who::OurReader, &case.reader),
            Task::new(Who::OurWriter, &case.writer),
            Task::new(Who::Peer, &case.peer),
        ],
        reader: Some(Rc::new(RefCell::new(reader))),
        writer: Some(Rc::new(RefCell::new(writer))),
        peer: Some(Rc::new(RefCell::new(peer_stream))),
        ours,
        theirs,
        rng: Rng::new(case.seed),
        trace: Vec::new(),
        polls: 0,
        soft,
        live: std::env::var_os("INTERLEAVE_TRACE").is_some(),
        violations: RefCell::default(),
    };

    // The random phase: one step of a runnable task at a time.
    for _ in 0..MAX_RANDOM_STEPS {
        let runnable: Vec<usize> = (0..world.tasks.len())
            .filter(|&i| world.runnable(i))
            .collect();
        if case.spurious && world.rng.chance(10) {
            // A spurious poll: allowed at any time, it must not lose anything.
            let busy: Vec<usize> = (0..world.tasks.len())
                .filter(|&i| world.tasks[i].current.is_some())
                .collect();
            if !busy.is_empty() {
                let i = busy[world.rng.range(0, busy.len() - 1)];
                world.note(format!("{:?}: spurious poll", world.tasks[i].who));
                world.step(i);
                continue;
            }
        }
        if runnable.is_empty() {
            break;
        }
        let i = runnable[world.rng.range(0, runnable.len() - 1)];
        world.step(i);
    }

    // The final phase: the peer stops waiting for input and ends (closes and reads to the end,
    // or drops the transport); our reader reads to the end; our writer flushes or closes.
    world.note("-- final phase --".into());
    let peer_closed = world.theirs.close_polled || world.theirs.close_done;
    let peer_silent = world.theirs.shut_down;
    let mut cancelled = false;
    for task in &mut world.tasks {
        match task.who {
            Who::Peer => {
                if matches!(task.current, Some((Op::Read(_) | Op::FillBuf(_), _))) {
                    // Cancelled: a read dropped at `Pending` loses nothing.
                    task.current = None;
                    cancelled = true;
                }
                task.script.clear();
                if peer_silent {
                    continue;
                }
                if !peer_closed {
                    task.script.push_back(match case.peer_end {
                        PeerEnd::Close(code) => Op::Close(Some(code)),
                        PeerEnd::Drop => Op::Drop,
                        PeerEnd::Shutdown => Op::Shutdown,
                    });
                }
                task.drain = true;
            }
            Who::OurReader => {
                task.script.clear();
                task.drain = true;
            }
            Who::OurWriter => {
                task.script.clear();
                task.script.push_back(case.our_final);
            }
        }
    }
    if cancelled {
        world.note("Peer: pending read cancelled".into());
    }
    let mut polls = 0;
    let mut after_end = 0;
    loop {
        world.drop_finished_sides();
        let runnable: Vec<usize> = (0..world.tasks.len())
            .filter(|&i| world.runnable(i))
            .collect();
        let busy = world.tasks.iter().any(|t| t.current.is_some());
        if runnable.is_empty() {
            if busy {
                // (b) Pending with no wake-up: this hangs on any executor.
                world.fail(format!(
                    "hang: pending without a wake-up: {}",
                    world.pending_ops()
                ));
            }
            break;
        }
        let i = runnable[world.rng.range(0, runnable.len() - 1)];
        world.step(i);
        polls += 1;
        if polls > MAX_FINAL_POLLS {
            world.fail(format!("livelock: {}", world.pending_ops()));
            return world.violations.into_inner();
        }
        let ended = world.ours.read_end.is_some()
            && (world.theirs.read_end.is_some() || world.theirs.dropped || world.theirs.shut_down);
        if ended {
            after_end += 1;
            if after_end > MAX_POLLS_AFTER_END {
                world.fail(format!(
                    "both readers ended, yet operations keep polling: {}",
                    world.pending_ops()
                ));
                return world.violations.into_inner();
            }
        }
    }

    check_final(&world, true);
    check_final(&world, false);
    world.violations.into_inner()
}

/// The checks once everything completed, for the direction other -> `ours_side`.
fn check_final(world: &World, ours_reads: bool) {
    let (me, other) = if ours_reads {
        (&world.ours, &world.theirs)
    } else {
        (&world.theirs, &world.ours)
    };
    // What `other` sent: a prefix of what its writes accepted, no data after its close frame.
    let frames = other.wire.frames();
    let payload = frames::binary_payload(&frames);
    if other.accepted.get(..payload.len()) != Some(&payload[..]) {
        world.fail(format!(
            "{}: the wire carries bytes that are not a prefix of what the writes accepted",
            other.name
        ));
    }
    if let Some(at) = frames.iter().position(|f| f.opcode == frames::CLOSE) {
        if frames[at..].iter().any(|f| f.opcode == frames::BINARY) {
            world.fail(format!("{}: data after its close frame", other.name));
        }
    }
    if me.received.len() > payload.len() || me.received[..] != payload[..me.received.len()] {
        world.fail(format!(
            "{}: read bytes that are not a prefix of the wire",
            me.name
        ));
    }

    let Some(end) = me.read_end else {
        if me.dropped_early {
            return;
        }
        world.fail(format!("{}: the reader never ended", me.name));
        return;
    };
    let other_close = other.first_close();
    let other_code = other_close.as_ref().map(Decoded::close_code);
    let clean = matches!(other_code, Some(None | Some(1000 | 1001)));
    let initiated = me.initiated();
    let abrupt = world.theirs.dropped_early;
    let describe = || {
        format!(
            "{}: ended with {end:?}; the other side's close frame: {:?} ({:?}); this side \
             started the close: {initiated}; peer dropped early: {abrupt}",
            me.name,
            other_code,
            other_close.as_ref().map(close_reason)
        )
    };
    match end {
        Ok(()) => {
            if other_close.is_none() {
                world.fail(format!("EOF without a close frame: {}", describe()));
            }
            if !clean && !initiated {
                world.fail(format!(
                    "EOF after a close that is not clean: {}",
                    describe()
                ));
            }
        }
        Err(ErrorKind::ConnectionAborted) => {
            if other_close.is_none() || clean {
                world.fail(format!(
                    "ConnectionAborted without a reason: {}",
                    describe()
                ));
            }
        }
        Err(kind) => {
            let transport = matches!(
                kind,
                ErrorKind::UnexpectedEof
                    | ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
                    | ErrorKind::NotConnected
            );
            if !abrupt || !transport {
                world.fail(format!("unexpected end {kind:?}: {}", describe()));
            }
        }
    }
    if !abrupt && !initiated && other_close.is_some() && !clean && end.is_ok() {
        world.fail(format!("the close code was lost: {}", describe()));
    }
    // A reader that saw the other side's close frame read everything before it.
    let saw_close = end.is_ok() || end == Err(ErrorKind::ConnectionAborted);
    if saw_close && me.received != payload {
        world.fail(format!(
            "{}: ended with {end:?} after reading {} of the {} bytes on the wire",
            me.name,
            me.received.len(),
            payload.len()
        ));
    }
}

// ------------------------------------------------------------------------------------------
// Strategies.
// ------------------------------------------------------------------------------------------

fn close_code() -> impl Strategy<Value = u16> {
    prop_oneof![Just(1000u16), 4000u16..5000]
}

fn writer_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..600, any::<bool>()).prop_map(|(len, vectored)| Op::Write { len, vectored }),
        3 => Just(Op::Flush),
        1 => (0usize..20).prop_map(Op::Ping),
        1 => prop_oneof![Just(None), close_code().prop_map(Some)].prop_map(Op::Close),
    ]
}

fn reader_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..300).prop_map(Op::Read),
        (1usize..300).prop_map(Op::FillBuf),
    ]
}

fn peer_op(drop: bool) -> BoxedStrategy<Op> {
    let ops = prop_oneof![
        6 => (1usize..600, any::<bool>()).prop_map(|(len, vectored)| Op::Write { len, vectored }),
        2 => Just(Op::Flush),
        6 => (1usize..300).prop_map(Op::Read),
        2 => (1usize..300).prop_map(Op::FillBuf),
        1 => (0usize..20).prop_map(Op::Ping),
        1 => close_code().prop_map(|c| Op::Close(Some(c))),
    ];
    if drop {
        prop_oneof![18 => ops, 1 => Just(Op::Drop), 1 => Just(Op::Shutdown)].boxed()
    } else {
        ops.boxed()
    }
}

/// tungstenite's write buffer: write through (so the transport's backpressure reaches the
/// stream), small, or the default 128 KiB; its limit: none, or a little above the buffer.
fn buffers() -> impl Strategy<Value = (usize, Option<usize>)> {
    (
        prop_oneof![2 => Just(0usize), 1 => 1usize..256, 1 => Just(128 * 1024)],
        // At least room for a ping of 125 bytes (131 with its header) besides the buffer.
        prop_oneof![Just(None), (160usize..2048).prop_map(Some)],
    )
}

fn our_final() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Flush),
        Just(Op::Close(None)),
        close_code().prop_map(|c| Op::Close(Some(c))),
    ]
}

prop_compose! {
    fn case(drop: bool)(
        client in any::<bool>(),
        capacity in prop_oneof![1usize..64, 64usize..4096],
        chunk in 0usize..64,
        seed in any::<u64>(),
        our_max_message in 1usize..700,
        peer_max_message in 1usize..700,
        our_buffers in buffers(),
        peer_buffers in buffers(),
        writer in prop::collection::vec(writer_op(), 0..24),
        reader in prop::collection::vec(reader_op(), 0..24),
        peer in prop::collection::vec(peer_op(drop), 0..24),
        our_final in our_final(),
        peer_end in if drop {
            prop_oneof![Just(PeerEnd::Drop), Just(PeerEnd::Shutdown)].boxed()
        } else {
            close_code().prop_map(PeerEnd::Close).boxed()
        },
        spurious in any::<bool>(),
    ) -> Case {
        Case {
            client, capacity, chunk, seed, our_max_message, peer_max_message,
            our_buffers, peer_buffers, writer, reader, peer, our_final, peer_end, spurious,
        }
    }
}

proptest! {
    #![proptest_config(config(0x1_0e7e_a5e0))]

    /// The peer writes, reads, pings and closes (1000 or 4000-4999) at an arbitrary point, then
    /// reads to the end: no silent loss, nothing left pending without a wake-up, the ends
    /// follow the close codes.
    #[test]
    fn interleaved_halves_against_a_closing_peer(case in case(false)) {
        run(&case, false);
    }
}

proptest! {
    #![proptest_config(config(0x2_0e7e_a5e0))]

    /// The same, but the peer drops the transport at an arbitrary point (possibly after its
    /// close): our side ends with an error, never a false EOF, and loses nothing silently.
    #[test]
    fn interleaved_halves_against_a_vanishing_peer(case in case(true)) {
        run(&case, false);
    }
}

// ------------------------------------------------------------------------------------------
// The smallest cases of each failure found on the engine of the time (shrunk with
// `SURVEY_SHRINK=<part of the message>`, see `survey`). They pass once the engine keeps the
// contract.
// ------------------------------------------------------------------------------------------

fn w(len: usize) -> Op {
    Op::Write {
        len,
        vectored: false,
    }
}

/// The minimal shape of a case: unchunked pipe, write-through tungstenite, no spurious polls.
fn small_case(capacity: usize, seed: u64, max_message: (usize, usize)) -> Case {
    Case {
        client: false,
        capacity,
        chunk: 0,
        seed,
        our_max_message: max_message.0,
        peer_max_message: max_message.1,
        our_buffers: (0, None),
        peer_buffers: (0, None),
        writer: Vec::new(),
        reader: Vec::new(),
        peer: Vec::new(),
        our_final: Op::Flush,
        peer_end: PeerEnd::Close(1000),
        spurious: false,
    }
}

/// The peer's close arrives while a written byte waits in our buffer: the byte is dropped and
/// `close` returns `Ok` (silent loss).
#[test]
fn found_close_ok_after_the_peers_close_stranded_bytes() {
    run(
        &Case {
            writer: vec![w(1); 9],
            reader: vec![Op::Read(107), Op::Read(1)],
            peer: vec![
                Op::Ping(4),
                Op::Close(Some(1000)),
                Op::Read(1),
                w(1),
                w(1),
                Op::Read(2),
            ],
            our_final: Op::Close(None),
            ..small_case(7, 399_857_071_267_002_860, (1, 108))
        },
        false,
    );
}

/// `close` returns `Ok` after the peer's close, with our close answer not (wholly) on the
/// wire.
#[test]
fn found_close_ok_without_a_close_frame_on_the_wire() {
    run(
        &Case {
            writer: vec![w(1), w(1), Op::Close(None)],
            peer: vec![Op::Close(Some(1000))],
            peer_end: PeerEnd::Drop,
            spurious: true,
            ..small_case(1, 0, (6, 1))
        },
        false,
    );
}

/// We (a server) close; the peer's close arrives while our close frame is still in
/// tungstenite's buffer; tungstenite ends the connection and the stream reports EOF and
/// `close` Ok without flushing it: the peer, once we drop the connection, sees a truncated
/// stream (`UnexpectedEof`).
#[test]
fn found_eof_before_our_close_frame_left() {
    run(
        &Case {
            writer: vec![
                w(322),
                Op::Flush,
                Op::Ping(0),
                Op::Ping(16),
                Op::Close(Some(1000)),
            ],
            reader: vec![Op::Read(2)],
            peer: vec![w(1), w(1), Op::Read(1), Op::Close(Some(1000))],
            peer_end: PeerEnd::Drop,
            ..small_case(25, 12_533_777_528_144_435_717, (322, 1))
        },
        false,
    );
}

/// The peer ends its direction and stops reading: our reader ends (`UnexpectedEof`), but a
/// write waiting for room in the transport is never woken (hang).
#[test]
fn found_write_not_woken_when_the_connection_ends() {
    run(
        &Case {
            writer: vec![w(1), w(1), w(1)],
            reader: vec![Op::Read(1)],
            peer: vec![w(77), w(1)],
            peer_end: PeerEnd::Shutdown,
            ..small_case(1, 784_645_408_096_993_531, (1, 77))
        },
        false,
    );
}

/// The same with a flush: it stays pending after the end, never woken, and would keep
/// waiting for a transport that does not drain instead of failing (hang).
#[test]
fn found_flush_not_woken_when_the_connection_ends() {
    run(
        &Case {
            writer: vec![w(1), Op::Flush],
            peer: vec![Op::Shutdown],
            peer_end: PeerEnd::Drop,
            ..small_case(1, 0, (1, 1))
        },
        false,
    );
}

/// The peer vanished: handing a written byte to tungstenite failed (the payload is gone), the
/// write had returned `Ok`, and the next `flush` returns `Ok` (silent loss).
#[test]
fn found_flush_ok_after_a_failed_send() {
    run(
        &Case {
            writer: vec![w(1), Op::Flush],
            reader: vec![Op::Read(1)],
            peer: vec![Op::Drop],
            peer_end: PeerEnd::Drop,
            ..small_case(1, 4_349_952_418_041_113_774, (1, 1))
        },
        false,
    );
}

/// A flush failed (bytes stranded by the peer's close), then `close` returns `Ok`: the
/// failure is not sticky.
#[test]
fn found_close_ok_after_a_failed_flush() {
    run(
        &Case {
            writer: vec![w(1), w(1), Op::Flush],
            reader: vec![Op::Read(1)],
            peer: vec![Op::Close(Some(1000)), Op::Read(1), Op::Read(1)],
            our_final: Op::Close(None),
            ..small_case(1, 0, (1, 1))
        },
        false,
    );
}

/// Not a property: runs many cases of both kinds and counts the failures by their first line
/// (digits masked), with the smallest case of each, so every kind of failure shows at once
/// (proptest stops at the first). `SURVEY_CASES` sets the cases per kind (default 2000):
/// `cargo test --all-features --test proptest_interleave survey -- --ignored --nocapture`.
#[test]
#[ignore = "a survey of failures, not a test"]
fn survey() {
    use proptest::{
        strategy::ValueTree,
        test_runner::{Config as RunnerConfig, TestRunner},
    };
    use std::{collections::BTreeMap, panic};

    let cases: usize = std::env::var("SURVEY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    if let Ok(pattern) = std::env::var("SURVEY_SHRINK") {
        shrink(&pattern, cases);
        return;
    }
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let mut failures: BTreeMap<String, (usize, usize, String)> = BTreeMap::new();
    let mut total = 0;
    for drop in [false, true] {
        let mut runner = TestRunner::new_with_rng(
            RunnerConfig::default(),
            proptest::test_runner::TestRng::deterministic_rng(
                proptest::test_runner::RngAlgorithm::ChaCha,
            ),
        );
        let strategy = case(drop);
        for _ in 0..cases {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            total += 1;
            let found = match panic::catch_unwind(panic::AssertUnwindSafe(|| run(&case, true))) {
                Ok(found) => found,
                Err(payload) => vec![
                    payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .map(|msg| format!("panic: {msg}"))
                        .unwrap_or_default(),
                ],
            };
            let size = case.writer.len() + case.reader.len() + case.peer.len();
            let mut seen = std::collections::BTreeSet::new();
            for msg in found {
                let key = mask_digits(msg.lines().next().unwrap_or_default());
                if !seen.insert(key.clone()) {
                    continue;
                }
                let entry = failures
                    .entry(key)
                    .or_insert((0, usize::MAX, String::new()));
                entry.0 += 1;
                if size < entry.1 {
                    entry.1 = size;
                    entry.2 = format!("{case:?}\n{msg}");
                }
            }
        }
    }
    panic::set_hook(hook);
    println!("{total} cases, {} kinds of failure", failures.len());
    for (key, (count, _, example)) in &failures {
        println!("\n=== {count} x {key}\nsmallest: {example}");
    }
}

/// The message with every number replaced by `#`, to group failures.
fn mask_digits(msg: &str) -> String {
    let mut out = String::new();
    for c in msg.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// For the survey: the smallest case whose violations include `pattern`, for each property.
fn shrink(pattern: &str, cases: usize) {
    use proptest::test_runner::{Config as RunnerConfig, TestError, TestRunner};
    for drop in [false, true] {
        let config = RunnerConfig {
            cases: u32::try_from(cases).unwrap_or(u32::MAX),
            failure_persistence: None,
            ..RunnerConfig::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&case(drop), |case| {
            let found = run(&case, true);
            match found.iter().find(|msg| msg.contains(pattern)) {
                Some(msg) => Err(TestCaseError::fail(
                    msg.lines().next().unwrap_or_default().to_owned(),
                )),
                None => Ok(()),
            }
        });
        match result {
            Err(TestError::Fail(why, case)) => println!("{why}\n{case:?}\n"),
            other => println!("drop: {drop}: {other:?}"),
        }
    }
}
