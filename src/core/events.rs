//! Events waiting for the observers, and their delivery.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use futures_sink::Sink;
use pharos::Pharos;

use crate::WsEvent;

/// The queue in front of the observers (bounded: a few events per message read, and the
/// reader stops reading while observers push back). The browser side uses it too.
#[derive(Debug)]
pub(crate) struct Events {
    queue: VecDeque<WsEvent>,
    pub(crate) pharos: Pharos<WsEvent>,
    /// The observers' streams were ended after `Closed`.
    closed: bool,
}

impl Events {
    pub(crate) fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            // No observer slots until someone observes: idle connections stay small.
            pharos: Pharos::new(0),
            closed: false,
        }
    }

    pub(crate) fn push(&mut self, event: WsEvent) {
        self.queue.push_back(event);
    }

    /// Delivers the queued events; after `Closed` (`done`), ends the observers' streams so
    /// that `while let Some(event)` loops finish. `Pending` while an observer is full.
    #[inline]
    pub(crate) fn poll_deliver(&mut self, cx: &mut Context<'_>, done: bool) -> Poll<()> {
        if self.queue.is_empty() && (self.closed || !done) {
            // The common case of every read: nothing to deliver.
            return Poll::Ready(());
        }
        self.deliver(cx, done)
    }

    fn deliver(&mut self, cx: &mut Context<'_>, done: bool) -> Poll<()> {
        while let Some(event) = self.queue.front() {
            match Pin::new(&mut self.pharos).poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    let event = event.clone();
                    let _ = Pin::new(&mut self.pharos).start_send(event);
                }
                // Pharos is closed: nobody can observe any more.
                Poll::Ready(Err(_)) => {}
            }
            self.queue.pop_front();
        }
        if done && !self.closed {
            if Pin::new(&mut self.pharos).poll_close(cx).is_pending() {
                return Poll::Pending;
            }
            self.closed = true;
        }
        Poll::Ready(())
    }
}
