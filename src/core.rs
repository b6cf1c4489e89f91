//! The engine behind every IO trait family: one state machine, no IO trait named here.

use std::{
    collections::VecDeque,
    future::Future,
    io::{self, IoSlice},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker, ready},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use futures_timer::Delay;
use futures_util::task::AtomicWaker;
use pharos::Pharos;
use tracing::{debug, trace};
use tungstenite::{
    Error as TungErr, Message, Utf8Bytes,
    protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
};

use crate::{Config, TextPolicy, WsErr, WsEvent};

/// Any WebSocket of tungstenite 0.30 messages: a `Stream` of incoming messages and a `Sink` of
/// outgoing ones.
///
/// Implemented for every such type: async-tungstenite's `WebSocketStream`, tokio-tungstenite's
/// `WebSocketStream`, and anything else of the same shape. Nothing to implement by hand.
pub trait Transport:
    Stream<Item = Result<Message, TungErr>> + Sink<Message, Error = TungErr> + Unpin
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Message, TungErr>> + Sink<Message, Error = TungErr> + Unpin
{
}

/// The largest WebSocket frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
const MAX_FRAME_HEADER: usize = 14;

/// Where the read side is.
#[derive(Debug)]
enum ReadState {
    /// Binary payloads flow to the reader.
    Open,
    /// The peer broke the contract (or the transport failed in a way that still allows a close
    /// frame): `frame` is the close frame still to queue, then the transport is flushed, then,
    /// if `drain`, read until it ends (bounded by the close timeout), then `err` is final.
    Failing {
        err: WsErr,
        frame: Option<CloseFrame>,
        flushed: bool,
        drain: bool,
    },
    /// Final: EOF (`Ok`) or the error. The transport is never polled for input again.
    Done(Result<(), WsErr>),
}

/// Keepalive bookkeeping; present only when a ping interval is configured.
#[derive(Debug)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
    last_seen: Instant,
    /// When the unanswered keepalive ping went out.
    ping_sent: Option<Instant>,
    /// A keepalive ping is due but the transport was not ready for it.
    ping_due: bool,
    timer: Delay,
}

/// The wakers of the two sides. The transport only keeps one waker per direction, but the
/// read side and the write side may live in different tasks: output is polled with a waker
/// that wakes both, so whoever is waiting gets to push it on.
#[derive(Debug, Default)]
struct Wakers {
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.reader.wake();
        self.writer.wake();
    }
}

/// The write side: a coalescing buffer in front of the transport's sink.
#[derive(Debug)]
struct Output {
    buf: BytesMut,
    /// Largest payload of one outgoing message.
    max: usize,
    /// A message went into the sink since its last completed flush.
    unflushed: bool,
}

impl Output {
    fn is_idle(&self) -> bool {
        self.buf.is_empty() && !self.unflushed
    }

    /// Copies as much of `bufs` as fits into the buffer.
    fn take(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        let room = self.max.saturating_sub(self.buf.len());
        let mut taken = 0;
        for b in bufs {
            if taken == room {
                break;
            }
            let n = b.len().min(room - taken);
            // `reserve` also takes back the allocation of messages the sink has released.
            self.buf.reserve(n);
            self.buf.extend_from_slice(&b[..n]);
            taken += n;
        }
        taken
    }

    /// Hands the buffered bytes to the sink as one binary message.
    fn poll_send<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TungErr>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut *inner).poll_ready(cx))?;
        let payload = self.buf.split().freeze();
        Pin::new(inner).start_send(Message::Binary(payload))?;
        self.unflushed = true;
        Poll::Ready(Ok(()))
    }

    /// Sends the buffer and flushes the sink (always when `force`, else only when needed).
    fn poll_flush<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        force: bool,
    ) -> Poll<Result<(), TungErr>> {
        ready!(self.poll_send(inner, cx))?;
        if self.unflushed || force {
            ready!(Pin::new(inner).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// Progress of the close handshake.
#[derive(Debug, Default)]
struct Closing {
    /// The close frame the user chose for `poll_close` (default: 1000).
    frame: Option<CloseFrame>,
    /// We queued a close frame (ours, not an automatic reply).
    sent: bool,
    /// The peer's close frame, once it arrived.
    peer: Option<Option<CloseFrame>>,
    /// Running once a close frame was sent or received.
    deadline: Option<Delay>,
    /// The input ended after the peer's close frame, and tungstenite's answer to it may still
    /// sit in its write buffer (it does not wait for a busy transport): flush before EOF.
    answer_pending: bool,
}

impl Closing {
    fn start_deadline(&mut self, timeout: Option<Duration>) {
        if self.deadline.is_none() {
            self.deadline = timeout.map(Delay::new);
        }
    }
}

/// The engine: all state of a [`WsIo`](crate::WsIo), driven by the thin trait shells.
pub(crate) struct Core<T> {
    pub(crate) inner: T,
    config: Config,
    /// The unread rest of the current message.
    rbuf: Bytes,
    read: ReadState,
    /// Events waiting for the observers (bounded: at most a few are queued per message).
    events: VecDeque<WsEvent>,
    pub(crate) pharos: Pharos<WsEvent>,
    pharos_closed: bool,
    out: Output,
    /// A fatal error met while writing; writes keep returning it.
    write_err: Option<WsErr>,
    closing: Closing,
    keepalive: Option<Keepalive>,
    /// Pings we sent and their send time, to report round trips (bounded).
    pings: VecDeque<(Bytes, Instant)>,
    wakers: Arc<Wakers>,
    /// Wakes both sides; used for every poll of the sink.
    both: Waker,
}

impl<T> Core<T> {
    pub(crate) fn new(inner: T, config: Config, ws: Option<&WebSocketConfig>) -> Self {
        let mut max = config.max_message_size;
        if let Some(ws) = ws {
            // tungstenite refuses a frame when its write buffer plus the frame would pass
            // `max_write_buffer_size`; after `poll_ready` up to `write_buffer_size` bytes may
            // still be buffered, so one frame, header included, must fit in the difference.
            let room = ws
                .max_write_buffer_size
                .saturating_sub(ws.write_buffer_size)
                .saturating_sub(MAX_FRAME_HEADER);
            max = max.min(room).max(1);
        }
        let keepalive = config.ping_interval.map(|interval| Keepalive {
            interval,
            timeout: config.ping_timeout,
            last_seen: Instant::now(),
            ping_sent: None,
            ping_due: false,
            timer: Delay::new(interval),
        });
        let wakers = Arc::new(Wakers::default());
        Self {
            inner,
            config,
            rbuf: Bytes::new(),
            read: ReadState::Open,
            events: VecDeque::new(),
            // No observer slots until someone observes: idle connections stay small.
            pharos: Pharos::new(0),
            pharos_closed: false,
            out: Output {
                buf: BytesMut::new(),
                max,
                unflushed: false,
            },
            write_err: None,
            closing: Closing::default(),
            keepalive,
            pings: VecDeque::new(),
            both: Waker::from(Arc::clone(&wakers)),
            wakers,
        }
    }

    /// Gives back the unread part of a chunk taken with `poll_take_chunk`.
    pub(crate) fn put_back_chunk(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.rbuf = chunk;
        }
    }

    /// Nothing received is unread and nothing written is unsent.
    pub(crate) fn is_drained(&self) -> bool {
        self.rbuf.is_empty() && self.out.is_idle()
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
        self.out.max
    }

    /// Bytes received and not read yet, bytes written and not handed to the transport yet.
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (self.rbuf.len(), self.out.buf.len())
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match &self.read {
            ReadState::Open if self.closing.sent => "closing",
            ReadState::Open if self.closing.peer.is_some() => "closed by peer",
            ReadState::Open => "open",
            ReadState::Failing { .. } => "failing",
            ReadState::Done(Ok(())) => "closed",
            ReadState::Done(Err(_)) => "failed",
        }
    }

    /// Sets the close frame that the next `poll_close` sends.
    pub(crate) fn set_close_frame(&mut self, code: CloseCode, reason: &str) -> Result<(), WsErr> {
        let allowed = code.is_allowed() && u16::from(code) >= 1000;
        if !allowed {
            return Err(WsErr::InvalidCloseCode { code });
        }
        // A control frame carries at most 125 bytes: 2 for the code, 123 for the reason.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.closing.frame = Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.get(..end).unwrap_or_default()),
        });
        Ok(())
    }

    fn writable(&self) -> Result<(), WsErr> {
        if let Some(err) = &self.write_err {
            return Err(err.clone());
        }
        let open = matches!(self.read, ReadState::Open)
            && !self.closing.sent
            && self.closing.peer.is_none();
        if open { Ok(()) } else { Err(WsErr::Closed) }
    }

    fn emit(&mut self, event: WsEvent) {
        self.events.push_back(event);
    }

    fn start_deadline(&mut self) {
        self.closing.start_deadline(self.config.close_timeout);
    }

    /// Ends the read side for good.
    fn finish(&mut self, result: Result<(), WsErr>) {
        match &result {
            Ok(()) => debug!("WebSocket closed cleanly"),
            Err(err) => debug!("WebSocket ended: {err}"),
        }
        self.read = ReadState::Done(result);
        if !self.closing.answer_pending {
            self.closing.deadline = None;
        }
        self.keepalive = None;
        self.rbuf.clear();
        self.emit(WsEvent::Closed);
    }

    /// Ends the read side with `result`, publishing it first when it is an error (errors met
    /// while failing were published when failing began, and end through `finish`).
    fn end_with(&mut self, result: Result<(), WsErr>) {
        if let Err(err) = &result {
            self.emit(WsEvent::Error(Arc::new(err.clone())));
        }
        self.finish(result);
    }

    /// Whether the close deadline has passed (polling it registers the reader's waker).
    fn deadline_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.closing
            .deadline
            .as_mut()
            .is_some_and(|deadline| Pin::new(deadline).poll(cx).is_ready())
    }

    /// Starts failing: `err` is final, after the close frame (if any) went out.
    fn fail(&mut self, err: WsErr, drain: bool) {
        debug!("closing the WebSocket because of: {err}");
        self.emit(WsEvent::Error(Arc::new(err.clone())));
        // After a write error the transport is not written again: no close frame, no flush.
        let writable = self.write_err.is_none();
        let frame = err
            .close_code()
            .filter(|_| writable)
            .map(|code| CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason_for(code)),
            });
        self.read = ReadState::Failing {
            err,
            frame,
            flushed: !writable,
            drain,
        };
        self.rbuf.clear();
        self.start_deadline();
    }

    /// How the stream ends when the transport has ended after a close handshake.
    fn end_result(&self) -> Result<(), WsErr> {
        match &self.closing.peer {
            // The peer started the close: its code tells whether the stream is complete.
            Some(Some(frame)) if !self.closing.sent => match frame.code {
                CloseCode::Normal | CloseCode::Away => Ok(()),
                code => Err(WsErr::PeerClosed {
                    code,
                    reason: frame.reason.as_str().to_owned(),
                }),
            },
            Some(_) => Ok(()),
            None => Err(WsErr::ClosedWithoutHandshake),
        }
    }
}

impl<T: Transport> Core<T> {
    // ---------------------------------------------------------------------------------------
    // Reading
    //
    // State table of `poll_fill` (one `loop`, never recursion):
    //
    // | state   | condition                        | action                              | next    |
    // |---------|----------------------------------|-------------------------------------|---------|
    // | any     | unread bytes                     | hand them out                       | same    |
    // | any     | events queued                    | deliver (observers may push back)   | same    |
    // | Done    | answer to peer's close unsent    | flush it (bounded by close timeout) | Done    |
    // | Done    |                                  | EOF or the error, every time        | Done    |
    // | Failing | close frame not queued           | queue it (sink ready?)              | Failing |
    // | Failing | not flushed                      | flush                               | Failing |
    // | Failing | drain, transport has more        | discard data, note the peer's close | Failing |
    // | Failing | flushed (and drained) / timeout  | final error                         | Done    |
    // | Open    | Binary / accepted Text           | buffer it (empty ones are skipped)  | Open    |
    // | Open    | Ping / Pong / Close              | event; close starts the deadline    | Open    |
    // | Open    | rejected Text / bad input        | event, choose close code            | Failing |
    // | Open    | transport ended                  | EOF after a clean close, else error | Done    |
    // | Open    | transport pending                | flush output, keepalive, deadline   | same    |
    // ---------------------------------------------------------------------------------------

    /// Makes unread bytes available, or reaches the end (`Ok` with nothing buffered is EOF).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsErr>> {
        loop {
            if !self.rbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_events(cx));
            if self.closing.answer_pending && matches!(self.read, ReadState::Done(_)) {
                ready!(self.poll_close_answer(cx));
            }

            match &self.read {
                ReadState::Done(result) => return Poll::Ready(result.clone()),
                ReadState::Failing { .. } => {
                    ready!(self.poll_failing(cx));
                    continue;
                }
                ReadState::Open => {}
            }

            // Release the spent message first: tungstenite can then reuse its read buffer
            // instead of allocating a new one.
            self.rbuf = Bytes::new();
            if !self.out.buf.is_empty() && self.write_err.is_none() {
                // Hand written bytes to tungstenite before it may read the peer's close frame:
                // after that it refuses data, and bytes written before the close would be lost.
                let mut both = Context::from_waker(&self.both);
                if let Poll::Ready(Err(err)) = self.out.poll_send(&mut self.inner, &mut both) {
                    self.write_err = Some(WsErr::from_tungstenite(err));
                }
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => self.on_message(msg),
                Poll::Ready(Some(Err(err))) => self.on_error(err),
                Poll::Ready(None) => self.input_ended(true),
                Poll::Pending => ready!(self.park(cx)),
            }
        }
    }

    /// The reader waits for the peer: push pending output out first (nobody else may), and
    /// watch the timers. `Ready` means a timer changed the state.
    fn park(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.wakers.reader.register(cx.waker());
        if !self.out.is_idle() && self.write_err.is_none() {
            let mut both = Context::from_waker(&self.both);
            if let Poll::Ready(Err(err)) = self.out.poll_flush(&mut self.inner, &mut both, false) {
                // The reader will meet the same failure on the transport; the writer gets it now.
                self.write_err = Some(WsErr::from_tungstenite(err));
            }
        }
        if self.deadline_expired(cx) {
            self.on_close_timeout();
            return Poll::Ready(());
        }
        self.poll_keepalive(cx)
    }

    /// Flushes tungstenite's answer to the peer's close frame after the input ended; gives up
    /// when the transport fails or the close timeout runs out (the bytes are all read anyway).
    fn poll_close_answer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.wakers.reader.register(cx.waker());
        let mut both = Context::from_waker(&self.both);
        if Pin::new(&mut self.inner).poll_flush(&mut both).is_pending()
            && !self.deadline_expired(cx)
        {
            return Poll::Pending;
        }
        self.closing.answer_pending = false;
        self.closing.deadline = None;
        Poll::Ready(())
    }

    fn on_close_timeout(&mut self) {
        match std::mem::replace(&mut self.read, ReadState::Open) {
            ReadState::Failing { err, .. } => self.finish(Err(err)),
            // Both close frames were exchanged; only the transport's teardown is late.
            ReadState::Open if self.closing.peer.is_some() => self.end_with(self.end_result()),
            ReadState::Open => self.end_with(Err(WsErr::CloseTimeout)),
            done @ ReadState::Done(_) => self.read = done,
        }
    }

    /// Keepalive: ping a silent peer, declare it dead when the ping goes unanswered.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(ka) = &mut self.keepalive else {
            return Poll::Pending;
        };
        loop {
            if ka.ping_due && self.write_err.is_none() {
                let mut both = Context::from_waker(&self.both);
                match Pin::new(&mut self.inner).poll_ready(&mut both) {
                    Poll::Ready(Ok(())) => {
                        ka.ping_due = false;
                        let payload = Bytes::from_static(b"keepalive");
                        let sent =
                            Pin::new(&mut self.inner).start_send(Message::Ping(payload.clone()));
                        if sent.is_ok() {
                            trace!("keepalive ping");
                            remember_ping(&mut self.pings, payload);
                            let _ = Pin::new(&mut self.inner).poll_flush(&mut both);
                        }
                    }
                    Poll::Ready(Err(_)) => ka.ping_due = false,
                    Poll::Pending => {}
                }
            }
            if Pin::new(&mut ka.timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            match ka.ping_sent {
                Some(sent) if ka.last_seen < sent => {
                    debug!("keepalive: no frame from the peer since the ping; giving up");
                    self.end_with(Err(WsErr::KeepaliveTimeout));
                    return Poll::Ready(());
                }
                _ => {
                    let silent = now.saturating_duration_since(ka.last_seen);
                    if silent >= ka.interval {
                        ka.ping_sent = Some(now);
                        ka.ping_due = true;
                        ka.timer.reset(ka.timeout);
                    } else {
                        ka.ping_sent = None;
                        ka.timer.reset(ka.interval - silent);
                    }
                }
            }
        }
    }

    fn on_message(&mut self, msg: Message) {
        if let Some(ka) = &mut self.keepalive {
            ka.last_seen = Instant::now();
        }
        match msg {
            Message::Binary(payload) => self.rbuf = payload,
            Message::Text(text) => match self.config.text_policy {
                TextPolicy::Accept => self.rbuf = Bytes::from(text),
                TextPolicy::Reject => self.fail(WsErr::ReceivedText, true),
            },
            Message::Ping(payload) => self.emit(WsEvent::Ping(payload)),
            Message::Pong(payload) => {
                let answered = self.pings.iter().position(|(p, _)| *p == payload);
                self.emit(WsEvent::Pong(payload));
                if let Some(i) = answered {
                    // Pongs answer the latest ping with the same payload; older ones are lost.
                    let now = Instant::now();
                    let answered = self.pings.drain(..=i).next_back();
                    if let Some((payload, sent)) = answered {
                        let rtt = now.saturating_duration_since(sent);
                        self.emit(WsEvent::RoundTrip { payload, rtt });
                    }
                }
            }
            Message::Close(frame) => {
                debug!("the peer sent a close frame: {frame:?}");
                self.closing.peer = Some(frame.clone());
                self.emit(WsEvent::CloseFrame(frame));
                self.start_deadline();
            }
            // tungstenite's reader never yields raw frames.
            Message::Frame(_) => {}
        }
    }

    /// The input ended: the close handshake decides whether that is EOF. `writable`: the
    /// transport did not fail.
    fn input_ended(&mut self, writable: bool) {
        // EOF promises a complete handshake: our answer must reach the peer.
        self.closing.answer_pending = writable
            && self.closing.peer.is_some()
            && !self.closing.sent
            && self.write_err.is_none();
        self.end_with(self.end_result());
    }

    fn on_error(&mut self, err: TungErr) {
        if self.closing.peer.is_some() {
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
        let err = WsErr::from_tungstenite(err);
        if err.close_code().is_some() {
            // The transport is still writable: tell the peer why. Its input is not readable
            // any more (tungstenite ends the stream after an error), so do not drain.
            self.fail(err, false);
        } else {
            let err = match err {
                // The transport says it is closed without telling why: that is a truncation.
                WsErr::Closed => WsErr::ClosedWithoutHandshake,
                other => other,
            };
            self.end_with(Err(err));
        }
    }

    /// Drives a failing connection: close frame out, flushed, input drained, then final.
    fn poll_failing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Register before polling the sink: a transport may wake during the poll (tokio's
        // cooperative budget does), and that wake must reach this task, not an older waker.
        self.wakers.reader.register(cx.waker());
        loop {
            let ReadState::Failing {
                frame,
                flushed,
                drain,
                ..
            } = &mut self.read
            else {
                return Poll::Ready(());
            };
            let mut both = Context::from_waker(&self.both);
            let step = if frame.is_some() {
                if self.closing.sent || self.closing.peer.is_some() {
                    // A close frame went out already; tungstenite sends no second one.
                    *frame = None;
                    Poll::Ready(())
                } else {
                    match Pin::new(&mut self.inner).poll_ready(&mut both) {
                        Poll::Ready(Ok(())) => {
                            let close = Message::Close(frame.take());
                            if Pin::new(&mut self.inner).start_send(close).is_ok() {
                                self.closing.sent = true;
                            } else {
                                // The transport failed: it is not written again.
                                *flushed = true;
                                *drain = false;
                            }
                            Poll::Ready(())
                        }
                        Poll::Ready(Err(_)) => {
                            *frame = None;
                            *flushed = true;
                            *drain = false;
                            Poll::Ready(())
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
            } else if !*flushed {
                match Pin::new(&mut self.inner).poll_flush(&mut both) {
                    Poll::Ready(result) => {
                        *flushed = true;
                        *drain &= result.is_ok();
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            } else if *drain {
                match Pin::new(&mut self.inner).poll_next(cx) {
                    Poll::Ready(Some(Ok(Message::Close(peer)))) => {
                        self.closing.peer = Some(peer.clone());
                        self.events.push_back(WsEvent::CloseFrame(peer));
                        Poll::Ready(())
                    }
                    // Input after bad input is not part of the stream.
                    Poll::Ready(Some(Ok(_))) => Poll::Ready(()),
                    Poll::Ready(Some(Err(_)) | None) => {
                        *drain = false;
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            } else {
                if let ReadState::Failing { err, .. } =
                    std::mem::replace(&mut self.read, ReadState::Open)
                {
                    self.finish(Err(err));
                }
                return Poll::Ready(());
            };
            if step.is_pending() {
                if self.deadline_expired(cx) {
                    self.on_close_timeout();
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
        }
    }

    /// Delivers queued events to the observers; closes them after `Closed`.
    fn poll_events(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(event) = self.events.front() {
            match Pin::new(&mut self.pharos).poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    let event = event.clone();
                    let _ = Pin::new(&mut self.pharos).start_send(event);
                }
                // Pharos is closed: nobody can observe any more.
                Poll::Ready(Err(_)) => {}
            }
            self.events.pop_front();
        }
        if !self.pharos_closed && matches!(self.read, ReadState::Done(_)) {
            // Ends the observers' streams, so `while let Some(event)` loops finish.
            if Pin::new(&mut self.pharos).poll_close(cx).is_pending() {
                return Poll::Pending;
            }
            self.pharos_closed = true;
        }
        Poll::Ready(())
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
        while copied < room {
            match self.poll_fill(cx) {
                Poll::Ready(Ok(())) if self.rbuf.is_empty() => break,
                Poll::Ready(Ok(())) => {
                    let n = self.rbuf.len().min(room - copied);
                    put(&self.rbuf[..n]);
                    self.rbuf.advance(n);
                    copied += n;
                }
                Poll::Ready(Err(err)) if copied == 0 => return Poll::Ready(Err(err.into())),
                Poll::Pending if copied == 0 => return Poll::Pending,
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(copied))
    }

    // ---------------------------------------------------------------------------------------
    // Writing
    // ---------------------------------------------------------------------------------------

    /// `AsyncWrite::poll_write(_vectored)`: buffers what fits into the current message.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writable()?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        let was_idle = self.out.is_idle();
        if self.out.buf.len() >= self.out.max {
            // Backpressure: the transport must take the full message first.
            self.wakers.writer.register(cx.waker());
            let mut both = Context::from_waker(&self.both);
            if let Err(err) = ready!(self.out.poll_send(&mut self.inner, &mut both)) {
                return Poll::Ready(Err(self.write_failed(err).into()));
            }
        }
        let taken = self.out.take(bufs);
        if self.out.buf.len() >= self.out.max {
            // Start moving a full message right away; if the sink is busy, the next write or
            // the reader will.
            let mut both = Context::from_waker(&self.both);
            if let Poll::Ready(Err(err)) = self.out.poll_send(&mut self.inner, &mut both) {
                self.write_failed(err);
            }
        }
        if was_idle {
            // Output now waits for a flush: a parked reader pushes it out. While output is
            // pending, the reader either has been woken since it appeared or waits on the
            // transport with a waker that wakes it, so one wake per transition is enough.
            self.wakers.reader.wake();
        }
        Poll::Ready(Ok(taken))
    }

    fn write_failed(&mut self, err: TungErr) -> WsErr {
        let err = WsErr::from_tungstenite(err);
        self.write_err = Some(err.clone());
        err
    }

    /// `AsyncWrite::poll_flush`: everything written reaches the transport and is flushed.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(err) = self.writable() {
            // Nothing to flush is fine; stranded bytes are reported, never dropped silently.
            if !self.out.buf.is_empty() || (self.write_err.is_some() && self.out.unflushed) {
                return Poll::Ready(Err(err.into()));
            }
            if !self.out.unflushed {
                return Poll::Ready(Ok(()));
            }
            // A message went into the sink before the connection closed, unflushed: it may
            // still go out (the transport can be writable after the input ended). Flush it.
        }
        self.wakers.writer.register(cx.waker());
        let mut both = Context::from_waker(&self.both);
        match ready!(self.out.poll_flush(&mut self.inner, &mut both, true)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(self.write_failed(err).into())),
        }
    }

    /// Sends a ping with this payload (at most 125 bytes) and flushes it, ahead of buffered
    /// bytes that were not handed to the transport yet.
    pub(crate) fn poll_ping(
        &mut self,
        cx: &mut Context<'_>,
        payload: &mut Option<Bytes>,
    ) -> Poll<io::Result<()>> {
        self.writable()?;
        self.wakers.writer.register(cx.waker());
        let mut both = Context::from_waker(&self.both);
        if let Some(p) = payload.take() {
            if p.len() > 125 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a ping payload carries at most 125 bytes",
                )));
            }
            if let Poll::Ready(result) = Pin::new(&mut self.inner).poll_ready(&mut both) {
                if let Err(err) = result
                    .and_then(|()| Pin::new(&mut self.inner).start_send(Message::Ping(p.clone())))
                {
                    return Poll::Ready(Err(self.write_failed(err).into()));
                }
                remember_ping(&mut self.pings, p);
            } else {
                *payload = Some(p);
                return Poll::Pending;
            }
        }
        match ready!(Pin::new(&mut self.inner).poll_flush(&mut both)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(self.write_failed(err).into())),
        }
    }

    /// `AsyncWrite::poll_close`: flush, send the close frame (1000 unless chosen otherwise),
    /// flush it. Reading on until EOF completes the handshake.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if matches!(self.read, ReadState::Done(_) | ReadState::Failing { .. }) {
            return Poll::Ready(Ok(()));
        }
        self.wakers.writer.register(cx.waker());
        let mut both = Context::from_waker(&self.both);
        if !self.closing.sent && self.closing.peer.is_none() && self.write_err.is_none() {
            if let Err(err) = ready!(self.out.poll_flush(&mut self.inner, &mut both, false)) {
                return Poll::Ready(Err(self.write_failed(err).into()));
            }
            if let Err(err) = ready!(Pin::new(&mut self.inner).poll_ready(&mut both)) {
                return Poll::Ready(Err(self.write_failed(err).into()));
            }
            let frame = self.closing.frame.take().unwrap_or(CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::default(),
            });
            debug!("closing the WebSocket with {frame:?}");
            if let Err(err) = Pin::new(&mut self.inner).start_send(Message::Close(Some(frame))) {
                return Poll::Ready(Err(self.write_failed(err).into()));
            }
            self.closing.sent = true;
            self.closing.start_deadline(self.config.close_timeout);
            // The reader watches the deadline; make sure a parked one learns about it.
            self.wakers.reader.wake();
        }
        if let Some(err) = &self.write_err {
            return Poll::Ready(Err(err.clone().into()));
        }
        match ready!(Pin::new(&mut self.inner).poll_flush(&mut both)) {
            // Flushing may finish the handshake, after which the transport reports closed.
            Ok(()) | Err(TungErr::ConnectionClosed | TungErr::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(self.write_failed(err).into())),
        }
    }
}

/// Remembers a ping for the round-trip report; keeps the 16 most recent.
fn remember_ping(pings: &mut VecDeque<(Bytes, Instant)>, payload: Bytes) {
    if pings.len() == 16 {
        pings.pop_front();
    }
    pings.push_back((payload, Instant::now()));
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
