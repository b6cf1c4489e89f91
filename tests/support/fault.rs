//! A fault-injecting transport (futures `AsyncRead + AsyncWrite`).
//!
//! The fault model:
//! - reads serve a scripted input, in short reads of a random `1..=max_chunk` bytes;
//! - any poll (read, write, flush) may return `Pending` at random (seeded); it wakes the task
//!   at once, as a real socket would wake it later;
//! - writes are short (random `1..=max_chunk` bytes) and are recorded;
//! - the input ends with EOF, an error of a chosen kind, or silence (`Pending` forever) at a
//!   chosen byte offset; writes fail with a chosen kind after a chosen number of bytes;
//! - polling a read after the read side returned EOF or an error panics: the stream under
//!   test must never read a finished transport again;
//! - after a write error, writes and flushes fail again with the same error, as a socket's do,
//!   and are counted (`Record::writes_after_error`). The stream itself does not write after a
//!   write error, but tungstenite, when read, retries writing the pongs and close answers it
//!   queued; that is harmless and outside this crate's control.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use futures::io::{AsyncRead, AsyncWrite};

use super::rng::Rng;

/// How the scripted input ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnd {
    /// `Ok(0)`.
    Eof,
    /// An error of this kind.
    Error(io::ErrorKind),
    /// `Pending` forever, never woken: a silent peer.
    Silent,
}

/// What the transport saw, shared with the test.
#[derive(Debug, Default)]
pub struct Record {
    /// Every byte written, in order.
    pub written: Vec<u8>,
    /// Bytes of input handed out.
    pub read: usize,
    /// The read side returned EOF or an error.
    pub read_ended: bool,
    /// A write returned an error.
    pub write_failed: bool,
    /// Writes and flushes tried after a write error.
    pub writes_after_error: usize,
    /// `poll_close` was called.
    pub closed: bool,
}

/// A handle on the [`Record`].
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Record>>);

impl Recorder {
    pub fn lock(&self) -> MutexGuard<'_, Record> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn written(&self) -> Vec<u8> {
        self.lock().written.clone()
    }
}

/// The fault-injecting transport.
#[derive(Debug)]
pub struct FaultIo {
    input: Vec<u8>,
    pos: usize,
    end: InputEnd,
    /// Writes fail with this kind once this many bytes were written.
    write_fault: Option<(usize, io::ErrorKind)>,
    /// The kind of the write error returned, once one was.
    write_error: Option<io::ErrorKind>,
    pending_percent: u64,
    /// The next this many write polls return `Pending` (and wake).
    stalled_writes: usize,
    max_chunk: usize,
    rng: Rng,
    record: Recorder,
}

impl FaultIo {
    /// A transport that serves `input`, then `end`; writes are accepted.
    pub fn new(input: Vec<u8>, end: InputEnd) -> Self {
        Self {
            input,
            pos: 0,
            end,
            write_fault: None,
            write_error: None,
            pending_percent: 0,
            stalled_writes: 0,
            max_chunk: usize::MAX,
            rng: Rng::new(0),
            record: Recorder::default(),
        }
    }

    /// Random `Pending`s (in percent of polls) and short reads and writes, from `seed`.
    pub fn adversarial(mut self, seed: u64, pending_percent: u64, max_chunk: usize) -> Self {
        self.rng = Rng::new(seed);
        self.pending_percent = pending_percent.min(90);
        self.max_chunk = max_chunk.max(1);
        self
    }

    /// Writes fail with `kind` after `offset` bytes were accepted.
    pub fn write_fault(mut self, offset: usize, kind: io::ErrorKind) -> Self {
        self.write_fault = Some((offset, kind));
        self
    }

    /// The first `n` write polls return `Pending` (and wake the task).
    pub fn stall_writes(mut self, n: usize) -> Self {
        self.stalled_writes = n;
        self
    }

    pub fn recorder(&self) -> Recorder {
        self.record.clone()
    }

    /// Returns `true` when this poll should be `Pending` (and wakes the task).
    fn stall(&mut self, cx: &mut Context<'_>) -> bool {
        if self.pending_percent > 0 && self.rng.chance(self.pending_percent) {
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }

    fn chunk(&mut self, n: usize) -> usize {
        n.min(self.rng.range(1, self.max_chunk.min(n.max(1))))
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        assert!(
            !this.record.lock().read_ended,
            "FaultIo: read polled after the read side ended"
        );
        if this.stall(cx) {
            return Poll::Pending;
        }
        let left = this.input.len() - this.pos;
        if left == 0 {
            return match this.end {
                InputEnd::Silent => Poll::Pending,
                InputEnd::Eof => {
                    this.record.lock().read_ended = true;
                    Poll::Ready(Ok(0))
                }
                InputEnd::Error(kind) => {
                    this.record.lock().read_ended = true;
                    Poll::Ready(Err(io::Error::new(kind, "injected read fault")))
                }
            };
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = this.chunk(left.min(buf.len()));
        buf[..n].copy_from_slice(&this.input[this.pos..this.pos + n]);
        this.pos += n;
        this.record.lock().read += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(kind) = this.write_error {
            this.record.lock().writes_after_error += 1;
            return Poll::Ready(Err(io::Error::new(kind, "injected write fault, again")));
        }
        if this.stalled_writes > 0 {
            this.stalled_writes -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.stall(cx) {
            return Poll::Pending;
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut n = this.chunk(buf.len());
        let mut record = this.record.lock();
        if let Some((offset, kind)) = this.write_fault {
            let room = offset.saturating_sub(record.written.len());
            if room == 0 {
                record.write_failed = true;
                this.write_error = Some(kind);
                return Poll::Ready(Err(io::Error::new(kind, "injected write fault")));
            }
            n = n.min(room);
        }
        record.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(kind) = this.write_error {
            this.record.lock().writes_after_error += 1;
            return Poll::Ready(Err(io::Error::new(kind, "injected write fault, again")));
        }
        if this.stall(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.record.lock().closed = true;
        Poll::Ready(Ok(()))
    }
}
