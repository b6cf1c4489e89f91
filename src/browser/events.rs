//! Events waiting for the observers, and their delivery.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use futures_sink::Sink;
use pharos::Pharos;

use crate::WsEvent;

/// The queue in front of the observers. The browser side publishes a handful of events per
/// connection (no pings or pongs reach a page), so the queue stays a few entries long.
#[derive(Debug)]
pub(super) struct Events {
    queue: VecDeque<WsEvent>,
    pub(super) pharos: Pharos<WsEvent>,
    /// The observers' streams were ended after `Closed`.
    closed: bool,
}

impl Events {
    pub(super) fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            // No observer slots until someone observes.
            pharos: Pharos::new(0),
            closed: false,
        }
    }

    pub(super) fn push(&mut self, event: WsEvent) {
        self.queue.push_back(event);
    }

    /// Delivers the queued events; after `Closed` (`done`), ends the observers' streams.
    /// Events wait in the queue while an observer is full.
    pub(super) fn deliver(&mut self, cx: &mut Context<'_>, done: bool) {
        while let Some(event) = self.queue.front() {
            match Pin::new(&mut self.pharos).poll_ready(cx) {
                Poll::Pending => return,
                Poll::Ready(Ok(())) => {
                    let event = event.clone();
                    let _ = Pin::new(&mut self.pharos).start_send(event);
                }
                // Pharos is closed: nobody can observe any more.
                Poll::Ready(Err(_)) => {}
            }
            self.queue.pop_front();
        }
        if done && !self.closed && Pin::new(&mut self.pharos).poll_close(cx).is_ready() {
            self.closed = true;
        }
    }
}
