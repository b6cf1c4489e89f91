//! The engine behind every IO trait family: one connection state, one drive step run by every
//! poll, the read path, then the write operations. No IO trait is named here.
//!
//! Each concern owns its fields: [`output`] the write buffer and our control frames,
//! [`keepalive`] the timers, [`events`] the observers. This file ties them together.

pub(crate) mod events;
mod keepalive;
mod output;

use std::{
    io::{self, IoSlice},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker, ready},
};

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use pharos::Pharos;
use tracing::debug;
use tungstenite::{
    Error as TungErr, Message, Utf8Bytes,
    protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
};

use self::{
    events::Events,
    keepalive::{Timers, Verdict},
    output::{Output, PingState},
};
use crate::{
    CloseHandle, Config, TextPolicy, Transport, WsErr, WsEvent,
    close_handle::{CloseRequest, close_frame},
};

/// Where the connection is. Every change goes through [`Core::set_phase`], which wakes both
/// sides.
#[derive(Debug)]
enum Phase {
    /// Data flows both ways.
    Open,
    /// We close: our close frame follows the buffered bytes out, and input is read until the
    /// peer answers. Writes are refused.
    Closing,
    /// The peer's close frame arrived (tungstenite answers it); `by_us`: ours went first.
    /// Bytes still buffered can no longer be sent.
    PeerClosed {
        frame: Option<CloseFrame>,
        by_us: bool,
    },
    /// The transport failed while we wrote (`err`): nothing is written any more, but what the
    /// peer sent before is still read, until the input ends (then `err`, unless the input
    /// fails first) or the close deadline passes.
    Broken { err: WsErr },
    /// Ends with `result` once the output settled (a close frame with the failure's code, if
    /// any, handed over, and the sink flushed) and, if `drain`, the input ended.
    Ending {
        result: Result<(), WsErr>,
        drain: bool,
    },
    /// Final. The transport is not polled again, neither for input nor for output.
    Done(Result<(), WsErr>),
}

/// The wakers of the two sides. The transport and the timers keep one waker each, but the read
/// side and the write side may live in different tasks: they are polled with a waker that
/// wakes both, so whoever waits gets to move things on.
///
/// The browser side uses the same pair.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    pub(crate) reader: AtomicWaker,
    pub(crate) writer: AtomicWaker,
    /// The transport's input returned `Pending` and has not woken us since, and we did not
    /// touch the transport since: polling it again would only find `Pending` once more (and
    /// costs tungstenite a zero-fill of its read buffer).
    input_quiet: AtomicBool,
}

impl Wakers {
    /// The transport may yield something new: its input is polled again.
    fn input_moved(&self) {
        self.input_quiet.store(false, Ordering::Release);
    }
}

/// The waker the transport's input is polled with: it notes that the input signalled, then
/// wakes the reader.
#[derive(Debug)]
struct InputWaker(Arc<Wakers>);

impl Wake for InputWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.input_moved();
        self.0.reader.wake();
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The sink is polled with this waker after the input was polled with the input waker.
        // A transport that keeps one waker for both directions (wakes whichever poll returned
        // `Pending` last, as many hand-made ones do) then wakes this one when input arrives:
        // the input must be polled again, or the reader never sees it. Costs nothing extra
        // under async-tungstenite, whose socket wakes the input waker along with this one; a
        // write waking the reader (`poll_write`) still skips the poll of a quiet input.
        self.input_moved();
        self.reader.wake();
        self.writer.wake();
    }
}

/// The engine: all state of a [`WsIo`](crate::WsIo), driven by the thin trait shells.
pub(crate) struct Core<T> {
    pub(crate) inner: T,
    config: Config,
    phase: Phase,
    /// The unread rest of the current message.
    rbuf: Bytes,
    out: Output,
    timers: Timers,
    events: Events,
    /// The close frame chosen with `close_with`, for the next `close`.
    close_frame: Option<CloseFrame>,
    /// Shared with the [`CloseHandle`]s, once one was made.
    close_request: Option<Arc<CloseRequest>>,
    wakers: Arc<Wakers>,
    /// Wakes both sides; every poll of the sink and of the timers uses it.
    both: Waker,
    /// Polls the transport's input (see [`InputWaker`]).
    input: Waker,
    /// A write operation put its waker into `wakers.writer` and no completed operation has
    /// taken it out since (it may have been woken and consumed meanwhile).
    writer_registered: bool,
}

impl<T> Core<T> {
    pub(crate) fn new(inner: T, config: Config, ws: Option<&WebSocketConfig>) -> Self {
        let wakers = Arc::new(Wakers::default());
        Self {
            inner,
            phase: Phase::Open,
            rbuf: Bytes::new(),
            out: Output::new(config.max_message_size, ws),
            timers: Timers::new(&config),
            events: Events::new(),
            close_frame: None,
            close_request: None,
            both: Waker::from(Arc::clone(&wakers)),
            input: Waker::from(Arc::new(InputWaker(Arc::clone(&wakers)))),
            wakers,
            config,
            writer_registered: false,
        }
    }

    pub(crate) fn pharos(&mut self) -> &mut Pharos<WsEvent> {
        &mut self.events.pharos
    }

    /// Gives back the unread part of a chunk taken with `poll_take_chunk`.
    pub(crate) fn put_back_chunk(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.rbuf = chunk;
        }
    }

    /// Nothing received is unread and nothing written is unsent.
    pub(crate) fn is_drained(&self) -> bool {
        self.rbuf.is_empty() && self.out.is_idle() && self.out.unsent() == 0
    }

    /// The transport, to use directly. Whoever polls it may take its wake-ups away from us: its
    /// input is polled again on the next read, whether or not it signalled.
    pub(crate) fn inner_mut(&mut self) -> &mut T {
        self.wakers.input_moved();
        &mut self.inner
    }

    /// Takes the transport out.
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The largest payload of one outgoing message, after the caps.
    pub(crate) fn max_message(&self) -> usize {
        self.out.max()
    }

    /// Bytes received and not read yet, bytes written and not handed to the transport yet.
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (self.rbuf.len(), self.out.unsent())
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match &self.phase {
            Phase::Open => "open",
            Phase::Closing => "closing",
            Phase::PeerClosed { .. } => "closed by peer",
            Phase::Broken { .. } => "broken",
            Phase::Ending { .. } => "ending",
            Phase::Done(Ok(())) => "closed",
            Phase::Done(Err(_)) => "failed",
        }
    }

    /// Sets the close frame that the next `close` sends.
    pub(crate) fn set_close_frame(&mut self, code: CloseCode, reason: &str) -> Result<(), WsErr> {
        self.close_frame = Some(close_frame(code, reason, self.out.control_max())?);
        Ok(())
    }

    /// A handle that closes this stream from anywhere.
    pub(crate) fn close_handle(&mut self) -> CloseHandle {
        let control_max = self.out.control_max();
        let request = self
            .close_request
            .get_or_insert_with(|| Arc::new(CloseRequest::new(control_max)));
        CloseHandle::new(Arc::clone(request), self.both.clone())
    }

    /// The error for an operation on a connection that no longer takes bytes.
    fn closed_err(&self) -> WsErr {
        match &self.phase {
            Phase::Broken { err: e }
            | Phase::Ending { result: Err(e), .. }
            | Phase::Done(Err(e)) => e.clone(),
            _ => WsErr::Closed,
        }
    }

    /// Writes are taken only while the connection is open.
    fn writable(&self) -> Result<(), WsErr> {
        match self.phase {
            Phase::Open => Ok(()),
            _ => Err(self.closed_err()),
        }
    }

    // ---------------------------------------------------------------------------------------
    // The connection state
    //
    // | from               | on                                        | to                     |
    // |--------------------|-------------------------------------------|------------------------|
    // | Open               | close / close_with                        | Closing, frame queued  |
    // | Open, Closing      | the peer's close frame                    | PeerClosed             |
    // | Open, Closing      | bad input (text, UTF-8, size, protocol)   | Ending(err), its frame |
    // | Open, Closing      | input ended or failed without a close     | Done(err)              |
    // | Open, Closing      | the sink failed                           | Broken(err)            |
    // | Broken             | input ended, failed or bad                | Done(err)              |
    // | PeerClosed         | input ended or failed                     | Ending(result), flush  |
    // | Ending             | frame handed, sink flushed, input drained | Done(result)           |
    // | Closing            | close deadline                            | Done(CloseTimeout)     |
    // | PeerClosed, Ending | close deadline                            | Done(result)           |
    // | Broken             | close deadline                            | Done(err)              |
    // | all but Done       | keepalive or send timeout                 | Done(TimedOut)         |
    // | PeerClosed, Ending | the sink failed                           | Done(result)           |
    //
    // Entering Closing, PeerClosed, Broken or Ending starts the close deadline; entering
    // PeerClosed strands the bytes still buffered (counted, reported by flush and close);
    // entering Broken or Done abandons the output (counted the same way); Done also stops the
    // timers and publishes `Closed`.
    // ---------------------------------------------------------------------------------------

    /// The one place the phase changes; wakes both sides, whoever waits on the new phase.
    fn set_phase(&mut self, next: Phase) {
        match &next {
            Phase::Open => {}
            Phase::Closing | Phase::Ending { .. } => self.timers.start_close(),
            Phase::PeerClosed { .. } => {
                self.out.strand();
                self.timers.start_close();
            }
            Phase::Broken { err } => {
                debug!("the transport failed while writing: {err}");
                self.out.abandon();
                self.timers.start_close();
            }
            Phase::Done(result) => {
                match result {
                    Ok(()) => debug!("WebSocket closed cleanly"),
                    Err(err) => debug!("WebSocket ended: {err}"),
                }
                self.out.abandon();
                self.timers.stop();
                self.events.push(WsEvent::Closed);
            }
        }
        self.phase = next;
        self.wakers.input_moved();
        self.wakers.reader.wake();
        self.wakers.writer.wake();
    }

    /// We close: our frame follows the buffered bytes out.
    fn start_close(&mut self, frame: CloseFrame) {
        debug!("closing the WebSocket with {frame:?}");
        self.out.queue_close(frame);
        self.set_phase(Phase::Closing);
    }

    /// Publishes the error that decides how the connection ends (once per error).
    fn publish(&mut self, err: &WsErr) {
        self.events.push(WsEvent::Error(Arc::new(err.clone())));
    }

    /// Ends the connection with `result`, published first when it is a new error.
    fn end(&mut self, result: Result<(), WsErr>) {
        if let Err(err) = &result {
            self.publish(err);
        }
        self.set_phase(Phase::Done(result));
    }

    /// Starts failing because of bad input: `err` is final, after the close frame with its
    /// code (unless ours is out already) followed the buffered bytes out.
    fn fail(&mut self, err: WsErr, drain: bool) {
        if let Phase::Broken { .. } = self.phase {
            // No close frame can go out: the error is final at once.
            return self.end(Err(err));
        }
        debug!("closing the WebSocket because of: {err}");
        self.publish(&err);
        if let Some(code) = err.close_code() {
            self.out.replace_close(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason_for(code)),
            });
        }
        self.rbuf = Bytes::new();
        self.set_phase(Phase::Ending {
            result: Err(err),
            drain,
        });
    }

    /// How the stream ends when the input ended now.
    fn end_result(&self) -> Result<(), WsErr> {
        match &self.phase {
            Phase::PeerClosed { by_us: true, .. } => Ok(()),
            Phase::PeerClosed { frame, .. } => match frame {
                Some(f) if !matches!(f.code, CloseCode::Normal | CloseCode::Away) => {
                    Err(WsErr::PeerClosed {
                        code: f.code,
                        reason: f.reason.as_str().to_owned(),
                    })
                }
                _ => Ok(()),
            },
            Phase::Ending { result, .. } | Phase::Done(result) => result.clone(),
            Phase::Broken { err } => Err(err.clone()),
            Phase::Open | Phase::Closing => Err(WsErr::ClosedWithoutHandshake),
        }
    }
}

impl<T: Transport> Core<T> {
    // ---------------------------------------------------------------------------------------
    // The drive step, run by every poll (read, fill_buf, write, flush, close, ping; on the
    // stream and on either half) before its own work, so that no concern waits for another
    // one's path (such as the transport returning `Pending` to the reader):
    //
    // 1. output, in priority order: our ping, the buffered bytes that are due, our close
    //    frame once they are out, a flush when one is due (tungstenite's pongs go with it);
    // 2. an ending that has settled becomes final;
    // 3. the timers: close deadline, send timeout, keepalive.
    //
    // Every sink and timer poll uses the waker of both sides. With nothing due and no timer
    // configured, this is a handful of branches.
    // ---------------------------------------------------------------------------------------

    fn drive(&mut self) {
        if let Some(frame) = self.close_request.as_ref().and_then(|r| r.take()) {
            if let Phase::Open = self.phase {
                self.start_close(frame);
            }
        }
        let mut both = Context::from_waker(&self.both);
        // Twice at most: a keepalive ping that fell due goes into the sink at once.
        for _ in 0..2 {
            match self.phase {
                Phase::Done(_) => return,
                // Only the timers: the transport is not written again.
                Phase::Broken { .. } => {}
                _ => match self.out.drive(&mut self.inner, &mut both) {
                    Ok(moved) => {
                        if moved.progress {
                            // tungstenite's input depends on its output too (once the answer
                            // to a close is out, it ends the input without a byte arriving).
                            self.wakers.input_moved();
                            self.timers.output_moved();
                        }
                        if let Some(ping) = moved.ping {
                            self.timers.ping_sent(ping);
                        }
                    }
                    Err(err) => return self.sink_failed(err),
                },
            }
            if let Phase::Ending { drain: false, .. } = self.phase {
                if self.out.is_settled() {
                    return self.finish_ending();
                }
            }
            if self.timers.is_idle() {
                // The common case (no keepalive, no send timeout, not closing): nothing to poll.
                return;
            }
            match self.timers.poll(&mut both, self.out.is_due()) {
                Verdict::Quiet => return,
                // After our close frame no ping may follow: the peer's answer is the sign of
                // life awaited, within the same timeout.
                Verdict::PingDue if !matches!(self.phase, Phase::Open) => return,
                Verdict::PingDue => {
                    if self
                        .out
                        .queue_ping(Bytes::from_static(b"keepalive"))
                        .is_none()
                    {
                        // A ping of the user's waits already; it will do.
                        return;
                    }
                }
                Verdict::CloseTimeout => return self.on_close_timeout(),
                Verdict::Dead(err) => return self.end(Err(err)),
            }
        }
    }

    /// The sink failed: the transport is not written again, but what the peer sent before is
    /// still read.
    fn sink_failed(&mut self, err: TungErr) {
        match self.phase {
            // The close handshake is done or the result decided: the rest is teardown.
            Phase::PeerClosed { .. } => {
                debug!("after the peer's close, the transport failed: {err}");
                self.end(self.end_result());
            }
            Phase::Ending { .. } => {
                debug!("while ending, the transport failed: {err}");
                self.finish_ending();
            }
            Phase::Open | Phase::Closing => {
                let err = match WsErr::from_tungstenite(err) {
                    WsErr::Closed => WsErr::ClosedWithoutHandshake,
                    other => other,
                };
                self.publish(&err);
                self.set_phase(Phase::Broken { err });
            }
            Phase::Broken { .. } | Phase::Done(_) => {}
        }
    }

    fn on_close_timeout(&mut self) {
        match self.phase {
            Phase::Closing => self.end(Err(WsErr::CloseTimeout)),
            // The close frames were exchanged, or the result decided: only teardown is late.
            Phase::PeerClosed { .. } => self.end(self.end_result()),
            Phase::Ending { .. } => self.finish_ending(),
            // Published when it broke.
            Phase::Broken { .. } => {
                let result = self.end_result();
                self.set_phase(Phase::Done(result));
            }
            Phase::Open | Phase::Done(_) => {}
        }
    }

    /// An ending becomes final; its error was published when it began.
    fn finish_ending(&mut self) {
        if let Phase::Ending { result, .. } = &self.phase {
            let result = result.clone();
            self.set_phase(Phase::Done(result));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Reading
    //
    // `poll_fill`, one `loop`, never recursion:
    //
    // | phase                    | condition                  | action                         |
    // |--------------------------|----------------------------|--------------------------------|
    // | any                      | unread bytes               | hand them out                  |
    // | any but Done             |                            | drive; push pending output out |
    // | any                      | events queued              | deliver; a full observer holds |
    // |                          |                            | back input (not the drive)     |
    // | Done                     |                            | EOF or the error, every time   |
    // | Ending, drain            | settled output             | read: note the peer's close,   |
    // |                          |                            | discard data, until the end    |
    // | Ending, no drain         |                            | wait for the drive             |
    // | any but Done, Ending     | input quiet (said Pending, | wait: it has nothing new       |
    // |   without drain          | no signal, no output since)|                                |
    // | Open, Closing            | Binary / accepted Text     | buffer it (empty ones skipped) |
    // | Open, Closing            | Ping / Pong                | event (tungstenite answers)    |
    // | Open, Closing            | Close                      | event               PeerClosed |
    // | Open, Closing            | rejected Text / bad input  | event, close code       Ending |
    // | Open, Closing            | input ended or failed      | EOF after a clean close,  Done |
    // | PeerClosed               | input ended or failed      | flush the answer        Ending |
    // ---------------------------------------------------------------------------------------

    /// Makes unread bytes available, or reaches the end (`Ok` with nothing buffered is EOF).
    /// Bytes already buffered are handed out without touching the reader's waker; otherwise
    /// it is registered for the wait, and released once this returns `Ready`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsErr>> {
        if !self.rbuf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.wakers.reader.register(cx.waker());
        let filled = ready!(self.fill_registered(cx));
        self.reader_served();
        Poll::Ready(filled)
    }

    /// `poll_fill` once the reader's waker for `cx` was registered in this operation, before
    /// anything below could signal: whatever happens from then on (the drive's sink and
    /// timers, output for us, a phase change, a signal of the input) wakes this task, whichever
    /// `Pending` this returns. A wake consumes the registration, but the task is then polled
    /// again and registers anew; so one registration serves every round, and every message of
    /// one `poll_read`. The caller releases it (`reader_served`) once it returns `Ready`.
    fn fill_registered(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsErr>> {
        if !self.rbuf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Release the spent message first: tungstenite can then reuse its read buffer instead
        // of allocating a new one.
        self.rbuf = Bytes::new();
        loop {
            if !(self.out.is_idle() && self.is_quiet()) {
                // A polled reader pushes out what was written: nobody else may be polling.
                self.out.want_flush();
                self.drive();
            }
            let done = matches!(self.phase, Phase::Done(_));
            if self.events.poll_deliver(cx, done).is_pending() && !self.timed_out() {
                // A full observer holds back input, and the end it decided; a timer's verdict
                // ends the reader anyway (the events stay queued).
                return Poll::Pending;
            }
            let drain = match &self.phase {
                Phase::Done(result) => return Poll::Ready(result.clone()),
                Phase::Ending { drain: false, .. } => return Poll::Pending,
                Phase::Ending { drain: true, .. } => true,
                Phase::Open | Phase::Closing | Phase::PeerClosed { .. } | Phase::Broken { .. } => {
                    false
                }
            };
            // The input said `Pending` and has not signalled since (registered above, so a
            // signal from now on wakes this task).
            if self.wakers.input_quiet.swap(true, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let polled = Pin::new(&mut self.inner).poll_next(&mut Context::from_waker(&self.input));
            let Poll::Ready(item) = polled else {
                return Poll::Pending;
            };
            // More may be buffered in the transport.
            self.wakers.input_moved();
            if drain {
                self.on_drained(item);
                continue;
            }
            match item {
                Some(Ok(msg)) => self.on_message(msg),
                Some(Err(err)) => self.on_error(err),
                None => self.input_ended(true),
            }
            if !self.rbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// The reader got what it waited for and is not parked any more: a write must not wake it
    /// (on one task, that is a wasted poll per message). It registers again when it waits.
    fn reader_served(&self) {
        drop(self.wakers.reader.take());
    }

    /// Nothing for the drive step to do: open, no output due, no timer running. Lets the hot
    /// paths (a write that fits, a read of the next message) skip it, and the waker
    /// registration that must precede it.
    fn is_quiet(&self) -> bool {
        matches!(self.phase, Phase::Open)
            && !self.out.is_due()
            && self.timers.is_idle()
            && !self.close_request.as_ref().is_some_and(|r| r.is_pending())
    }

    /// The connection ended because a timer ran out.
    fn timed_out(&self) -> bool {
        matches!(
            self.phase,
            Phase::Done(Err(WsErr::CloseTimeout
                | WsErr::KeepaliveTimeout
                | WsErr::SendTimeout))
        )
    }

    fn on_message(&mut self, msg: Message) {
        self.timers.peer_alive();
        match msg {
            Message::Binary(payload) => self.rbuf = payload,
            Message::Text(text) => match self.config.text_policy {
                TextPolicy::Accept => self.rbuf = Bytes::from(text),
                TextPolicy::Reject => self.fail(WsErr::ReceivedText, true),
            },
            Message::Ping(payload) => {
                // tungstenite queued the pong; it goes out with the next drive, even if the
                // reader then waits for a full observer. A broken transport takes nothing.
                if !matches!(self.phase, Phase::Broken { .. }) {
                    self.out.flush_answer();
                }
                self.events.push(WsEvent::Ping(payload));
            }
            Message::Pong(payload) => {
                let round_trip = self.timers.pong(&payload);
                self.events.push(WsEvent::Pong(payload));
                if let Some((payload, rtt)) = round_trip {
                    self.events.push(WsEvent::RoundTrip { payload, rtt });
                }
            }
            Message::Close(frame) if matches!(self.phase, Phase::Broken { .. }) => {
                // No answer can go out: the input's end decides.
                self.events.push(WsEvent::CloseFrame(frame));
            }
            Message::Close(frame) => {
                debug!("the peer sent a close frame: {frame:?}");
                self.events.push(WsEvent::CloseFrame(frame.clone()));
                // Ours went first only if it reached the sink: a frame still queued behind
                // buffered bytes never will, and the peer's close decides.
                let by_us = self.out.close_state().0;
                // tungstenite queues its answer; it leaves with the next flush.
                self.out.flush_answer();
                self.set_phase(Phase::PeerClosed { frame, by_us });
            }
            // tungstenite's reader never yields raw frames.
            Message::Frame(_) => {}
        }
    }

    /// The input ended. `writable`: the transport did not fail, so an answer to the peer's
    /// close may still go out.
    fn input_ended(&mut self, writable: bool) {
        let result = self.end_result();
        match self.phase {
            // EOF promises a complete handshake: our answer must reach the peer first.
            Phase::PeerClosed { .. } if writable => {
                if let Err(err) = &result {
                    self.publish(err);
                }
                self.out.flush_answer();
                self.set_phase(Phase::Ending {
                    result,
                    drain: false,
                });
            }
            // Its error was published when it broke.
            Phase::Broken { .. } => self.set_phase(Phase::Done(result)),
            _ => self.end(result),
        }
    }

    /// The one classification of an error from the input.
    fn on_error(&mut self, err: TungErr) {
        if matches!(self.phase, Phase::PeerClosed { .. }) {
            // The peer's close frame arrived: the stream is complete and that frame decides
            // how it ends; what the transport yields after it (trailing bytes, a reset) changes
            // nothing. tungstenite only reads past the close frame when its answer could not
            // be written at once, so without this the end would depend on the timing. A TLS
            // peer that drops TCP without `close_notify` (as tungstenite-based servers do)
            // makes rustls report `UnexpectedEof` here: no truncation of the byte stream.
            debug!("after the peer's close frame, ignoring: {err}");
            self.input_ended(!matches!(err, TungErr::Io(_)));
            return;
        }
        match WsErr::from_tungstenite(err) {
            // The write side broke first: that is the story.
            WsErr::Closed if matches!(self.phase, Phase::Broken { .. }) => self.input_ended(false),
            // The transport is still writable: tell the peer why. Its input is not readable
            // any more (tungstenite ends the stream after an error), so do not drain.
            err if err.close_code().is_some() => self.fail(err, false),
            // The transport says it is closed without telling why: that is a truncation.
            WsErr::Closed => self.end(Err(WsErr::ClosedWithoutHandshake)),
            err => self.end(Err(err)),
        }
    }

    /// Input while failing after bad input: not part of the stream, but the peer's close
    /// frame is noted.
    fn on_drained(&mut self, item: Option<Result<Message, TungErr>>) {
        match item {
            Some(Ok(Message::Close(frame))) => self.events.push(WsEvent::CloseFrame(frame)),
            Some(Ok(_)) => {}
            // The drive step that follows makes the ending final once the output settled.
            Some(Err(_)) | None => {
                if let Phase::Ending { drain, .. } = &mut self.phase {
                    *drain = false;
                }
            }
        }
    }

    /// `AsyncBufRead::poll_fill_buf`: the unread rest of the current message, without a copy.
    pub(crate) fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        ready!(self.poll_fill(cx))?;
        Poll::Ready(Ok(&self.rbuf))
    }

    /// The unread rest of the current message, taken out (empty at EOF): for a read half that
    /// keeps its own chunk, since nothing can be borrowed across a lock.
    pub(crate) fn poll_take_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        ready!(self.poll_fill(cx))?;
        Poll::Ready(Ok(std::mem::take(&mut self.rbuf)))
    }

    /// `AsyncBufRead::consume`. Consuming more than was handed out is clamped, not a panic.
    pub(crate) fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.rbuf.len());
        self.rbuf.advance(amount);
    }

    /// `AsyncRead::poll_read` for both trait families: copies up to `room` bytes into `put`,
    /// across as many buffered messages as are ready. Errors met after some bytes were copied
    /// are returned by the next call.
    pub(crate) fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        mut put: impl FnMut(&[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut copied = 0;
        // Registered once for the whole read, however many messages it copies, and only if it
        // needs more than is buffered.
        let mut registered = false;
        while copied < room {
            if self.rbuf.is_empty() && !registered {
                self.wakers.reader.register(cx.waker());
                registered = true;
            }
            match self.fill_registered(cx) {
                Poll::Ready(Ok(())) if self.rbuf.is_empty() => break,
                Poll::Ready(Ok(())) => {
                    let n = self.rbuf.len().min(room - copied);
                    crate::copy::in_pieces(&self.rbuf[..n], &mut put);
                    self.rbuf.advance(n);
                    copied += n;
                }
                Poll::Ready(Err(err)) if copied == 0 => return Poll::Ready(Err(err.into())),
                Poll::Pending if copied == 0 => return Poll::Pending,
                Poll::Pending | Poll::Ready(Err(_)) => break,
            }
        }
        if registered {
            // Returns with bytes (or the end): not parked.
            self.reader_served();
        }
        Poll::Ready(Ok(copied))
    }

    // ---------------------------------------------------------------------------------------
    // Writing. Each operation registers its waker, runs the drive step, then does its own
    // work; `Pending` only while the drive could not move what the operation waits for, and
    // the sink or a timer holds the waker of both sides.
    // ---------------------------------------------------------------------------------------

    /// `AsyncWrite::poll_write(_vectored)`: buffers what fits into the current message.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Register before any poll of the sink or a timer, which may wake at once.
        if !self.is_quiet() {
            self.register_writer(cx);
            self.drive();
        }
        self.writable()?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if self.out.is_full() {
            // Backpressure: the drive found the transport busy with the full message.
            return Poll::Pending;
        }
        let was_idle = self.out.is_idle();
        let taken = self.out.take(bufs);
        if self.out.is_full() {
            // Start moving a full message right away.
            self.register_writer(cx);
            self.drive();
        }
        if was_idle {
            // Output now waits for a flush: a parked reader pushes it out. While output is
            // pending, the reader either has been woken since it appeared or waits on the
            // transport with a waker that wakes it, so one wake per transition is enough.
            self.wakers.reader.wake();
        }
        Poll::Ready(Ok(taken))
    }

    fn register_writer(&mut self, cx: &Context<'_>) {
        self.wakers.writer.register(cx.waker());
        self.writer_registered = true;
    }

    /// A write operation that completed leaves no waker behind: the waker of both sides (which
    /// the transport keeps) would wake a writer that waits for nothing.
    fn writer_served<R>(&mut self, polled: &Poll<R>) {
        if polled.is_ready() && self.writer_registered {
            drop(self.wakers.writer.take());
            self.writer_registered = false;
        }
    }

    /// `AsyncWrite::poll_flush`: everything written reaches the transport and is flushed; an
    /// error if some of it never will.
    ///
    /// Most flushes complete at once, so the first attempt touches no waker. Only if it cannot
    /// complete is the waker registered and the attempt made again: whatever the first one set
    /// going (the sink and the timers hold the waker of both sides) and signalled before the
    /// registration is seen by the second, and whatever comes after it wakes this task.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut polled = self.flush_step();
        if polled.is_pending() {
            self.register_writer(cx);
            polled = self.flush_step();
        }
        self.writer_served(&polled);
        polled
    }

    fn flush_step(&mut self) -> Poll<io::Result<()>> {
        self.out.want_flush();
        self.drive();
        if self.out.lost() {
            return Poll::Ready(Err(self.closed_err().into()));
        }
        match self.phase {
            _ if self.out.is_idle() => Poll::Ready(Ok(())),
            // Nothing will be written any more: what is not confirmed now never will be.
            Phase::Broken { .. } | Phase::Done(_) => Poll::Ready(Err(self.closed_err().into())),
            _ => Poll::Pending,
        }
    }

    /// Sends a ping with this payload and flushes it, ahead of buffered bytes. `ticket` keeps
    /// the ping's place once it is queued, so a dropped future loses nothing: it still goes.
    pub(crate) fn poll_ping(
        &mut self,
        cx: &mut Context<'_>,
        payload: &mut Option<Bytes>,
        ticket: &mut Option<u64>,
    ) -> Poll<io::Result<()>> {
        let polled = self.ping_step(cx, payload, ticket);
        self.writer_served(&polled);
        polled
    }

    fn ping_step(
        &mut self,
        cx: &mut Context<'_>,
        payload: &mut Option<Bytes>,
        ticket: &mut Option<u64>,
    ) -> Poll<io::Result<()>> {
        self.register_writer(cx);
        self.drive();
        if ticket.is_none() {
            self.writable()?;
            if let Some(p) = payload.take() {
                if p.len() > self.out.control_max() {
                    return Poll::Ready(Err(WsErr::ControlTooLarge {
                        max: self.out.control_max(),
                    }
                    .into()));
                }
                if self.out.has_ping() {
                    // Another ping waits for the sink (which has our waker): ours goes next.
                    *payload = Some(p);
                    return Poll::Pending;
                }
                *ticket = self.out.queue_ping(p);
                self.drive();
            }
        }
        let Some(serial) = *ticket else {
            return Poll::Ready(Ok(()));
        };
        match self.out.ping_state(serial) {
            PingState::Sent => Poll::Ready(Ok(())),
            PingState::Refused => Poll::Ready(Err(self.closed_err().into())),
            // In the sink but never flushed: the connection ended first.
            PingState::Waiting if matches!(self.phase, Phase::Done(_) | Phase::Broken { .. }) => {
                Poll::Ready(Err(self.closed_err().into()))
            }
            PingState::Waiting => Poll::Pending,
        }
    }

    /// `AsyncWrite::poll_close`: our close frame (1000 unless chosen otherwise) follows every
    /// byte written, and is flushed. Reading on until EOF completes the handshake. `Ok` only
    /// if everything written went out, followed by the close frame (or the peer closed first
    /// and tungstenite's answer went out).
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = self.close_step(cx);
        self.writer_served(&polled);
        polled
    }

    fn close_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.register_writer(cx);
        if let Phase::Open = self.phase {
            let frame = self.close_frame.take().unwrap_or(CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::default(),
            });
            self.start_close(frame);
        }
        self.out.want_flush();
        self.drive();
        if self.out.lost() {
            return Poll::Ready(Err(self.closed_err().into()));
        }
        let (handed, flushed) = self.out.close_state();
        match &self.phase {
            _ if flushed => Poll::Ready(Ok(())),
            // Our frame went into the sink, but the connection ended before it was flushed.
            Phase::Done(_) if handed => Poll::Ready(Err(self.closed_err().into())),
            // The peer closed first: tungstenite answered, and the answer was flushed.
            Phase::PeerClosed { .. } | Phase::Done(Ok(())) if self.out.is_idle() => {
                Poll::Ready(Ok(()))
            }
            // No close frame can go out any more.
            Phase::Done(_) | Phase::Broken { .. } => Poll::Ready(Err(self.closed_err().into())),
            Phase::Open | Phase::Closing | Phase::PeerClosed { .. } | Phase::Ending { .. } => {
                Poll::Pending
            }
        }
    }
}

/// The reason sent with a close frame that this crate chose.
fn reason_for(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Unsupported => "only binary messages are supported",
        CloseCode::Invalid => "invalid UTF-8 in a text message",
        CloseCode::Size => "message too big",
        CloseCode::Protocol => "protocol error",
        _ => "",
    }
}
