//! Configuration of a [`WsStream`](crate::WsStream).

use std::time::Duration;

/// What to do with text messages from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TextPolicy {
    /// Close the connection with 1003 (unsupported data) and end the reader with
    /// [`WsErr::ReceivedText`](crate::WsErr::ReceivedText) after the bytes that came before.
    /// A byte stream made of binary messages has no meaning for text; a peer that sends it is
    /// most likely speaking another protocol.
    #[default]
    Reject,

    /// Append the UTF-8 payload of text messages to the byte stream, like binary ones.
    Accept,
}

/// Settings of a [`WsStream`](crate::WsStream) (and of the browser side's `BrowserStream`,
/// feature `browser`, which uses the ones its docs name). Start from [`Config::default()`] and
/// change what you need; the WebSocket protocol limits themselves (`max_message_size`,
/// `max_frame_size`, write buffer sizes) belong to tungstenite's `WebSocketConfig`, given when
/// the `WebSocketStream` is created.
///
/// Each setting is set by the method of its name, which returns the changed `Config` (use the
/// result: the methods are `#[must_use]`), and read back by `get_` and its name, as with
/// `std::process::Command` (`current_dir` and `get_current_dir`). Durations are given as a
/// [`Duration`], or as `None` where the setting can be off; the same value in
/// `Some` works too.
///
/// ```
/// use std::time::Duration;
/// use ws_stream_tungstenite::{Config, TextPolicy};
///
/// let config = Config::default()
///     .max_message_size(16 * 1024)
///     .text_policy(TextPolicy::Accept)
///     .close_timeout(Duration::from_secs(3))
///     // Keepalive: a ping after 30 s of silence, the peer declared dead 10 s later.
///     .ping_interval(Duration::from_secs(30))
///     .ping_timeout(Duration::from_secs(10))
///     .send_timeout(None);
///
/// assert_eq!(config.get_max_message_size(), 16 * 1024);
/// assert_eq!(config.get_close_timeout(), Some(Duration::from_secs(3)));
/// assert_eq!(config.get_send_timeout(), None);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) max_message_size: usize,
    pub(crate) text_policy: TextPolicy,
    pub(crate) close_timeout: Option<Duration>,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) ping_timeout: Duration,
    pub(crate) send_timeout: Option<Duration>,
    pub(crate) browser_high_water: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            text_policy: TextPolicy::Reject,
            close_timeout: Some(Self::DEFAULT_CLOSE_TIMEOUT),
            ping_interval: None,
            ping_timeout: Self::DEFAULT_PING_TIMEOUT,
            send_timeout: None,
            browser_high_water: Self::DEFAULT_BROWSER_HIGH_WATER,
        }
    }
}

impl Config {
    /// Default of [`max_message_size`](Self::max_message_size): 32 KiB.
    ///
    /// Measured against 64 KiB (`bench/`, loopback): with tungstenite's default 128 KiB read
    /// buffer, the receiver reads several 32 KiB messages per system call where it read at
    /// most one 64 KiB message, about a sixth fewer socket calls per MiB and 5–15 % less CPU
    /// time; 16 KiB measured the same as 32 KiB, with twice the messages.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024;

    /// Default of [`close_timeout`](Self::close_timeout): 10 s.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Default of [`ping_timeout`](Self::ping_timeout): 20 s.
    pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);

    /// Default of [`browser_high_water`](Self::browser_high_water): 1 MiB.
    pub const DEFAULT_BROWSER_HIGH_WATER: usize = 1024 * 1024;

    /// The largest payload of an outgoing message (default 32 KiB, minimum 1).
    ///
    /// Small writes are gathered into one message up to this size; larger writes are cut into
    /// messages of this size. Smaller values let pings and close frames overtake bulk data
    /// sooner and keep the write buffer small; larger values cost less per byte. The value is
    /// further capped so that one frame, header included, always fits tungstenite's
    /// `max_write_buffer_size`.
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1);
        self
    }

    /// What to do with text messages (default: [`TextPolicy::Reject`]).
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn text_policy(mut self, policy: TextPolicy) -> Self {
        self.text_policy = policy;
        self
    }

    /// How long the close handshake may take once a close frame was sent or received (default
    /// 10 s; `None` waits forever). When it runs out the reader ends with
    /// [`WsErr::CloseTimeout`](crate::WsErr::CloseTimeout), unless the peer's close frame did
    /// arrive and only the transport's teardown was slow, which counts as a clean end.
    ///
    /// Takes a `Duration`, `Some(Duration)` or `None`.
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn close_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.close_timeout = timeout.into();
        self
    }

    /// Keepalive (default off): when the peer has sent nothing for this long, send a ping. Any
    /// frame from the peer counts as a sign of life, so a busy connection never pings.
    /// Pair with [`ping_timeout`](Self::ping_timeout). Proxies and NATs commonly drop idle
    /// connections after 60 to 270 s; 30 s is a safe choice for a long-lived stream.
    ///
    /// Takes a `Duration`, `Some(Duration)` or `None` (off); a zero duration counts as `None`.
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn ping_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.ping_interval = interval.into().filter(|d| !d.is_zero());
        self
    }

    /// Keepalive: how long to wait for any frame after a keepalive ping before the connection is
    /// declared dead (default 20 s). Has no effect without a
    /// [`ping_interval`](Self::ping_interval).
    ///
    /// A plain `Duration`, not an `Option`: keepalive is switched on and off by
    /// [`ping_interval`](Self::ping_interval) alone, and a keepalive that never declares the
    /// peer dead would not find a dead peer.
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Dead peer on the sending side (default off): when written output has made no progress
    /// into the transport for this long (a peer that stopped reading, a stalled network), the
    /// connection is declared dead like a keepalive timeout: a
    /// [`WsEvent::Error`](crate::WsEvent::Error), and the reader and the writer (both halves, both
    /// woken) end with [`WsErr::SendTimeout`](crate::WsErr::SendTimeout) (`TimedOut`).
    ///
    /// A server sets this to shed clients that stopped reading without wrapping every write in
    /// a timer. Output waiting for a flush that nobody asked for does not count: the clock runs
    /// only while something is due to go out (a full message, a flush, a control frame).
    ///
    /// Takes a `Duration`, `Some(Duration)` or `None` (off); a zero duration counts as `None`.
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn send_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.send_timeout = timeout.into().filter(|d| !d.is_zero());
        self
    }

    /// The browser side only (`browser::BrowserStream`, feature `browser`; `WsStream` ignores
    /// it): how many bytes the browser may hold unsent (the WebSocket's `bufferedAmount`)
    /// before writes wait (default 1 MiB, minimum 1).
    ///
    /// A browser's `WebSocket.send` never refuses data, so this is the only backpressure a page
    /// gets: a write returns `Pending` while `bufferedAmount` is at or above this mark, and a
    /// timer re-checks it (browsers fire no event when the buffer drains). The browser then
    /// holds at most this much plus one message ([`max_message_size`](Self::max_message_size))
    /// however fast the caller writes. Lower values bound memory and the bytes at stake when
    /// the connection breaks more tightly; higher values keep a fast link busy between two
    /// timer checks (a few milliseconds).
    #[must_use = "returns the changed Config and leaves this one as it was"]
    pub fn browser_high_water(mut self, bytes: usize) -> Self {
        self.browser_high_water = bytes.max(1);
        self
    }

    /// The configured [`browser_high_water`](Self::browser_high_water).
    pub fn get_browser_high_water(&self) -> usize {
        self.browser_high_water
    }

    /// The configured [`max_message_size`](Self::max_message_size). The size in effect on a
    /// stream, which tungstenite's write buffer limit may lower, is
    /// [`WsIo::max_message_size`](crate::WsIo::max_message_size).
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The configured [`text_policy`](Self::text_policy).
    pub fn get_text_policy(&self) -> TextPolicy {
        self.text_policy
    }

    /// The configured [`close_timeout`](Self::close_timeout).
    pub fn get_close_timeout(&self) -> Option<Duration> {
        self.close_timeout
    }

    /// The configured [`ping_interval`](Self::ping_interval).
    pub fn get_ping_interval(&self) -> Option<Duration> {
        self.ping_interval
    }

    /// The configured [`ping_timeout`](Self::ping_timeout).
    pub fn get_ping_timeout(&self) -> Duration {
        self.ping_timeout
    }

    /// The configured [`send_timeout`](Self::send_timeout).
    pub fn get_send_timeout(&self) -> Option<Duration> {
        self.send_timeout
    }
}
