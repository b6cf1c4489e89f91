//! [`BrowserStream`]: the connection state, the read path, the write path and the trait impls.

use std::{
    fmt,
    future::{Future, poll_fn},
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker, ready},
    time::Duration,
};

use bytes::{Buf, Bytes};
use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};
use gloo_timers::future::TimeoutFuture;
use pharos::{Observable, Observe, ObserveConfig};
use tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

use super::socket::{ABNORMAL_CODE, CloseInfo, Socket};
use crate::{
    Config, WsErr, WsEvent,
    core::{Wakers, events::Events},
};

/// How long the socket must stay open after the browser's send buffer drained before a flush
/// counts the bytes as delivered.
///
/// Chromium lowers `bufferedAmount` once a message is handed to its network process; a message
/// that reaches the network process after it saw the peer's close frame is dropped, yet
/// `bufferedAmount` returns to 0 all the same. The network process then tells the page, which
/// sets `readyState` to `CLOSING`. Finding the socket still open this long after the drain
/// covers the time that notice takes. Measured with `tests/browser` (the peer closing with 1011
/// at random points while the page writes and flushes as fast as it can, 120 rounds): no
/// confirmed byte was lost with this margin, nor without it; the margin stays for slower
/// machines. It is also the least a flush costs.
const SETTLE: Duration = Duration::from_millis(10);

/// The re-check of `bufferedAmount` (browsers fire no event when it drops) starts this soon and
/// backs off while the buffer does not move, up to `RECHECK_MAX`.
const RECHECK_MIN_MS: u32 = 1;
const RECHECK_MAX_MS: u32 = 16;

/// Where the connection is. Every change goes through [`BrowserStream::set_state`], which
/// wakes both sides.
#[derive(Debug)]
enum State {
    /// Waiting for the open event (only inside `connect`).
    Connecting,
    /// Data flows both ways.
    Open,
    /// `close` was called: what was written is confirmed first (`frame_sent: false`), then
    /// `WebSocket.close` sends our close frame; the close event ends it. Writes are refused.
    Closing {
        code: u16,
        reason: String,
        frame_sent: bool,
    },
    /// We closed the socket because of the peer's input (text under `TextPolicy::Reject`): the
    /// reader gets what came before, then `err`; the close event ends it.
    Failing(WsErr),
    /// Final: the close event arrived or the close deadline passed.
    Done(Result<(), WsErr>),
}

/// The write side: the message being gathered and what the browser has not confirmed yet.
struct Output {
    /// Small writes gathered into one message, at most `max` bytes.
    buf: Vec<u8>,
    max: usize,
    high_water: usize,
    /// Bytes handed to `WebSocket.send` since the start.
    sent: u64,
    /// Of those, the bytes a flush confirmed as delivered.
    confirmed: u64,
    /// A flush or close wants `buf` to go now, not only when it is full.
    flush_wanted: bool,
    /// The send buffer drained with `sent` at the mark; the socket must stay open until the
    /// timer fires for the bytes up to the mark to count as delivered.
    settling: Option<(u64, TimeoutFuture)>,
    /// The next look at `bufferedAmount`, while a write or flush waits for it to drop.
    recheck: Option<TimeoutFuture>,
    /// The delay of the next re-check, and the amount seen at the last one: the delay backs
    /// off while the amount does not move.
    recheck_ms: u32,
    last_buffered: usize,
    /// The connection ended while bytes were not confirmed: they may be lost, and every later
    /// flush or close says so.
    lost: bool,
}

impl Output {
    fn new(config: &Config) -> Self {
        Self {
            buf: Vec::new(),
            max: config.max_message_size,
            high_water: config.browser_high_water,
            sent: 0,
            confirmed: 0,
            flush_wanted: false,
            settling: None,
            recheck: None,
            recheck_ms: RECHECK_MIN_MS,
            last_buffered: 0,
            lost: false,
        }
    }

    /// Bytes written that no flush confirmed yet, gathered ones included.
    fn unconfirmed(&self) -> u64 {
        (self.sent - self.confirmed) + self.buf.len() as u64
    }

    /// Whether the browser may take another message: `bufferedAmount` below the high-water
    /// mark. Otherwise a re-check is armed, which wakes both sides.
    fn has_room(&mut self, socket: &Socket, both: &Waker) -> bool {
        let buffered = socket.buffered_amount();
        if buffered < self.high_water {
            return true;
        }
        self.wait_for_drain(buffered, both);
        false
    }

    /// Arms the re-check of `bufferedAmount` (a timer: browsers fire no event when it drops).
    fn wait_for_drain(&mut self, buffered: usize, both: &Waker) {
        if buffered != self.last_buffered {
            self.last_buffered = buffered;
            self.recheck_ms = RECHECK_MIN_MS;
        }
        if self.recheck.is_none() {
            self.recheck = Some(TimeoutFuture::new(self.recheck_ms));
            self.recheck_ms = (self.recheck_ms * 2).min(RECHECK_MAX_MS);
        }
        if let Some(timer) = &mut self.recheck {
            if Pin::new(timer)
                .poll(&mut Context::from_waker(both))
                .is_ready()
            {
                self.recheck = None;
                both.wake_by_ref();
            }
        }
    }
}

/// A browser WebSocket as a duplex byte stream: futures-io [`AsyncRead`], [`AsyncBufRead`]
/// and [`AsyncWrite`], with the same contract as the native [`WsStream`](crate::WsStream) as
/// far as a browser allows. See the [module docs](super) for the contract and its limits.
///
/// `Unpin`, not `Send` (browser objects live on one thread). Split it with
/// [`futures::AsyncReadExt::split`](https://docs.rs/futures/latest/futures/io/trait.AsyncReadExt.html#method.split)
/// to read and write from two tasks.
///
/// ```no_run
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// use ws_stream_tungstenite::browser::BrowserStream;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut stream = BrowserStream::connect("ws://127.0.0.1:9001/").await?;
/// stream.write_all(b"hello").await?;
/// stream.flush().await?; // Ok: the bytes left the browser while the socket was open
/// let mut reply = [0; 5];
/// stream.read_exact(&mut reply).await?;
/// stream.close().await?; // flushes, sends close 1000, waits for the close event
/// # Ok(()) }
/// ```
pub struct BrowserStream {
    socket: Socket,
    config: Config,
    state: State,
    /// The open event was seen.
    opened: bool,
    /// The unread rest of the current message.
    rbuf: Bytes,
    out: Output,
    /// The close handshake must finish by then: runs from `close`, from the peer's close, or
    /// from our close because of bad input.
    deadline: Option<TimeoutFuture>,
    /// The close frame chosen with `close_with`, for the next `close`.
    close_frame: Option<(u16, String)>,
    events: Events,
    wakers: Arc<Wakers>,
    /// Wakes both sides; every timer is polled with it.
    both: Waker,
}

impl BrowserStream {
    /// Opens a WebSocket to `url` with the default [`Config`] and waits until it is open.
    ///
    /// # Errors
    ///
    /// [`WsErr::InvalidUrl`] for a URL the browser refuses, [`WsErr::ConnectFailed`] when the
    /// connection or the handshake failed (browsers do not tell which).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the socket being opened.
    pub async fn connect(url: &str) -> Result<Self, WsErr> {
        Self::connect_with(url, Config::default()).await
    }

    /// Opens a WebSocket to `url` with `config` and waits until it is open.
    ///
    /// Of the [`Config`], the browser side uses `max_message_size`, `text_policy`,
    /// `close_timeout` and `browser_high_water`. Keepalive (`ping_interval`, `ping_timeout`)
    /// does not apply: a page cannot send pings; and a stalled upload is not declared dead
    /// (`send_timeout`): put a timer around writes if you need one.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ws_stream_tungstenite::{Config, browser::BrowserStream};
    ///
    /// # async fn demo() -> Result<(), ws_stream_tungstenite::WsErr> {
    /// let config = Config::default()
    ///     .browser_high_water(256 * 1024)
    ///     .close_timeout(Some(Duration::from_secs(3)));
    /// let stream = BrowserStream::connect_with("wss://example.com/socket", config).await?;
    /// # drop(stream); Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the socket being opened.
    pub async fn connect_with(url: &str, config: Config) -> Result<Self, WsErr> {
        let wakers = Arc::new(Wakers::default());
        let socket = Socket::open(url, config.text_policy, &wakers)?;
        let mut stream = Self {
            socket,
            out: Output::new(&config),
            config,
            state: State::Connecting,
            opened: false,
            rbuf: Bytes::new(),
            deadline: None,
            close_frame: None,
            events: Events::new(),
            both: Waker::from(Arc::clone(&wakers)),
            wakers,
        };
        poll_fn(|cx| stream.poll_open(cx)).await?;
        Ok(stream)
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The URL of the WebSocket, as the browser resolved it.
    pub fn url(&self) -> String {
        self.socket.url()
    }

    /// The socket's `bufferedAmount`: bytes handed to the browser that it did not pass on to
    /// the network yet. Writes wait while it is at or above
    /// [`Config::browser_high_water`], so it stays below that plus one message.
    pub fn buffered_amount(&self) -> usize {
        self.socket.buffered_amount()
    }

    /// Closes the connection with this close code and reason, after confirming what was
    /// written (as [`flush`](https://docs.rs/futures/latest/futures/io/trait.AsyncWriteExt.html#method.flush)
    /// does), and waits for the browser's close event.
    ///
    /// A page may send only 1000 and 3000–4999. The reason is cut to the 123 bytes a close
    /// frame can carry (at a character boundary). If the close is already under way, this
    /// only waits for it.
    ///
    /// ```no_run
    /// # async fn demo(mut stream: ws_stream_tungstenite::browser::BrowserStream) -> std::io::Result<()> {
    /// use tungstenite::protocol::frame::coding::CloseCode;
    ///
    /// stream.close_with(CloseCode::Library(4000), "bye").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`WsErr::InvalidCloseCode`] (`InvalidInput`, nothing changes) for a code a page may not
    /// send; otherwise those of `close`: the connection's error when bytes written may not
    /// have arrived (the peer closed first, the connection broke), `TimedOut` when the close
    /// did not complete within [`Config::close_timeout`], `NotConnected` after the end.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once polled, the close is under way; the close deadline keeps running, and
    /// any later poll of the stream moves it on. Call `close` again to learn the outcome.
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        let raw = u16::from(code);
        if raw != 1000 && !(3000..=4999).contains(&raw) {
            return Err(WsErr::InvalidCloseCode { code }.into());
        }
        if let State::Open = self.state {
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            self.close_frame = Some((raw, reason.get(..end).unwrap_or_default().to_owned()));
        }
        poll_fn(|cx| self.poll_close_inner(cx)).await
    }

    // ---------------------------------------------------------------------------------------
    // The connection state
    //
    // | from                     | on                                        | to                        |
    // |--------------------------|-------------------------------------------|---------------------------|
    // | Connecting               | open event                                | Open                      |
    // | Connecting               | close event                               | Done(ConnectFailed)       |
    // | Open                     | close / close_with                        | Closing, deadline starts  |
    // | Closing (frame not sent) | everything written confirmed              | Closing, WebSocket.close  |
    // | Open, Closing            | text message (TextPolicy::Reject)         | Failing(ReceivedText)     |
    // | Open, Closing, Failing   | close event                               | Done(result)              |
    // | Open                     | readyState is no longer OPEN              | Open, deadline starts     |
    // | Open, Closing, Failing   | close deadline                            | Done(TimedOut / failure)  |
    //
    // The result of a close event: the failure when Failing; Ok when our close frame went
    // first and the close was clean; otherwise Ok only for a clean 1000, 1001 or 1005,
    // `ClosedWithoutHandshake` for 1006 or an unclean end, `PeerClosed` for other codes.
    // Entering Done with bytes that no flush confirmed marks them lost (flush and close then
    // fail), publishes `Closed` and ends the observers' streams.
    // ---------------------------------------------------------------------------------------

    /// The one place the state changes; wakes both sides.
    fn set_state(&mut self, next: State) {
        match &next {
            State::Closing { .. } | State::Failing(_) => self.start_deadline(),
            State::Done(result) => {
                match result {
                    Ok(()) => tracing::debug!("WebSocket closed cleanly"),
                    Err(err) => tracing::debug!("WebSocket ended: {err}"),
                }
                if self.out.unconfirmed() > 0 {
                    self.out.lost = true;
                }
                self.out.settling = None;
                self.out.recheck = None;
                self.deadline = None;
                self.events.push(WsEvent::Closed);
            }
            State::Connecting | State::Open => {}
        }
        self.state = next;
        self.wakers.reader.wake();
        self.wakers.writer.wake();
    }

    /// Ends the connection with `result`, published first when it is a new error.
    fn end(&mut self, result: Result<(), WsErr>) {
        if let Err(err) = &result {
            // Failing ends with its own error, published when it started.
            if !matches!(self.state, State::Failing(_)) {
                self.events.push(WsEvent::Error(Arc::new(err.clone())));
            }
        }
        self.set_state(State::Done(result));
    }

    fn start_deadline(&mut self) {
        if self.deadline.is_none() {
            if let Some(timeout) = self.config.close_timeout {
                let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
                // setTimeout takes a signed 32-bit delay.
                self.deadline = Some(TimeoutFuture::new(ms.min(i32::MAX as u32)));
            }
        }
    }

    /// The close event arrived: publish the peer's close frame and end.
    fn on_close_event(&mut self, info: &CloseInfo) {
        // 1006 is the browser's word for "no close frame arrived".
        if info.code != 1006 {
            let frame = (info.code != 1005).then(|| CloseFrame {
                code: CloseCode::from(info.code),
                reason: info.reason.as_str().into(),
            });
            self.events.push(WsEvent::CloseFrame(frame));
        }
        let result = match &self.state {
            State::Failing(err) => Err(err.clone()),
            State::Closing {
                frame_sent: true, ..
            } if info.clean => Ok(()),
            State::Connecting => Err(WsErr::ConnectFailed {
                url: self.socket.url(),
            }),
            _ => classify(info),
        };
        self.end(result);
    }

    /// The close deadline passed.
    fn on_deadline(&mut self) {
        let result = match &self.state {
            State::Closing {
                code,
                reason,
                frame_sent,
            } => {
                if !frame_sent {
                    self.socket.close(*code, reason);
                }
                Err(WsErr::CloseTimeout)
            }
            State::Failing(err) => Err(err.clone()),
            State::Connecting | State::Open => {
                self.socket.close(ABNORMAL_CODE, "close timeout");
                Err(WsErr::CloseTimeout)
            }
            State::Done(_) => return,
        };
        self.end(result);
    }

    /// The error for an operation on a connection that no longer takes bytes.
    fn closed_err(&self) -> WsErr {
        match &self.state {
            State::Failing(e) | State::Done(Err(e)) => e.clone(),
            _ => WsErr::Closed,
        }
    }

    /// Writes are taken only while the connection is open.
    fn writable(&self) -> Result<(), WsErr> {
        match self.state {
            State::Open => Ok(()),
            _ => Err(self.closed_err()),
        }
    }

    // ---------------------------------------------------------------------------------------
    // The drive step, run by every poll (open, read, write, flush, close; on the stream and
    // on either half) before its own work:
    //
    // 1. what the handlers recorded: open, rejected text, the close event;
    // 2. the close deadline, and the re-check timer (which wakes both sides);
    // 3. output that is due (a full message, or any when a flush, a close or a waiting reader
    //    asked), while the browser's buffer is below the high-water mark;
    // 4. events to the observers.
    // ---------------------------------------------------------------------------------------

    fn drive(&mut self) {
        self.take_inbox();
        let waker = self.both.clone();
        let mut both = Context::from_waker(&waker);
        if let Some(deadline) = &mut self.deadline {
            if Pin::new(deadline).poll(&mut both).is_ready() {
                self.deadline = None;
                self.on_deadline();
            }
        }
        if let Some(timer) = &mut self.out.recheck {
            if Pin::new(timer).poll(&mut both).is_ready() {
                self.out.recheck = None;
            }
        }
        if let Err(err) = self.push_output() {
            self.fail_local(err);
        }
        let done = matches!(self.state, State::Done(_));
        // Events wait in the queue while an observer is full; they never hold back the stream.
        let _ = self.events.poll_deliver(&mut both, done);
    }

    /// Takes the open, text and close records of the handlers.
    fn take_inbox(&mut self) {
        let (opened, text, closed) = {
            let inbox = self.socket.inbox.borrow();
            (inbox.opened, inbox.text, inbox.closed.clone())
        };
        if opened && !self.opened {
            self.opened = true;
            if let State::Connecting = self.state {
                self.set_state(State::Open);
            }
        }
        if text && matches!(self.state, State::Open | State::Closing { .. }) {
            // The handler closed the socket already.
            tracing::debug!("closing the WebSocket because of: {}", WsErr::ReceivedText);
            self.events
                .push(WsEvent::Error(Arc::new(WsErr::ReceivedText)));
            self.set_state(State::Failing(WsErr::ReceivedText));
        }
        if let Some(info) = closed {
            if !matches!(self.state, State::Done(_)) {
                self.on_close_event(&info);
            }
        } else if matches!(self.state, State::Open) && self.opened && !self.socket.is_open() {
            // The peer's close frame arrived, or the connection broke: the close event will
            // follow; the deadline bounds the wait for it.
            self.start_deadline();
        }
    }

    /// A failure of the browser itself (a `send` that threw): the socket goes, the stream ends
    /// with `err`.
    fn fail_local(&mut self, err: WsErr) {
        self.socket.close(ABNORMAL_CODE, "browser error");
        self.end(Err(err));
    }

    /// Hands the gathered message to the browser when it is due and the browser has room.
    fn push_output(&mut self) -> Result<(), WsErr> {
        let open = matches!(
            self.state,
            State::Open
                | State::Closing {
                    frame_sent: false,
                    ..
                }
        );
        let due = self.out.buf.len() >= self.out.max || self.out.flush_wanted;
        if !open || self.out.buf.is_empty() || !due || !self.socket.is_open() {
            return Ok(());
        }
        if self.out.has_room(&self.socket, &self.both) {
            self.socket.send(&self.out.buf)?;
            self.out.sent += self.out.buf.len() as u64;
            self.out.buf.clear();
        }
        Ok(())
    }

    /// Confirms that every byte written left the browser while the socket was open: the
    /// gathered message is sent, `bufferedAmount` drains to 0, and the socket is still open
    /// [`SETTLE`] later.
    fn poll_confirm(&mut self) -> Poll<Result<(), WsErr>> {
        loop {
            if self.out.lost {
                return Poll::Ready(Err(self.closed_err()));
            }
            if self.out.unconfirmed() == 0 {
                return Poll::Ready(Ok(()));
            }
            match self.state {
                State::Open | State::Closing { .. } => {}
                // The bytes are not confirmed and never will be: the end marks them lost.
                State::Failing(_) | State::Done(_) | State::Connecting => return Poll::Pending,
            }
            if !self.out.buf.is_empty() {
                // `drive` sent it if the browser had room; if not, a re-check is armed.
                return Poll::Pending;
            }
            if !self.socket.is_open() {
                // The peer's close arrived, or the connection broke: the close event will say
                // how (and mark the bytes lost); the deadline, started and polled by the
                // drive, bounds the wait.
                return Poll::Pending;
            }
            let buffered = self.socket.buffered_amount();
            if buffered > 0 {
                self.out.wait_for_drain(buffered, &self.both);
                return Poll::Pending;
            }
            let (mark, timer) = self.out.settling.get_or_insert_with(|| {
                let ms = u32::try_from(SETTLE.as_millis()).unwrap_or(u32::MAX);
                (self.out.sent, TimeoutFuture::new(ms))
            });
            let mark = *mark;
            if Pin::new(timer)
                .poll(&mut Context::from_waker(&self.both))
                .is_pending()
            {
                return Poll::Pending;
            }
            self.out.settling = None;
            let closing = self.socket.inbox.borrow().closed.is_some();
            if self.socket.is_open() && !closing {
                self.out.confirmed = self.out.confirmed.max(mark);
            }
        }
    }

    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsErr>> {
        self.wakers.reader.register(cx.waker());
        self.drive();
        match &self.state {
            State::Connecting => Poll::Pending,
            State::Done(Err(e)) if !self.opened => Poll::Ready(Err(e.clone())),
            // Opened, maybe ended already: the reader will tell.
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Fills `rbuf` with the next message; leaves it empty at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wakers.reader.register(cx.waker());
        self.drive();
        loop {
            if !self.rbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if let Some(message) = self.socket.inbox.borrow_mut().pop() {
                self.rbuf = message;
                continue;
            }
            return match &self.state {
                State::Done(Ok(())) => Poll::Ready(Ok(())),
                State::Done(Err(err)) => Poll::Ready(Err(err.clone().into())),
                // Failing: the error comes once the close completed (or the deadline passed),
                // as on the native side, so the events are complete when the reader ends.
                State::Connecting | State::Open | State::Closing { .. } | State::Failing(_) => {
                    // A waiting reader pushes out what was written, as on the native side.
                    if !self.out.buf.is_empty() && !self.out.flush_wanted {
                        self.out.flush_wanted = true;
                        let pushed = self.push_output();
                        self.out.flush_wanted = false;
                        if let Err(err) = pushed {
                            self.fail_local(err);
                            continue;
                        }
                    }
                    Poll::Pending
                }
            };
        }
    }

    fn poll_write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.wakers.writer.register(cx.waker());
        self.drive();
        self.writable()?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.out.buf.len() >= self.out.max {
            // Backpressure: the drive found the browser's buffer above the high-water mark
            // and armed a re-check.
            return Poll::Pending;
        }
        if self.out.buf.is_empty()
            && buf.len() >= self.out.max
            && self.socket.is_open()
            && self.out.has_room(&self.socket, &self.both)
        {
            // A full message straight from the caller's buffer: one copy, into the browser.
            let message = &buf[..self.out.max];
            if let Err(err) = self.socket.send(message) {
                self.fail_local(err.clone());
                return Poll::Ready(Err(err.into()));
            }
            self.out.sent += message.len() as u64;
            return Poll::Ready(Ok(message.len()));
        }
        let was_empty = self.out.buf.is_empty();
        let taken = buf.len().min(self.out.max - self.out.buf.len());
        self.out.buf.extend_from_slice(&buf[..taken]);
        if self.out.buf.len() >= self.out.max {
            if let Err(err) = self.push_output() {
                self.fail_local(err);
            }
        }
        if was_empty {
            // Output now waits for a flush: a parked reader pushes it out.
            self.wakers.reader.wake();
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wakers.writer.register(cx.waker());
        self.out.flush_wanted = true;
        self.drive();
        let result = ready!(self.poll_confirm());
        self.out.flush_wanted = false;
        Poll::Ready(result.map_err(io::Error::from))
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wakers.writer.register(cx.waker());
        if let State::Open = self.state {
            let (code, reason) = self.close_frame.take().unwrap_or((1000, String::new()));
            tracing::debug!("closing the WebSocket with {code} {reason:?}");
            self.set_state(State::Closing {
                code,
                reason,
                frame_sent: false,
            });
        }
        self.out.flush_wanted = true;
        self.drive();
        loop {
            if let State::Closing {
                frame_sent: false, ..
            } = self.state
            {
                // Our close frame goes once everything written is confirmed.
                if let Err(err) = ready!(self.poll_confirm()) {
                    return Poll::Ready(Err(err.into()));
                }
                if let State::Closing {
                    code,
                    reason,
                    frame_sent,
                } = &mut self.state
                {
                    self.socket.close(*code, reason);
                    *frame_sent = true;
                }
                continue;
            }
            return match &self.state {
                State::Connecting | State::Open | State::Closing { .. } | State::Failing(_) => {
                    Poll::Pending
                }
                _ if self.out.lost => Poll::Ready(Err(self.closed_err().into())),
                State::Done(Ok(())) => Poll::Ready(Ok(())),
                State::Done(Err(err)) => Poll::Ready(Err(err.clone().into())),
            };
        }
    }
}

/// How the stream ends after a close event that we did not cause.
fn classify(info: &CloseInfo) -> Result<(), WsErr> {
    match info.code {
        1000 | 1001 | 1005 if info.clean => Ok(()),
        // No close frame (1006), or the handshake did not complete: the stream was cut.
        1000 | 1001 | 1005 | 1006 => Err(WsErr::ClosedWithoutHandshake),
        code => Err(WsErr::PeerClosed {
            code: CloseCode::from(code),
            reason: info.reason.clone(),
        }),
    }
}

impl AsyncRead for BrowserStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_fill(cx))?;
        let n = this.rbuf.len().min(buf.len());
        buf[..n].copy_from_slice(&this.rbuf[..n]);
        this.rbuf.advance(n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncBufRead for BrowserStream {
    /// Hands out the rest of the current message, without copying.
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        ready!(this.poll_fill(cx))?;
        Poll::Ready(Ok(&this.rbuf))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.rbuf.advance(amt.min(this.rbuf.len()));
    }
}

impl AsyncWrite for BrowserStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_inner(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close_inner(cx)
    }
}

/// Observe [`WsEvent`]s: the peer's close frame ([`WsEvent::CloseFrame`]), errors
/// ([`WsEvent::Error`]) and the end ([`WsEvent::Closed`]). A browser hands pages no pings or
/// pongs, so those events never come. The observers' streams end after `Closed`, or when the
/// stream is dropped.
///
/// ```no_run
/// # async fn demo(mut stream: ws_stream_tungstenite::browser::BrowserStream) -> Result<(), ws_stream_tungstenite::WsErr> {
/// use pharos::{Observable, ObserveConfig};
///
/// let events = stream.observe(ObserveConfig::default()).await?;
/// # drop(events); Ok(()) }
/// ```
impl Observable<WsEvent> for BrowserStream {
    type Error = WsErr;

    fn observe(&mut self, options: ObserveConfig<WsEvent>) -> Observe<'_, WsEvent, Self::Error> {
        // Only the observers are borrowed: the future must be `Send`, browser handles are not.
        let observing = self.events.pharos.observe(options);
        Box::pin(async move { observing.await.map_err(|_| WsErr::Closed) })
    }
}

impl fmt::Debug for BrowserStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Connecting => "connecting",
            State::Open => "open",
            State::Closing { .. } => "closing",
            State::Failing(_) => "failing",
            State::Done(Ok(())) => "closed",
            State::Done(Err(_)) => "failed",
        };
        f.debug_struct("BrowserStream")
            .field("state", &state)
            .field(
                "unread",
                &(self.rbuf.len() + self.socket.inbox.borrow().queued()),
            )
            .field("unconfirmed", &self.out.unconfirmed())
            .finish_non_exhaustive()
    }
}
