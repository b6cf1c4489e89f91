//! A message-level [`Transport`](ws_stream_tungstenite::Transport) with separate wakers per
//! direction, driven by the test: its sink takes a number of messages and then is never ready
//! again (a peer that stopped reading), and its stream yields what the test pushes (messages,
//! errors, the end), waking only the task that waits for input.
//!
//! async-tungstenite wakes both directions whenever the socket wakes either; a transport that
//! does not lets a test tell "the stream woke its writer" from "the transport happened to".

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use futures::{Sink, Stream};
use tungstenite::{Error as TungErr, Message};

#[derive(Debug, Default)]
struct State {
    incoming: VecDeque<Result<Message, TungErr>>,
    ended: bool,
    read_waker: Option<Waker>,
    /// Messages the sink still takes before it is stuck.
    budget: usize,
    sent: Vec<Message>,
    write_waker: Option<Waker>,
}

/// The test's handle on a [`StuckTransport`].
#[derive(Debug, Clone, Default)]
pub struct StuckCtl(Arc<Mutex<State>>);

impl StuckCtl {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn wake_reader(&self, f: impl FnOnce(&mut State)) {
        let waker = {
            let mut state = self.lock();
            f(&mut state);
            state.read_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The stream yields this next (wakes only the reading task).
    pub fn push(&self, item: Result<Message, TungErr>) {
        self.wake_reader(|s| s.incoming.push_back(item));
    }

    /// The stream ends after what was pushed (wakes only the reading task).
    pub fn end(&self) {
        self.wake_reader(|s| s.ended = true);
    }

    /// Messages the sink took.
    pub fn sent(&self) -> Vec<Message> {
        self.lock().sent.clone()
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct StuckTransport {
    ctl: StuckCtl,
}

impl StuckTransport {
    /// A transport whose sink takes `budget` messages, then is stuck.
    pub fn new(budget: usize) -> (Self, StuckCtl) {
        let ctl = StuckCtl::default();
        ctl.lock().budget = budget;
        (Self { ctl: ctl.clone() }, ctl)
    }
}

impl Stream for StuckTransport {
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.ctl.lock();
        if let Some(item) = state.incoming.pop_front() {
            return Poll::Ready(Some(item));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        state.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Sink<Message> for StuckTransport {
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        let mut state = self.ctl.lock();
        if state.budget > 0 {
            return Poll::Ready(Ok(()));
        }
        state.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), TungErr> {
        let mut state = self.ctl.lock();
        state.budget = state.budget.saturating_sub(1);
        state.sent.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        self.poll_ready(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        self.poll_ready(cx)
    }
}
