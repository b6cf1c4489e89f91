//! A transport wrapper whose read side can be broken on command: from then on reads fail with
//! the chosen `io::ErrorKind` (and the task waiting on a read is woken), while writes go on
//! to the inner transport untouched, so a writer waiting on a full transport is **not** woken
//! by the transport. The stream under test must wake it itself.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use futures::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Default)]
struct State {
    broken: Option<io::ErrorKind>,
    read_waker: Option<Waker>,
}

/// Breaks the read side of a [`Breakable`].
#[derive(Debug, Clone, Default)]
pub struct Breaker(Arc<Mutex<State>>);

impl Breaker {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// From now on reads fail with `kind`; wakes a pending read.
    pub fn break_reads(&self, kind: io::ErrorKind) {
        let waker = {
            let mut state = self.lock();
            state.broken = Some(kind);
            state.read_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Wraps a transport; see the module docs.
#[derive(Debug)]
pub struct Breakable<T> {
    inner: T,
    breaker: Breaker,
}

impl<T> Breakable<T> {
    pub fn new(inner: T) -> (Self, Breaker) {
        let breaker = Breaker::default();
        (
            Self {
                inner,
                breaker: breaker.clone(),
            },
            breaker,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Breakable<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        {
            let mut state = this.breaker.lock();
            if let Some(kind) = state.broken {
                return Poll::Ready(Err(io::Error::new(kind, "injected read fault")));
            }
            state.read_waker = Some(cx.waker().clone());
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Breakable<T> {
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
