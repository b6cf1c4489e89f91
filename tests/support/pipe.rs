//! An in-memory duplex transport with a fixed capacity per direction (writes return `Pending`
//! when it is full) and optional random chunking of reads and writes. Thread-safe, so the two
//! ends may live on different threads or runtimes.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use futures::io::{AsyncRead, AsyncWrite};

use super::rng::Rng;

/// One direction of the pipe.
#[derive(Debug, Default)]
struct Half {
    buf: VecDeque<u8>,
    capacity: usize,
    /// The writer closed (or was dropped): EOF after the buffered bytes.
    closed: bool,
    /// The reader was dropped: writes fail with `BrokenPipe`.
    reader_gone: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// Most bytes ever buffered at once.
    high_water: usize,
    /// Bytes ever written.
    total: usize,
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Half>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Half> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// One end of an in-memory pipe.
#[derive(Debug)]
pub struct End {
    incoming: Shared,
    outgoing: Shared,
    /// Largest read/write per poll, chosen at random in `1..=chunk` (0: unlimited).
    chunk: usize,
    rng: Rng,
}

/// Statistics of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub buffered: usize,
    pub high_water: usize,
    pub total: usize,
}

/// A pipe with `capacity` bytes per direction.
pub fn pipe(capacity: usize) -> (End, End) {
    pipe_chunked(capacity, 0, 0)
}

/// A pipe whose reads and writes move at most a random `1..=chunk` bytes per poll.
pub fn pipe_chunked(capacity: usize, chunk: usize, seed: u64) -> (End, End) {
    let a_to_b = Shared::default();
    let b_to_a = Shared::default();
    a_to_b.lock().capacity = capacity.max(1);
    b_to_a.lock().capacity = capacity.max(1);
    let a = End {
        incoming: b_to_a.clone(),
        outgoing: a_to_b.clone(),
        chunk,
        rng: Rng::new(seed),
    };
    let b = End {
        incoming: a_to_b,
        outgoing: b_to_a,
        chunk,
        rng: Rng::new(seed ^ 0x5555),
    };
    (a, b)
}

impl End {
    fn limit(&mut self, n: usize) -> usize {
        if self.chunk == 0 {
            n
        } else {
            n.min(self.rng.range(1, self.chunk))
        }
    }

    /// What this end sent and the peer has not read yet, and the high-water mark.
    pub fn outgoing_stats(&self) -> Stats {
        let half = self.outgoing.lock();
        Stats {
            buffered: half.buf.len(),
            high_water: half.high_water,
            total: half.total,
        }
    }

    /// What the peer sent to this end.
    pub fn incoming_stats(&self) -> Stats {
        let half = self.incoming.lock();
        Stats {
            buffered: half.buf.len(),
            high_water: half.high_water,
            total: half.total,
        }
    }

    /// A handle that can watch this end's outgoing direction after the end moved elsewhere.
    pub fn watch(&self) -> Watch {
        Watch(self.outgoing.clone())
    }
}

/// Watches one direction of a pipe.
#[derive(Debug, Clone)]
pub struct Watch(Shared);

impl Watch {
    pub fn stats(&self) -> Stats {
        let half = self.0.lock();
        Stats {
            buffered: half.buf.len(),
            high_water: half.high_water,
            total: half.total,
        }
    }
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let want = this.limit(buf.len());
        let mut half = this.incoming.lock();
        if half.buf.is_empty() {
            if half.closed {
                return Poll::Ready(Ok(0));
            }
            half.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = want.min(half.buf.len());
        for (dst, src) in buf.iter_mut().zip(half.buf.drain(..n)) {
            *dst = src;
        }
        if let Some(w) = half.write_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let want = this.limit(buf.len());
        let mut half = this.outgoing.lock();
        if half.reader_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if half.closed {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        let room = half.capacity - half.buf.len();
        if room == 0 {
            half.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = want.min(room);
        half.buf.extend(&buf[..n]);
        half.total += n;
        half.high_water = half.high_water.max(half.buf.len());
        if let Some(w) = half.read_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut half = self.outgoing.lock();
        half.closed = true;
        if let Some(w) = half.read_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        {
            let mut out = self.outgoing.lock();
            out.closed = true;
            if let Some(w) = out.read_waker.take() {
                w.wake();
            }
        }
        let mut inc = self.incoming.lock();
        inc.reader_gone = true;
        if let Some(w) = inc.write_waker.take() {
            w.wake();
        }
    }
}
