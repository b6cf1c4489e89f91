//! Peers faster than the reader: transports that never return `Pending`.
//!
//! On an executor without a cooperative budget (`futures::executor::block_on`, smol,
//! async-std), a transport that always has input never makes the stream wait, so anything the
//! stream only does "while it waits" (flushing output, watching timers) never happens.
//!
//! - [`ReadyTransport`]: a message-level [`Transport`](ws_stream_tungstenite::Transport) whose
//!   stream yields the same binary message forever and whose sink is always ready. Like
//!   tungstenite, it keeps what `start_send` accepted in a queue: a message counts as sent
//!   (reached the peer) only once `poll_flush` or `poll_close` ran after it.
//! - [`EndlessIo`]: a byte-level futures `AsyncRead + AsyncWrite` whose reads always return the
//!   bytes of one frame, repeated forever, and whose writes are always accepted and recorded.
//!   Wrap it in a real tungstenite with `WebSocketStream::from_raw_socket`.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::{
    Sink, Stream,
    io::{AsyncRead, AsyncWrite},
};
use tungstenite::{Error as TungErr, Message};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What a [`ReadyTransport`] saw.
#[derive(Debug, Default)]
pub struct ReadyRecord {
    /// Messages handed to `start_send` and not flushed yet.
    pub queued: Vec<Message>,
    /// Messages flushed: the peer has them.
    pub sent: Vec<Message>,
    /// Incoming messages handed out.
    pub yielded: usize,
    /// `poll_close` was called.
    pub closed: bool,
}

impl ReadyRecord {
    /// The concatenated payloads of the binary messages the peer has.
    pub fn sent_bytes(&self) -> Vec<u8> {
        self.sent
            .iter()
            .filter_map(|m| match m {
                Message::Binary(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The close frames the peer has.
    pub fn sent_closes(&self) -> usize {
        self.sent.iter().filter(|m| m.is_close()).count()
    }
}

/// A handle on a [`ReadyRecord`].
#[derive(Debug, Clone, Default)]
pub struct ReadyRecorder(Arc<Mutex<ReadyRecord>>);

impl ReadyRecorder {
    pub fn lock(&self) -> MutexGuard<'_, ReadyRecord> {
        lock(&self.0)
    }
}

/// A message-level transport that is never `Pending`: its stream yields `Binary(payload)`
/// forever, its sink is always ready.
#[derive(Debug)]
pub struct ReadyTransport {
    payload: Bytes,
    record: ReadyRecorder,
}

impl ReadyTransport {
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            record: ReadyRecorder::default(),
        }
    }

    pub fn recorder(&self) -> ReadyRecorder {
        self.record.clone()
    }
}

impl Stream for ReadyTransport {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.record.lock().yielded += 1;
        Poll::Ready(Some(Ok(Message::Binary(self.payload.clone()))))
    }
}

impl Sink<Message> for ReadyTransport {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), TungErr> {
        self.record.lock().queued.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        let mut record = self.record.lock();
        let queued = std::mem::take(&mut record.queued);
        record.sent.extend(queued);
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        self.record.lock().closed = true;
        self.poll_flush(cx)
    }
}

/// What an [`EndlessIo`] saw.
#[derive(Debug, Default)]
pub struct EndlessRecord {
    /// Every byte written.
    pub written: Vec<u8>,
    /// Bytes handed out by reads.
    pub read: usize,
}

/// A handle on an [`EndlessRecord`].
#[derive(Debug, Clone, Default)]
pub struct EndlessRecorder(Arc<Mutex<EndlessRecord>>);

impl EndlessRecorder {
    pub fn lock(&self) -> MutexGuard<'_, EndlessRecord> {
        lock(&self.0)
    }

    pub fn written(&self) -> Vec<u8> {
        self.lock().written.clone()
    }
}

/// A byte transport that is never `Pending`: reads return `frame` repeated forever, writes are
/// accepted whole and recorded.
#[derive(Debug)]
pub struct EndlessIo {
    frame: Vec<u8>,
    pos: usize,
    record: EndlessRecorder,
}

impl EndlessIo {
    /// `frame`: the encoded bytes of one frame (for example an unmasked binary frame when the
    /// stream under test is the client).
    pub fn new(frame: Vec<u8>) -> Self {
        assert!(!frame.is_empty());
        Self {
            frame,
            pos: 0,
            record: EndlessRecorder::default(),
        }
    }

    pub fn recorder(&self) -> EndlessRecorder {
        self.record.clone()
    }
}

impl AsyncRead for EndlessIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        for b in buf.iter_mut() {
            *b = this.frame[this.pos];
            this.pos = (this.pos + 1) % this.frame.len();
        }
        this.record.lock().read += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
}

impl AsyncWrite for EndlessIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.record.lock().written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
