//! The write-side fuzz harness, shared by `fuzz/fuzz_targets/write_close.rs` and
//! `tests/fuzz_corpus.rs`.
//!
//! The input scripts the WRITE side and the closing of a [`WsStream`], split or not, over
//! [`FaultIo`] (random `Pending`s that wake at once, short writes, stalled writes, a write
//! fault at an offset), with a peer whose frames are released into the transport at scripted
//! points (a [`Gate`] in front of `FaultIo`'s input), so its data, pings and close frame arrive
//! at arbitrary times relative to our writes, flushes, pings and closes.
//!
//! Input: a 6-byte header (see [`Setup::parse`]), then operations of one to three bytes each
//! (see [`Op::parse`]). After the script, the peer's remaining input is released (its close,
//! if the header says so, then EOF or a reset), our final flush or close runs (before or after
//! that), and the reader reads to the end.
//!
//! Checked, panicking on a broken promise:
//! - no silent loss: the binary payload on the wire is a prefix of what the writes accepted;
//!   when a flush or close returns `Ok`, every byte accepted before it is on the wire (and
//!   after a close, a whole close frame, unless the transport failed or the connection had
//!   already ended with an error);
//! - nothing hangs: write-side operations run on [`drive`](super::harness::drive), which
//!   panics on `Pending` without a wake-up and on livelock; a read may wait only while the
//!   peer's next bytes are held back by the gate (its future is then kept, split, and polled
//!   again once woken, or dropped, unsplit, as a `select!` would), and must end once the input
//!   is released;
//! - the contract's outcomes: writes and pings fail after our close or the end of the reader;
//!   frames are masked by role and messages no larger than the configured size, no data after
//!   our close frame; the reader gets a prefix of the peer's data, EOF only after the peer's
//!   close frame with 1000/1001/no code (or as the answer to our close), `ConnectionAborted`
//!   for the peer's close 4000-4999, never EOF for a truncated input, and after the peer's
//!   close frame every byte before it; the end repeats.

// One operation runs at a time; the `RefCell` lends the stream (or a half) to it.
#![allow(clippy::await_holding_refcell_ref)]

use std::{
    cell::RefCell,
    future::{Future, poll_fn},
    io::{self, ErrorKind, IoSlice},
    pin::Pin,
    rc::Rc,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use tungstenite::protocol::{Role, WebSocketConfig, frame::coding::CloseCode};
use ws_stream_tungstenite::{Config, Transport, WriteHalf, WsIo, WsStream};

use super::{
    fault::{FaultIo, InputEnd, Recorder},
    frames::{self, Decoded, Frame},
    harness::{Flag, drive},
};

/// Whether the checks of this class are turned off: `WRITE_HARNESS_SKIP` lists classes,
/// comma-separated, to look past a known bug while fuzzing (`loss`, `sticky`, `close-frame`,
/// `after-end`, `api`, `error-kind`, `prefix`, `hang`, `frames`, `end`).
fn skipped(class: &str) -> bool {
    static SKIP: OnceLock<Vec<String>> = OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("WRITE_HARNESS_SKIP")
            .map(|v| v.split(',').map(|c| c.trim().to_owned()).collect())
            .unwrap_or_default()
    })
    .iter()
    .any(|c| c == class)
}

/// Panics with the class of the check in brackets, unless that class is skipped.
macro_rules! ensure {
    ($class:literal, $cond:expr, $($msg:tt)+) => {
        if !$cond && !skipped($class) {
            panic!("[{}] {}", $class, format!($($msg)+));
        }
    };
}

/// Polls of one read before it counts as a livelock.
const MAX_POLLS: usize = 1_000_000;
/// The close reason of our `close_with` (plain `close` sends none).
const OUR_REASON: &str = "us";
/// The close reason of the peer. An answer to a close frame repeats its code and reason, so
/// the reason tells whose close frame it is.
const PEER_REASON: &str = "peer";

// ------------------------------------------------------------------------------------------
// The gate: holds the peer's input back until the script releases it.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct GateState {
    /// Bytes of input the reader may have.
    allowed: usize,
    consumed: usize,
    waker: Option<Waker>,
    /// The last read was held at the gate.
    held: bool,
}

/// Releases the peer's input.
#[derive(Debug, Clone, Default)]
pub struct GateHandle(Arc<Mutex<GateState>>);

impl GateHandle {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets the reader have the first `n` bytes of input (and wakes it).
    pub fn open_to(&self, n: usize) {
        let mut st = self.lock();
        if n > st.allowed {
            st.allowed = n;
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        }
    }

    /// The reader waits at the gate: it read everything released so far.
    pub fn holding(&self) -> bool {
        let st = self.lock();
        st.held && st.consumed >= st.allowed
    }
}

/// `FaultIo` with its input behind a gate.
#[derive(Debug)]
pub struct Gate {
    inner: FaultIo,
    state: GateHandle,
}

impl AsyncRead for Gate {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let room = {
            let mut st = this.state.lock();
            if st.consumed >= st.allowed {
                st.held = true;
                st.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            st.held = false;
            (st.allowed - st.consumed).min(buf.len())
        };
        let poll = Pin::new(&mut this.inner).poll_read(cx, &mut buf[..room]);
        if let Poll::Ready(Ok(n)) = poll {
            this.state.lock().consumed += n;
        }
        poll
    }
}

impl AsyncWrite for Gate {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

// ------------------------------------------------------------------------------------------
// `close_with` and `send_ping` on the stream and on the write half.
// ------------------------------------------------------------------------------------------

/// The async control methods that `WsIo` and `WriteHalf` both have.
pub trait Control {
    fn close_code(
        &mut self,
        code: CloseCode,
        reason: &'static str,
    ) -> impl Future<Output = io::Result<()>>;
    fn ping(&mut self, payload: Bytes) -> impl Future<Output = io::Result<()>>;
}

impl<T: Transport> Control for WriteHalf<T> {
    fn close_code(
        &mut self,
        code: CloseCode,
        reason: &'static str,
    ) -> impl Future<Output = io::Result<()>> {
        self.close_with(code, reason)
    }

    fn ping(&mut self, payload: Bytes) -> impl Future<Output = io::Result<()>> {
        self.send_ping(payload)
    }
}

impl<T: Transport> Control for WsIo<T> {
    fn close_code(
        &mut self,
        code: CloseCode,
        reason: &'static str,
    ) -> impl Future<Output = io::Result<()>> {
        self.close_with(code, reason)
    }

    fn ping(&mut self, payload: Bytes) -> impl Future<Output = io::Result<()>> {
        self.send_ping(payload)
    }
}

// ------------------------------------------------------------------------------------------
// The input.
// ------------------------------------------------------------------------------------------

/// The settings from the header.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Our stream is the client.
    pub client: bool,
    /// Split into a read half and a write half.
    pub split: bool,
    /// Our last operation: close (else flush).
    pub final_close: bool,
    /// That close is `close_with(4000 + ..)` (else `close`).
    pub final_code: Option<u16>,
    /// Our last operation runs before the peer's remaining input is released.
    pub final_first: bool,
    /// If the script did not, the peer closes at the end (with `peer_code`), else the input
    /// just ends.
    pub peer_closes: bool,
    pub peer_code: u16,
    /// How the input ends after the peer's frames.
    pub end: InputEnd,
    pub seed: u64,
    pub pending_percent: u64,
    pub max_chunk: usize,
    /// Writes fail after this many bytes, with this kind.
    pub write_fault: Option<(usize, ErrorKind)>,
    pub stall_writes: usize,
    pub max_message: usize,
    /// tungstenite's write buffer: 0 (write through) or the default 128 KiB.
    pub write_through: bool,
    /// tungstenite's `max_write_buffer_size`, above the write buffer by this much.
    pub max_write_buffer: Option<usize>,
}

impl Setup {
    pub const LEN: usize = 6;

    pub fn parse(h: [u8; Self::LEN]) -> Self {
        let flags = h[0];
        Self {
            client: flags & 1 != 0,
            split: flags & 2 != 0,
            final_close: flags & 4 != 0,
            final_code: (flags & 8 != 0).then_some(4000 + u16::from(h[5])),
            final_first: flags & 16 != 0,
            peer_closes: flags & 32 != 0,
            peer_code: if flags & 64 != 0 {
                4000 + u16::from(h[1])
            } else {
                1000
            },
            end: if flags & 128 != 0 {
                InputEnd::Error(ErrorKind::ConnectionReset)
            } else {
                InputEnd::Eof
            },
            seed: u64::from(h[1]) | u64::from(h[2]) << 8,
            pending_percent: u64::from(h[1] % 5) * 10,
            max_chunk: 1 + usize::from(h[2] % 64),
            write_fault: (h[3] & 0x80 != 0).then(|| {
                let kind = if h[3] & 0x40 != 0 {
                    ErrorKind::ConnectionReset
                } else {
                    ErrorKind::BrokenPipe
                };
                (usize::from(h[3] & 0x3f) * 23, kind)
            }),
            stall_writes: usize::from(h[4] & 7),
            max_message: [1, 5, 64, 200, 1000, 64 * 1024][usize::from(h[4] >> 3) % 6],
            write_through: h[5] & 1 != 0,
            // At least room for a ping of 125 bytes (131 with its header) besides the buffer.
            max_write_buffer: (h[5] & 2 != 0).then_some(160 + usize::from(h[5] >> 2) * 16),
        }
    }

    fn role(&self) -> Role {
        if self.client {
            Role::Client
        } else {
            Role::Server
        }
    }

    fn ws_config(&self) -> WebSocketConfig {
        let write_buffer = if self.write_through { 0 } else { 128 * 1024 };
        let mut config = WebSocketConfig::default().write_buffer_size(write_buffer);
        if let Some(extra) = self.max_write_buffer {
            config = config.max_write_buffer_size(write_buffer + extra);
        }
        config
    }
}

/// One scripted operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `write` (or `write_vectored`) of `len` fresh bytes, once (it may take part of them).
    Write {
        len: usize,
        vectored: bool,
    },
    Flush,
    /// `send_ping` with a payload of `len` bytes (over 125: must fail with `InvalidInput`).
    Ping(usize),
    /// `close`, or `close_with` this code (1005: invalid, must fail with `InvalidInput`).
    Close(Option<u16>),
    /// A read of up to `len` bytes (`fill_buf` when `buf`), waiting only at the gate.
    Read {
        len: usize,
        buf: bool,
    },
    /// The peer sends a binary message of `len` bytes, in `fragments` frames.
    PeerData {
        len: usize,
        fragments: usize,
    },
    /// The peer sends a ping (or a pong).
    PeerPing {
        pong: bool,
    },
    /// The peer sends its close frame with this code (None: no payload); nothing after it.
    PeerClose(Option<u16>),
    /// The peer's input ends (EOF or reset, per the header) here.
    PeerEnd,
}

impl Op {
    /// Reads one operation from the front of `bytes`.
    pub fn parse(bytes: &mut &[u8]) -> Option<Self> {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        let mut arg = || -> usize {
            match bytes.split_first() {
                Some((&a, rest)) => {
                    *bytes = rest;
                    usize::from(a)
                }
                None => 0,
            }
        };
        Some(match b % 16 {
            0..=4 => Op::Write {
                len: 1 + arg() * (1 + usize::from(b >> 6)),
                vectored: b & 0x10 != 0,
            },
            5 | 6 => Op::Flush,
            7 => Op::Ping(arg() % 130),
            8 => Op::Close(match arg() {
                0..=99 => None,
                100..=109 => Some(1005),
                110..=179 => Some(1000),
                n => Some(4000 + n as u16),
            }),
            9 | 10 => Op::Read {
                len: 1 + arg(),
                buf: b & 0x10 != 0,
            },
            11 | 12 => Op::PeerData {
                len: arg(),
                fragments: 1 + usize::from(b >> 5),
            },
            13 => Op::PeerPing {
                pong: b & 0x10 != 0,
            },
            14 => Op::PeerClose(match arg() {
                0..=9 => None,
                10..=139 => Some(1000),
                140..=169 => Some(1001),
                n => Some(4000 + n as u16),
            }),
            _ => Op::PeerEnd,
        })
    }
}

/// The peer's frames, built from the script up front.
#[derive(Debug, Default)]
struct PeerInput {
    wire: Vec<u8>,
    /// Where each peer operation's frames end (the gate opens to it when it runs).
    marks: Vec<usize>,
    /// The binary payload, in order.
    data: Vec<u8>,
    /// The peer's close frame: its code and the data that came before it.
    close: Option<(Option<u16>, usize)>,
    /// The index in `marks` of the close frame.
    close_mark: Option<usize>,
    /// Input stops here (a `PeerEnd`).
    ended: bool,
}

impl PeerInput {
    fn push(&mut self, frame: Frame, peer_is_client: bool) {
        self.wire
            .extend(frame.sent_by_client(peer_is_client).encode());
    }

    /// Adds the frames of a peer operation; returns false if the peer is done.
    fn add(&mut self, op: Op, peer_is_client: bool, counter: &mut u8) -> bool {
        if self.close.is_some() || self.ended {
            return false;
        }
        match op {
            Op::PeerData { len, fragments } => {
                let payload: Vec<u8> = (0..len)
                    .map(|i| {
                        *counter = counter.wrapping_add(1);
                        (i as u8).wrapping_mul(31) ^ *counter
                    })
                    .collect();
                self.data.extend_from_slice(&payload);
                let step = len.div_ceil(fragments).max(1);
                let mut chunks: Vec<&[u8]> = payload.chunks(step).collect();
                if chunks.is_empty() {
                    chunks.push(&[]);
                }
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.into_iter().enumerate() {
                    let opcode = if i == 0 { frames::BINARY } else { frames::CONT };
                    self.push(
                        Frame::new(opcode, chunk.to_vec()).fin(i == last),
                        peer_is_client,
                    );
                }
            }
            Op::PeerPing { pong } => {
                let opcode = if pong { frames::PONG } else { frames::PING };
                self.push(Frame::new(opcode, b"hi".to_vec()), peer_is_client);
            }
            Op::PeerClose(code) => {
                let payload = code
                    .map(|c| frames::close_payload(c, PEER_REASON))
                    .unwrap_or_default();
                self.push(Frame::new(frames::CLOSE, payload), peer_is_client);
                self.close = Some((code, self.data.len()));
                self.close_mark = Some(self.marks.len());
            }
            Op::PeerEnd => self.ended = true,
            _ => return true,
        }
        // The end is released with everything before it.
        self.marks.push(if self.ended {
            usize::MAX
        } else {
            self.wire.len()
        });
        true
    }
}

// ------------------------------------------------------------------------------------------
// The run.
// ------------------------------------------------------------------------------------------

type ReadFuture = Pin<Box<dyn Future<Output = io::Result<Vec<u8>>>>>;

/// A read in progress, with the waker of its task.
struct Parked {
    fut: ReadFuture,
    flag: Arc<Flag>,
    waker: Waker,
}

/// What happened so far.
struct State {
    setup: Setup,
    record: Recorder,
    gate: GateHandle,
    max_message: usize,
    accepted: Vec<u8>,
    received: Vec<u8>,
    /// How the reader ended (`Ok`: EOF).
    read_end: Option<Result<(), ErrorKind>>,
    /// A close operation completed (with a valid code).
    closed: bool,
    /// The reader had ended with an error before our close started.
    ended_before_close: bool,
    /// A close operation started before the reader ended.
    close_before_end: bool,
    /// A flush or close failed when this many bytes had been accepted.
    flush_failed_at: Option<usize>,
    /// A write, flush, ping or close failed with a transport error.
    write_failed: bool,
    /// The end of the input was released (the connection may be gone).
    end_released: bool,
    /// The peer's close frame was released.
    close_released: bool,
}

impl State {
    fn wire_frames(&self) -> Vec<Decoded> {
        frames::decode_all(&self.record.written())
    }

    /// Everything accepted so far is on the wire. Bytes missing when an earlier flush or
    /// close (after they were accepted) already failed are `sticky`: the failure was reported,
    /// but this `Ok` contradicts it. Otherwise the loss is silent: `loss`.
    fn check_flushed(&self, what: &str) {
        let sent = frames::binary_payload(&self.wire_frames());
        if sent.len() >= self.accepted.len() {
            return;
        }
        if self.flush_failed_at.is_some_and(|at| at > sent.len()) {
            ensure!(
                "sticky",
                false,
                "{what} returned Ok with {} of {} accepted bytes on the wire, after an earlier \
                 flush or close had reported their loss",
                sent.len(),
                self.accepted.len()
            );
        } else {
            ensure!(
                "loss",
                false,
                "{what} returned Ok with {} of {} accepted bytes on the wire (silent loss)",
                sent.len(),
                self.accepted.len()
            );
        }
    }

    fn after_end(&self) -> bool {
        self.closed || self.read_end.is_some()
    }

    fn on_write(&mut self, offered: &[u8], result: io::Result<usize>) {
        match result {
            Ok(n) => {
                ensure!(
                    "after-end",
                    !self.after_end(),
                    "a write took {n} bytes after the connection ended ({:?}, closed: {})",
                    self.read_end,
                    self.closed
                );
                ensure!(
                    "api",
                    n > 0 && n <= offered.len(),
                    "a write of {} returned Ok({n})",
                    offered.len()
                );
                self.accepted.extend_from_slice(&offered[..n]);
            }
            Err(err) => self.on_write_err(&err),
        }
    }

    fn on_write_err(&mut self, err: &io::Error) {
        use ErrorKind as K;
        let kind = err.kind();
        ensure!(
            "error-kind",
            matches!(
                kind,
                K::NotConnected
                    | K::BrokenPipe
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::UnexpectedEof
                    | K::InvalidData
            ),
            "unexpected write error: {err:?}"
        );
        if matches!(kind, K::BrokenPipe | K::ConnectionReset) {
            self.write_failed = true;
        }
    }

    fn on_read(&mut self, result: io::Result<Vec<u8>>, peer: &PeerInput) {
        match (result, self.read_end) {
            (Ok(bytes), None) if bytes.is_empty() => self.read_end = Some(Ok(())),
            (Ok(bytes), None) => {
                self.received.extend_from_slice(&bytes);
                let n = self.received.len();
                ensure!(
                    "prefix",
                    n <= peer.data.len() && self.received[..] == peer.data[..n],
                    "read bytes that are not a prefix of the peer's data"
                );
            }
            (Err(err), None) => self.read_end = Some(Err(err.kind())),
            (Ok(bytes), Some(Ok(()))) if bytes.is_empty() => {}
            (Err(err), Some(Err(kind))) if err.kind() == kind => {}
            (again, Some(end)) => {
                ensure!(
                    "end",
                    false,
                    "the reader ended with {end:?}, then returned {again:?}"
                );
            }
        }
    }
}

fn read_future<R>(reader: &Rc<RefCell<R>>, len: usize, buf_read: bool) -> ReadFuture
where
    R: AsyncRead + AsyncBufRead + Unpin + 'static,
{
    let reader = Rc::clone(reader);
    let mut buf = vec![0; len];
    Box::pin(poll_fn(move |cx| {
        let mut r = reader.borrow_mut();
        if buf_read {
            match Pin::new(&mut *r).poll_fill_buf(cx) {
                Poll::Ready(Ok(chunk)) => {
                    let n = chunk.len().min(len);
                    let got = chunk[..n].to_vec();
                    Pin::new(&mut *r).consume(n);
                    Poll::Ready(Ok(got))
                }
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            }
        } else {
            match Pin::new(&mut *r).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(buf[..n].to_vec())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            }
        }
    }))
}

/// Polls a parked read while it is woken. `Some` when it completed; `None` when it waits. A
/// read may only wait at the gate (`strict`: not even there, the input is all released).
fn service(
    parked: &mut Option<Parked>,
    gate: &GateHandle,
    strict: bool,
) -> Option<io::Result<Vec<u8>>> {
    let p = parked.as_mut()?;
    let mut cx = Context::from_waker(&p.waker);
    for _ in 0..MAX_POLLS {
        if !p.flag.0.swap(false, Ordering::SeqCst) {
            // Not woken since the last poll: it waits, which is only right at the gate.
            ensure!(
                "hang",
                !strict && gate.holding(),
                "lost wake-up: a read is pending without a wake-up, and not waiting for input"
            );
            return None;
        }
        if let Poll::Ready(out) = p.fut.as_mut().poll(&mut cx) {
            *parked = None;
            return Some(out);
        }
    }
    panic!("livelock: a read made no progress in {MAX_POLLS} polls");
}

fn park(fut: ReadFuture) -> Parked {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    Parked {
        fut,
        waker: Waker::from(Arc::clone(&flag)),
        flag,
    }
}

/// The setup and the operations an input decodes to, for reading a crash.
pub fn describe(data: &[u8]) -> String {
    let Some((header, mut script)) = data.split_first_chunk::<{ Setup::LEN }>() else {
        return "too short".to_owned();
    };
    let mut out = format!("{:#?}\n", Setup::parse(*header));
    while let Some(op) = Op::parse(&mut script) {
        out.push_str(&format!("{op:?}\n"));
    }
    out
}

/// Runs the harness on one input. Panics when the stream breaks its contract.
pub fn run(data: &[u8]) {
    let Some((header, mut script)) = data.split_first_chunk::<{ Setup::LEN }>() else {
        return;
    };
    let setup = Setup::parse(*header);
    let mut ops = Vec::new();
    while let Some(op) = Op::parse(&mut script) {
        ops.push(op);
        if ops.len() == 400 {
            break;
        }
    }

    // The peer's input: its frames in script order, then its close (if the header says so and
    // the script did not), then the end.
    let peer_is_client = !setup.client;
    let mut peer = PeerInput::default();
    let mut counter = 0u8;
    for &op in &ops {
        peer.add(op, peer_is_client, &mut counter);
    }
    let script_marks = peer.marks.len();
    if setup.peer_closes {
        peer.add(
            Op::PeerClose(Some(setup.peer_code)),
            peer_is_client,
            &mut counter,
        );
    }

    let mut io = FaultIo::new(peer.wire.clone(), setup.end).adversarial(
        setup.seed,
        setup.pending_percent,
        setup.max_chunk,
    );
    if let Some((offset, kind)) = setup.write_fault {
        io = io.write_fault(offset, kind);
    }
    io = io.stall_writes(setup.stall_writes);
    let record = io.recorder();
    let gate = GateHandle::default();
    let transport = Gate {
        inner: io,
        state: gate.clone(),
    };
    let ws = drive(WebSocketStream::from_raw_socket(
        transport,
        setup.role(),
        Some(setup.ws_config()),
    ));
    let config = Config::default()
        .max_message_size(setup.max_message)
        .close_timeout(None);
    let stream = WsStream::with_config(ws, config);
    let max_message = stream.max_message_size();
    let state = State {
        setup,
        record,
        gate,
        max_message,
        accepted: Vec::new(),
        received: Vec::new(),
        read_end: None,
        closed: false,
        ended_before_close: false,
        close_before_end: false,
        flush_failed_at: None,
        write_failed: false,
        end_released: false,
        close_released: false,
    };
    if setup.split {
        let (r, w) = stream.into_split();
        let (r, w) = (Rc::new(RefCell::new(r)), Rc::new(RefCell::new(w)));
        play(state, &ops, &peer, script_marks, &r, &w);
    } else {
        let s = Rc::new(RefCell::new(stream));
        play(state, &ops, &peer, script_marks, &s, &s);
    }
}

fn play<R, W>(
    mut st: State,
    ops: &[Op],
    peer: &PeerInput,
    script_marks: usize,
    reader: &Rc<RefCell<R>>,
    writer: &Rc<RefCell<W>>,
) where
    R: AsyncRead + AsyncBufRead + Unpin + 'static,
    W: AsyncWrite + Control + Unpin + 'static,
{
    let mut parked: Option<Parked> = None;
    let mut mark = 0;
    let mut fresh = 0u8;
    let mut bytes = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| {
                fresh = fresh.wrapping_add(7);
                fresh ^ (i as u8)
            })
            .collect()
    };

    for &op in ops {
        match op {
            Op::Write { .. } | Op::Flush | Op::Ping(_) | Op::Close(_) => {
                write_op(&mut st, writer, op, &mut bytes);
            }
            Op::Read { len, buf } => {
                if parked.is_none() {
                    parked = Some(park(read_future(reader, len, buf)));
                }
                if let Some(out) = service(&mut parked, &st.gate, false) {
                    st.on_read(out, peer);
                } else if !st.setup.split {
                    // Unsplit, the read gives way to the next operation (as in a `select!`):
                    // dropping it at `Pending` loses nothing.
                    parked = None;
                }
            }
            Op::PeerData { .. } | Op::PeerPing { .. } | Op::PeerClose(_) | Op::PeerEnd => {
                if mark < script_marks {
                    st.gate.open_to(peer.marks[mark]);
                    mark += 1;
                    st.close_released |= peer.close_mark == Some(mark - 1);
                    st.end_released |= peer.marks[mark - 1] == usize::MAX;
                }
            }
        }
        // A parked read that was woken runs on (the read half's own task).
        if let Some(out) = service(&mut parked, &st.gate, false) {
            st.on_read(out, peer);
        }
    }

    // The end: our last flush or close, and the rest of the input (the peer's close, if any,
    // then EOF or a reset), in the order the header says.
    let last = if st.setup.final_close {
        Op::Close(st.setup.final_code)
    } else {
        Op::Flush
    };
    if st.setup.final_first {
        write_op(&mut st, writer, last, &mut bytes);
    }
    st.gate.open_to(usize::MAX);
    st.close_released = peer.close.is_some();
    st.end_released = true;
    if let Some(out) = service(&mut parked, &st.gate, false) {
        st.on_read(out, peer);
    }
    if !st.setup.final_first {
        write_op(&mut st, writer, last, &mut bytes);
    }
    // Read to the end: with all input released, nothing may wait.
    while st.read_end.is_none() {
        if parked.is_none() {
            parked = Some(park(read_future(reader, 64, false)));
        }
        if let Some(out) = service(&mut parked, &st.gate, true) {
            st.on_read(out, peer);
        }
    }
    // The end repeats; writes are refused; a flush or close still tells the truth.
    let again = drive(read_future(reader, 8, false));
    st.on_read(again, peer);
    write_op(
        &mut st,
        writer,
        Op::Write {
            len: 5,
            vectored: false,
        },
        &mut bytes,
    );
    write_op(&mut st, writer, Op::Flush, &mut bytes);
    write_op(&mut st, writer, Op::Close(None), &mut bytes);

    check_end(&st, peer);
}

fn write_op<W>(
    st: &mut State,
    writer: &Rc<RefCell<W>>,
    op: Op,
    bytes: &mut impl FnMut(usize) -> Vec<u8>,
) where
    W: AsyncWrite + Control + Unpin + 'static,
{
    match op {
        Op::Write { len, vectored } => {
            let offered = bytes(len);
            let result = drive(poll_fn(|cx| {
                let mut w = writer.borrow_mut();
                if vectored {
                    let mid = offered.len() / 3;
                    let slices = [IoSlice::new(&offered[..mid]), IoSlice::new(&offered[mid..])];
                    Pin::new(&mut *w).poll_write_vectored(cx, &slices)
                } else {
                    Pin::new(&mut *w).poll_write(cx, &offered)
                }
            }));
            st.on_write(&offered, result);
        }
        Op::Flush => {
            let result = drive(poll_fn(|cx| {
                Pin::new(&mut *writer.borrow_mut()).poll_flush(cx)
            }));
            match result {
                Ok(()) => st.check_flushed("flush"),
                Err(err) => {
                    st.flush_failed_at = Some(st.accepted.len());
                    st.on_write_err(&err);
                }
            }
        }
        Op::Ping(len) => {
            let payload = Bytes::from(vec![0x50; len]);
            let result = drive(async { writer.borrow_mut().ping(payload).await });
            match result {
                Ok(()) => {
                    ensure!("api", len <= 125, "a ping of {len} bytes was sent");
                    ensure!(
                        "after-end",
                        !st.after_end(),
                        "a ping succeeded after the end"
                    );
                }
                // Too big: `InvalidInput`, unless the stream already failed or ended.
                Err(err) if len > 125 && err.kind() == ErrorKind::InvalidInput => {}
                Err(err) => st.on_write_err(&err),
            }
        }
        Op::Close(code) => {
            if matches!(st.read_end, Some(Err(_))) && !st.closed {
                st.ended_before_close = true;
            }
            st.close_before_end |= st.read_end.is_none() && code != Some(1005);
            let result = match code {
                None => drive(poll_fn(|cx| {
                    Pin::new(&mut *writer.borrow_mut()).poll_close(cx)
                })),
                Some(code) => drive(async {
                    writer
                        .borrow_mut()
                        .close_code(CloseCode::from(code), OUR_REASON)
                        .await
                }),
            };
            match result {
                Err(err) if code == Some(1005) => {
                    ensure!(
                        "api",
                        err.kind() == ErrorKind::InvalidInput,
                        "close_with(1005) failed with {err:?}"
                    );
                    return;
                }
                Ok(()) => {
                    ensure!("api", code != Some(1005), "close_with(1005) succeeded");
                    st.check_flushed("close");
                    let has_close = st.wire_frames().iter().any(|f| f.opcode == frames::CLOSE);
                    // Unless the transport failed or the connection is already gone (the input
                    // ended without a close frame), a close that returns Ok put a close frame
                    // (ours or the answer to the peer's) on the wire.
                    let gone = st.ended_before_close || (st.end_released && !st.close_released);
                    ensure!(
                        "close-frame",
                        has_close || st.write_failed || st.record.lock().write_failed || gone,
                        "close returned Ok, but no whole close frame is on the wire"
                    );
                }
                Err(err) => {
                    st.flush_failed_at = Some(st.accepted.len());
                    st.on_write_err(&err);
                }
            }
            st.closed = true;
        }
        _ => unreachable!("not a write operation: {op:?}"),
    }
}

/// The checks once the reader ended.
fn check_end(st: &State, peer: &PeerInput) {
    let frames = st.wire_frames();
    for f in &frames {
        ensure!(
            "frames",
            f.masked == st.setup.client,
            "masking of our frames: {f:?}"
        );
        if f.opcode == frames::BINARY || f.opcode == frames::CONT {
            ensure!(
                "frames",
                f.payload.len() <= st.max_message,
                "a message of {} > {}",
                f.payload.len(),
                st.max_message
            );
        }
    }
    let sent = frames::binary_payload(&frames);
    ensure!(
        "prefix",
        st.accepted.get(..sent.len()) == Some(&sent[..]),
        "the wire carries bytes that are not a prefix of what the writes accepted"
    );
    let our_close = frames.iter().position(|f| f.opcode == frames::CLOSE);
    if let Some(at) = our_close {
        ensure!(
            "frames",
            !frames[at..].iter().any(|f| f.opcode == frames::BINARY),
            "data after our close frame"
        );
    }
    // We started the close: our first close frame carries our reason (an answer carries the
    // peer's), or our close was called and its frame did not reach the wire (the transport
    // failed), so the peer's close may cross it.
    let initiated = match our_close {
        Some(at) => frames[at].payload.get(2..).unwrap_or_default() != PEER_REASON.as_bytes(),
        None => st.close_before_end,
    };

    let end = st.read_end.expect("the reader ended");
    let faulted = st.write_failed || st.record.lock().write_failed;
    let peer_close = peer.close;
    let clean = matches!(peer_close, Some((None | Some(1000 | 1001), _)));
    let describe = || {
        format!(
            "reader ended with {end:?}; the peer's close: {peer_close:?}; we started the close: \
             {initiated}; write fault: {faulted}; input end: {:?}",
            st.setup.end
        )
    };
    match end {
        Ok(()) => {
            ensure!(
                "end",
                peer_close.is_some(),
                "EOF without the peer's close frame: {}",
                describe()
            );
            ensure!(
                "end",
                clean || initiated,
                "EOF after the peer's close that is not clean: {}",
                describe()
            );
        }
        Err(ErrorKind::ConnectionAborted) => {
            ensure!(
                "end",
                peer_close.is_some() && !clean,
                "ConnectionAborted without a close code for it: {}",
                describe()
            );
        }
        Err(kind) => {
            if !faulted {
                // Without a write fault, the input alone decides: after the peer's close frame
                // its code, else the transport's end.
                ensure!(
                    "end",
                    peer_close.is_none(),
                    "the peer's close frame was ignored: {}",
                    describe()
                );
                let expected = match st.setup.end {
                    InputEnd::Error(k) => k,
                    _ => ErrorKind::UnexpectedEof,
                };
                ensure!(
                    "end",
                    kind == expected,
                    "expected {expected:?}: {}",
                    describe()
                );
            }
        }
    }
    if let Some((_, before)) = peer_close {
        if end.is_ok() || end == Err(ErrorKind::ConnectionAborted) {
            ensure!(
                "end",
                st.received.len() == before,
                "the reader saw the peer's close but read {} of the {before} bytes before it: {}",
                st.received.len(),
                describe()
            );
        }
        if !faulted && !clean && !initiated {
            ensure!(
                "end",
                end == Err(ErrorKind::ConnectionAborted),
                "the peer's close code was lost: {}",
                describe()
            );
        }
    }
}
