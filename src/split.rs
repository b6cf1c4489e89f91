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
///
/// A task that prints the lines a server sends until it closes (`ReadHalf` is `AsyncBufRead`,
/// so `lines()` needs no `BufReader`):
///
/// ```
/// use futures::{AsyncBufReadExt, TryStreamExt};
/// use ws_stream_tungstenite::{
///     ReadHalf,
///     async_tungstenite::{WebSocketStream, tokio::ConnectStream},
/// };
///
/// async fn print_lines(reader: ReadHalf<WebSocketStream<ConnectStream>>) -> std::io::Result<()> {
///     let mut lines = reader.lines();
///     while let Some(line) = lines.try_next().await? {
///         println!("{line}");
///     }
///     Ok(()) // EOF: the server closed with 1000 or 1001
/// }
/// ```
pub struct ReadHalf<T> {
    shared: Shared<T>,
    /// The part of the current message handed out by `poll_fill_buf`.
    chunk: Bytes,
}

/// The write half of a [`WsIo`], from [`WsIo::into_split`]: `AsyncWrite` (futures and, with
/// `tokio_io`, tokio), [`close_with`](Self::close_with) and [`send_ping`](Self::send_ping).
///
/// A task that sends a heartbeat line and a ping every second, until told to stop, then closes
/// with 1000; the read half, read in another task, reports the round trips and completes the
/// close handshake:
///
/// ```
/// use std::time::Duration;
///
/// use futures::AsyncWriteExt;
/// use tokio::sync::oneshot;
/// use ws_stream_tungstenite::{
///     Bytes, CloseCode, WriteHalf,
///     async_tungstenite::{WebSocketStream, tokio::ConnectStream},
/// };
///
/// async fn heartbeat(
///     mut writer: WriteHalf<WebSocketStream<ConnectStream>>,
///     mut stop: oneshot::Receiver<()>,
/// ) -> std::io::Result<()> {
///     let mut ticks = tokio::time::interval(Duration::from_secs(1));
///     loop {
///         tokio::select! {
///             _ = ticks.tick() => {
///                 writer.write_all(b"still here\n").await?;
///                 writer.flush().await?;
///                 writer.send_ping(Bytes::from_static(b"rtt")).await?;
///             }
///             _ = &mut stop => break,
///         }
///     }
///     writer.close_with(CloseCode::Normal, "bye").await
/// }
/// ```
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
    /// A client that sends a request from one task and reads the answer in another, then
    /// closes with 1000 once it has read what it expects (a WebSocket has no half-close: closing
    /// right after the request would cut the answer off):
    ///
    /// ```
    /// use futures::{AsyncReadExt, AsyncWriteExt};
    /// use ws_stream_tungstenite::{WsStream, async_tungstenite::tokio::ConnectStream};
    ///
    /// async fn request(stream: WsStream<ConnectStream>) -> std::io::Result<Vec<u8>> {
    ///     let (mut reader, mut writer) = stream.into_split();
    ///     let reading = tokio::spawn(async move {
    ///         let mut answer = vec![0; 8];
    ///         reader.read_exact(&mut answer).await.map(|()| (reader, answer))
    ///     });
    ///     writer.write_all(b"request\n").await?;
    ///     writer.flush().await?;
    ///     let (mut reader, answer) = reading.await??;
    ///
    ///     writer.close().await?; // 1000: the peer reads EOF
    ///     reader.read_to_end(&mut Vec::new()).await?; // EOF: the handshake is complete
    ///     Ok(answer)
    /// }
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
    /// Puts the halves back together. Bytes that the read half had taken from a message but
    /// not handed out yet are kept.
    ///
    /// # Errors
    ///
    /// Gives both halves back if they come from different streams.
    ///
    /// ```
    /// use futures::{AsyncReadExt, AsyncWriteExt};
    /// use ws_stream_tungstenite::{WsStream, async_tungstenite::tokio::ConnectStream};
    ///
    /// async fn greet_then_close(stream: WsStream<ConnectStream>) -> std::io::Result<()> {
    ///     let (mut reader, mut writer) = stream.into_split();
    ///     let (greeting, sent) = futures::join!(
    ///         async {
    ///             let mut greeting = [0; 5];
    ///             reader.read_exact(&mut greeting).await.map(|()| greeting)
    ///         },
    ///         writer.write_all(b"hello"),
    ///     );
    ///     let (greeting, ()) = (greeting?, sent?);
    ///     println!("{}", String::from_utf8_lossy(&greeting));
    ///
    ///     // One stream again, for code that wants a single `AsyncRead + AsyncWrite`.
    ///     let mut stream = reader.reunite(writer).map_err(std::io::Error::other)?;
    ///     stream.close().await?;
    ///     stream.read_to_end(&mut Vec::new()).await?;
    ///     Ok(())
    /// }
    /// ```
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
            crate::copy::in_pieces(&self.chunk[..n], &mut put);
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
