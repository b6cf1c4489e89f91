//! The fuzz harness, shared by `fuzz/fuzz_targets/peer_bytes.rs` and `tests/fuzz_corpus.rs`.
//!
//! The input is the byte stream of a hostile peer, behind a 4-byte header that picks the role
//! (our stream is the server or the client), the limits, the text policy, the read mode and the
//! seed of the fault-injecting transport. A [`WsStream`] is driven over it with interleaved
//! reads, writes, flushes and (sometimes) a close, on an executor that panics on a lost wakeup
//! (`Pending` with no wake) and on a livelock. The same bytes are decoded by a plain
//! tungstenite `WebSocket` (the oracle), and the stream must agree with it: the same bytes,
//! then EOF exactly when the oracle saw a clean close, else the matching `io::ErrorKind`, and
//! the matching close code on the wire. The written bytes come out in order, in messages no
//! larger than the configured size, masked exactly when we are the client.

use std::{
    future::Future,
    io::{self, Read, Write},
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use async_tungstenite::WebSocketStream;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tungstenite::{
    Error as TungErr, Message,
    error::ProtocolError,
    protocol::{Role, WebSocket, WebSocketConfig},
};
use ws_stream_tungstenite::{Config, TextPolicy, WsStream};

use super::{
    fault::{FaultIo, InputEnd},
    frames,
    rng::Rng,
};

/// Polls allowed for one operation before it counts as a livelock.
const MAX_POLLS: usize = 1_000_000;

/// A waker that only notes that it was woken (also used by `write_harness`).
#[derive(Debug, Default)]
pub(super) struct Flag(pub(super) AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs a future to completion on this thread. Panics if it returns `Pending` without
/// arranging a wake-up (it would hang on any executor), or if it never finishes.
pub fn drive<F: Future>(fut: F) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    for _ in 0..MAX_POLLS {
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(
            flag.0.load(Ordering::SeqCst),
            "lost wake-up: Pending without a wake"
        );
    }
    panic!("livelock: no progress after {MAX_POLLS} polls");
}

/// The settings decoded from the input's header.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Our stream is the client (the peer is a server).
    pub client: bool,
    pub accept_text: bool,
    /// Small tungstenite limits: 256-byte messages, 128-byte frames.
    pub small_limits: bool,
    /// Read with `fill_buf`/`consume` instead of `read`.
    pub buf_read: bool,
    /// We close our side at some point.
    pub close_early: bool,
    /// Writes fail with `BrokenPipe` after some bytes.
    pub write_fault: bool,
    pub seed: u64,
    pub read_size: usize,
    pub max_message: usize,
}

impl Setup {
    pub fn parse(header: [u8; 4]) -> Self {
        let flags = header[0];
        Self {
            client: flags & 1 != 0,
            accept_text: flags & 2 != 0,
            small_limits: flags & 4 != 0,
            buf_read: flags & 8 != 0,
            close_early: flags & 16 != 0,
            write_fault: flags & 32 != 0,
            seed: u64::from(header[1]) | u64::from(header[3]) << 8,
            read_size: usize::from(header[2]) + 1,
            max_message: [1, 7, 64, 300][usize::from(header[3] & 3)],
        }
    }

    fn ws_config(&self) -> WebSocketConfig {
        let config = WebSocketConfig::default();
        if self.small_limits {
            config.max_message_size(Some(256)).max_frame_size(Some(128))
        } else {
            config
        }
    }

    fn role(&self) -> Role {
        if self.client {
            Role::Client
        } else {
            Role::Server
        }
    }
}

/// How the stream must end, per the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub bytes: Vec<u8>,
    /// `None`: EOF.
    pub end: Option<io::ErrorKind>,
    /// The close code we must send because of bad input, if any.
    pub close_code: Option<u16>,
    /// The peer's close frame arrived before the end.
    pub peer_closed: bool,
}

struct OracleIo<'a> {
    input: &'a [u8],
}

impl Read for OracleIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(&mut self.input, buf)
    }
}

impl Write for OracleIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decodes the peer's bytes with plain tungstenite and states what the stream must deliver.
pub fn oracle(setup: &Setup, input: &[u8]) -> Expected {
    let mut ws =
        WebSocket::from_raw_socket(OracleIo { input }, setup.role(), Some(setup.ws_config()));
    let mut bytes = Vec::new();
    let mut peer_close = None;
    let (end, close_code) = loop {
        match ws.read() {
            Ok(Message::Binary(payload)) => bytes.extend_from_slice(&payload),
            Ok(Message::Text(text)) if setup.accept_text => {
                bytes.extend_from_slice(text.as_bytes())
            }
            Ok(Message::Text(_)) => break (Some(io::ErrorKind::InvalidData), Some(1003)),
            Ok(Message::Close(frame)) => peer_close = Some(frame),
            Ok(_) => {}
            // After the peer's close frame, the end is decided by that frame, whatever follows.
            Err(_) if peer_close.is_some() => {
                let code = peer_close
                    .as_ref()
                    .and_then(|f| f.as_ref())
                    .map(|f| u16::from(f.code));
                break match code {
                    None | Some(1000 | 1001) => (None, None),
                    Some(_) => (Some(io::ErrorKind::ConnectionAborted), None),
                };
            }
            Err(TungErr::ConnectionClosed | TungErr::AlreadyClosed) => {
                let code = peer_close
                    .as_ref()
                    .and_then(|f| f.as_ref())
                    .map(|f| u16::from(f.code));
                break match code {
                    None | Some(1000 | 1001) => (None, None),
                    Some(_) => (Some(io::ErrorKind::ConnectionAborted), None),
                };
            }
            Err(TungErr::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                break (Some(io::ErrorKind::UnexpectedEof), None);
            }
            Err(TungErr::Protocol(_)) => break (Some(io::ErrorKind::InvalidData), Some(1002)),
            Err(TungErr::Utf8(_)) => break (Some(io::ErrorKind::InvalidData), Some(1007)),
            Err(TungErr::Capacity(_)) => break (Some(io::ErrorKind::InvalidData), Some(1009)),
            Err(TungErr::Io(err)) => break (Some(err.kind()), None),
            Err(_) => break (Some(io::ErrorKind::Other), None),
        }
    };
    let peer_closed = peer_close.is_some();
    Expected {
        bytes,
        end,
        // After the peer's close frame, no second close frame goes out.
        close_code: close_code.filter(|_| !peer_closed),
        peer_closed,
    }
}

/// Runs the whole harness on one input. Panics when the stream breaks its contract.
pub fn run(data: &[u8]) {
    let Some((header, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let setup = Setup::parse(*header);
    let expected = oracle(&setup, input);
    let mut rng = Rng::new(setup.seed);

    let mut io =
        FaultIo::new(input.to_vec(), InputEnd::Eof).adversarial(setup.seed, 20, rng.range(1, 64));
    if setup.write_fault {
        io = io.write_fault(rng.range(0, 200), io::ErrorKind::BrokenPipe);
    }
    let record = io.recorder();
    let ws = drive(WebSocketStream::from_raw_socket(
        io,
        setup.role(),
        Some(setup.ws_config()),
    ));
    let config = Config::default()
        .max_message_size(setup.max_message)
        .text_policy(if setup.accept_text {
            TextPolicy::Accept
        } else {
            TextPolicy::Reject
        })
        .close_timeout(None);
    let mut stream = WsStream::with_config(ws, config);
    let max_message = stream.max_message_size();

    let mut received = Vec::new();
    let mut accepted = Vec::new(); // bytes that writes took
    let mut confirmed = 0; // bytes of `accepted` that a successful flush or close covered
    let mut closed_by_us = false;
    let end = loop {
        match rng.range(0, 9) {
            0..=2 if !closed_by_us => {
                let len = rng.range(1, 300);
                let data = rng.bytes(len);
                match drive(stream.write(&data)) {
                    Ok(n) => {
                        assert!(n > 0 && n <= data.len(), "write took {n} of {}", data.len());
                        accepted.extend_from_slice(&data[..n]);
                    }
                    Err(err) => check_write_err(&err),
                }
            }
            3 if !closed_by_us => match drive(stream.flush()) {
                Ok(()) => confirmed = accepted.len(),
                Err(err) => check_write_err(&err),
            },
            4 if setup.close_early && !closed_by_us && rng.chance(30) => {
                closed_by_us = true;
                match drive(stream.close()) {
                    Ok(()) => confirmed = accepted.len(),
                    Err(err) => check_write_err(&err),
                }
            }
            _ if setup.buf_read => match drive(stream.fill_buf()) {
                Ok([]) => break None,
                Ok(chunk) => {
                    let n = chunk.len().min(rng.range(1, setup.read_size));
                    received.extend_from_slice(&chunk[..n]);
                    stream.consume_unpin(n);
                }
                Err(err) => break Some(err),
            },
            _ => {
                let mut buf = vec![0; rng.range(1, setup.read_size)];
                match drive(stream.read(&mut buf)) {
                    Ok(0) => break None,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(err) => break Some(err),
                }
            }
        }
    };

    // After the end, reads repeat it without touching the transport (it panics if polled),
    // and writes are refused.
    let mut buf = [0u8; 16];
    let again = drive(stream.read(&mut buf));
    match (&end, &again) {
        (None, Ok(0)) => {}
        (Some(a), Err(b)) if a.kind() == b.kind() => {}
        _ => panic!("the end changed: first {end:?}, then {again:?}"),
    }
    if let Err(err) = drive(stream.write(b"late")) {
        check_write_err(&err);
    }

    let end_kind = end.as_ref().map(io::Error::kind);
    let written = record.written();
    let frames = frames::decode_all(&written);
    for f in &frames {
        assert_eq!(f.masked, setup.client, "masking of our frames: {f:?}");
        if f.opcode == frames::BINARY {
            assert!(
                f.payload.len() <= max_message,
                "message of {} > {max_message}",
                f.payload.len()
            );
        }
    }
    let sent = frames::binary_payload(&frames);
    assert_eq!(
        sent[..],
        accepted[..sent.len()],
        "written bytes out of order"
    );
    let exact = !setup.write_fault && !closed_by_us;

    if exact {
        assert!(
            confirmed <= sent.len(),
            "flushed bytes did not reach the transport"
        );
        assert_eq!(
            received, expected.bytes,
            "bytes received differ from the oracle"
        );
        assert_eq!(
            end_kind, expected.end,
            "end differs from the oracle ({end:?})"
        );
        if let Some(code) = expected.close_code {
            let ours = frames.iter().find(|f| f.opcode == frames::CLOSE);
            assert_eq!(
                ours.and_then(frames::Decoded::close_code),
                Some(code),
                "close code sent"
            );
        }
    } else {
        // A failed write or our own close may end the stream earlier; what arrived is still a
        // prefix of the truth, and EOF still means a clean close.
        assert_eq!(
            received[..],
            expected.bytes[..received.len()],
            "bytes received are not a prefix"
        );
        if end.is_none() {
            assert!(
                expected.peer_closed || closed_by_us,
                "EOF without a close handshake"
            );
        }
    }
}

fn check_write_err(err: &io::Error) {
    use io::ErrorKind as K;
    assert!(
        matches!(
            err.kind(),
            K::NotConnected
                | K::BrokenPipe
                | K::InvalidData
                | K::UnexpectedEof
                | K::ConnectionAborted
        ),
        "unexpected write error: {err:?}"
    );
}
