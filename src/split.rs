//! Split halves: a read half and a write half for two tasks, sharing one engine.

use std::{
    fmt,
    future::{poll_fn, ready},
    io,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use pharos::{Observable, Observe, ObserveConfig};
use tungstenite::protocol::frame::coding::CloseCode;

use crate::{CloseHandle, Transport, WsErr, WsEvent, WsIo, core::Core};

type Shared<T> = Arc<Mutex<Core<T>>>;

/// Locks the engine. The lock is only held inside one poll, never across an await, so a
/// poisoned lock (a panic in another poll) holds consistent state: keep going.
fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Core<T>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The read half of a [`WsIo`], from [`WsIo::into_split`]: `AsyncRead` and `AsyncBufRead` (futures
/// and, with `tokio_io`, tokio), and the events.
///
/// Reading also pushes out what the write half wrote, and drives the close handshake and the
/// keepalive, as for the whole stream: keep a task reading.
pub struct ReadHalf<T> {
    shared: Shared<T>,
    /// The part of the current message handed out by `poll_fill_buf`.
    chunk: Bytes,
}

/// The write half of a [`WsIo`], from [`WsIo::into_split`]: `AsyncWrite` (futures and, with
/// `tokio_io`, tokio), [`close_with`](Self::close_with) and [`send_ping`](Self::send_ping).
pub struct WriteHalf<T> {
    shared: Shared<T>,
}

impl<T> WsIo<T> {
    /// Splits the stream into a read half and a write half that can live in different tasks.
    ///
    /// Unlike `futures::io::AsyncReadExt::split` (which also works, through a `BiLock`), the
    /// write half can close with a code and send pings, and the halves observe events.
    /// The name leaves `.split()` to the futures extension trait, as before.
    ///
    /// The halves share the engine behind a lock that is only held within a single poll, never
    /// across an await. The write half can close with a code and send pings; the read half
    /// must keep being read to complete the close handshake. Put them back together with
    /// [`ReadHalf::reunite`].
    ///
    /// ```
    /// # async fn demo(stream: ws_stream_tungstenite::WsStream<futures::io::Cursor<Vec<u8>>>) -> std::io::Result<()> {
    /// use futures::{AsyncReadExt, AsyncWriteExt};
    /// use tungstenite::protocol::frame::coding::CloseCode;
    ///
    /// let (mut reader, mut writer) = stream.into_split();
    /// let mut received = Vec::new();
    /// let (read, close) = futures::join!(reader.read_to_end(&mut received), async {
    ///     writer.write_all(b"request").await?;
    ///     writer.close_with(CloseCode::Library(4000), "done").await
    /// });
    /// # let _ = (read, close); Ok(()) }
    /// ```
    pub fn into_split(self) -> (ReadHalf<T>, WriteHalf<T>) {
        let shared = Arc::new(Mutex::new(self.core));
        let read = ReadHalf {
            shared: Arc::clone(&shared),
            chunk: Bytes::new(),
        };
        (read, WriteHalf { shared })
    }
}

/// The halves given to [`ReadHalf::reunite`] came from different streams; here they are back.
pub struct ReuniteError<T>(pub ReadHalf<T>, pub WriteHalf<T>);

impl<T> fmt::Debug for ReuniteError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<T> fmt::Display for ReuniteError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the halves belong to different streams")
    }
}

impl<T> std::error::Error for ReuniteError<T> {}

impl<T> ReadHalf<T> {
    /// Puts the halves back together.
    ///
    /// # Errors
    ///
    /// Gives both halves back if they come from different streams.
    pub fn reunite(self, write: WriteHalf<T>) -> Result<WsIo<T>, ReuniteError<T>> {
        if !Arc::ptr_eq(&self.shared, &write.shared) {
            return Err(ReuniteError(self, write));
        }
        let ReadHalf { shared, chunk } = self;
        drop(write);
        match Arc::try_unwrap(shared) {
            Ok(mutex) => {
                let mut core = mutex.into_inner().unwrap_or_else(PoisonError::into_inner);
                core.put_back_chunk(chunk);
                Ok(WsIo { core })
            }
            // Only the two halves hold the engine, and both are here.
            Err(shared) => Err(ReuniteError(
                ReadHalf {
                    shared: Arc::clone(&shared),
                    chunk,
                },
                WriteHalf { shared },
            )),
        }
    }

    /// A handle that closes the stream from another task: see [`WsIo::close_handle`].
    pub fn close_handle(&self) -> CloseHandle {
        lock(&self.shared).close_handle()
    }

    /// Whether `write` is the other half of this stream.
    pub fn is_pair_of(&self, write: &WriteHalf<T>) -> bool {
        Arc::ptr_eq(&self.shared, &write.shared)
    }
}

impl<T: Transport> WriteHalf<T> {
    /// Closes the connection with this code and reason: see [`WsIo::close_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`WsIo::close_with`]: cancel safe.
    ///
    /// # Errors
    ///
    /// As [`WsIo::close_with`].
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        lock(&self.shared).set_close_frame(code, reason)?;
        poll_fn(|cx| lock(&self.shared).poll_close(cx)).await
    }

    /// Sends a ping: see [`WsIo::send_ping`]. The read half reports the pong.
    ///
    /// # Cancel safety
    ///
    /// As [`WsIo::send_ping`]: cancel safe.
    ///
    /// # Errors
    ///
    /// As [`WsIo::send_ping`].
    pub async fn send_ping(&mut self, payload: Bytes) -> io::Result<()> {
        let (mut payload, mut ticket) = (Some(payload), None);
        poll_fn(|cx| lock(&self.shared).poll_ping(cx, &mut payload, &mut ticket)).await
    }
}

impl<T: Transport> ReadHalf<T> {
    /// `poll_read` for both trait families: the chunk handed out by `poll_fill_buf` first.
    pub(crate) fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        mut put: impl FnMut(&[u8]),
    ) -> Poll<io::Result<usize>> {
        if !self.chunk.is_empty() {
            let n = self.chunk.len().min(room);
            put(&self.chunk[..n]);
            self.chunk.advance(n);
            return Poll::Ready(Ok(n));
        }
        lock(&self.shared).poll_read_with(cx, room, put)
    }

    pub(crate) fn poll_fill_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        if self.chunk.is_empty() {
            self.chunk = ready!(lock(&self.shared).poll_take_chunk(cx))?;
        }
        Poll::Ready(Ok(&self.chunk))
    }

    pub(crate) fn consume_chunk(&mut self, amount: usize) {
        let amount = amount.min(self.chunk.len());
        self.chunk.advance(amount);
    }
}

impl<T> WriteHalf<T> {
    /// A handle that closes the stream from another task: see [`WsIo::close_handle`].
    pub fn close_handle(&self) -> CloseHandle {
        lock(&self.shared).close_handle()
    }

    pub(crate) fn lock_core(&self) -> MutexGuard<'_, Core<T>> {
        lock(&self.shared)
    }
}

/// Registers an observer on a shared engine. Pharos registers synchronously, so the future is
/// ready at once; the lock is not held past this call.
fn observe_shared<T>(
    shared: &Shared<T>,
    options: ObserveConfig<WsEvent>,
) -> Observe<'static, WsEvent, WsErr> {
    let observed = lock(shared).pharos().observe(options).now_or_never();
    let result = match observed {
        Some(Ok(events)) => Ok(events),
        Some(Err(_)) | None => Err(WsErr::Closed),
    };
    Box::pin(ready(result))
}

/// Observe the stream's [`WsEvent`]s from the read half.
impl<T> Observable<WsEvent> for ReadHalf<T> {
    type Error = WsErr;

    fn observe(&mut self, options: ObserveConfig<WsEvent>) -> Observe<'_, WsEvent, Self::Error> {
        observe_shared(&self.shared, options)
    }
}

/// Observe the stream's [`WsEvent`]s from the write half (the read half delivers them).
impl<T> Observable<WsEvent> for WriteHalf<T> {
    type Error = WsErr;

    fn observe(&mut self, options: ObserveConfig<WsEvent>) -> Observe<'_, WsEvent, Self::Error> {
        observe_shared(&self.shared, options)
    }
}

impl<T> fmt::Debug for ReadHalf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadHalf")
            .field("chunk", &self.chunk.len())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for WriteHalf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}
