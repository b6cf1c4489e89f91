//! The timers: keepalive, send timeout and close deadline, and the round trips of our pings.
//!
//! They watch and give a [`Verdict`]; the engine acts on it. Every timer is polled with the
//! waker of both sides, so whichever half waits learns when one fires.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    task::Context,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_timer::Delay;
use tracing::debug;

use crate::{Config, WsErr};

/// What the timers found.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Nothing to do.
    Quiet,
    /// The peer has been silent for the keepalive interval: queue a ping.
    PingDue,
    /// The close handshake ran out of time.
    CloseTimeout,
    /// The connection is dead (keepalive or send timeout).
    Dead(WsErr),
}

#[derive(Debug)]
enum Ka {
    /// Waiting for silence.
    Idle,
    /// A ping is due but not in the transport yet (since then).
    Due(Instant),
    /// A ping went into the transport then; any sign of life after it will do.
    Sent(Instant),
}

#[derive(Debug)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
    state: Ka,
    timer: Delay,
}

#[derive(Debug)]
struct SendWatch {
    timeout: Duration,
    /// Since when output has been due (`None` while nothing is due).
    since: Option<Instant>,
    timer: Delay,
}

/// The timers of one connection.
#[derive(Debug)]
pub(super) struct Timers {
    keepalive: Option<Keepalive>,
    send: Option<SendWatch>,
    close_timeout: Option<Duration>,
    close: Option<Delay>,
    /// The last sign of life (a frame from the peer, or the transport taking our output), and
    /// the last progress of our output. Kept only when a timer needs them.
    life: Instant,
    moved: Instant,
    /// Pings we sent and when they went out, to report round trips (the 16 most recent).
    pings: VecDeque<(Bytes, Instant)>,
}

impl Timers {
    pub(super) fn new(config: &Config) -> Self {
        let now = Instant::now();
        Self {
            keepalive: config.ping_interval.map(|interval| Keepalive {
                interval,
                timeout: config.ping_timeout,
                state: Ka::Idle,
                timer: Delay::new(interval),
            }),
            send: config.send_timeout.map(|timeout| SendWatch {
                timeout,
                since: None,
                timer: Delay::new(timeout),
            }),
            close_timeout: config.close_timeout,
            close: None,
            life: now,
            moved: now,
            pings: VecDeque::new(),
        }
    }

    /// No timer runs.
    #[inline]
    pub(super) fn is_idle(&self) -> bool {
        self.keepalive.is_none() && self.send.is_none() && self.close.is_none()
    }

    fn watching(&self) -> bool {
        self.keepalive.is_some() || self.send.is_some()
    }

    /// A frame arrived from the peer.
    #[inline]
    pub(super) fn peer_alive(&mut self) {
        if self.keepalive.is_some() {
            self.life = Instant::now();
        }
    }

    /// The transport took some of our output: a sign of life, and progress.
    #[inline]
    pub(super) fn output_moved(&mut self) {
        if self.watching() {
            let now = Instant::now();
            self.life = now;
            self.moved = now;
        }
    }

    /// A ping went into the transport: it answers a due keepalive, and its pong will be timed.
    pub(super) fn ping_sent(&mut self, payload: Bytes) {
        let now = Instant::now();
        if let Some(ka) = &mut self.keepalive {
            if matches!(ka.state, Ka::Due(_)) {
                ka.state = Ka::Sent(now);
                ka.timer.reset(ka.timeout);
            }
        }
        if self.pings.len() == 16 {
            self.pings.pop_front();
        }
        self.pings.push_back((payload, now));
    }

    /// The round trip of the latest ping with this payload; older ones are forgotten.
    pub(super) fn pong(&mut self, payload: &Bytes) -> Option<(Bytes, Duration)> {
        let i = self.pings.iter().position(|(p, _)| p == payload)?;
        let (payload, sent) = self.pings.drain(..=i).next_back()?;
        Some((payload, Instant::now().saturating_duration_since(sent)))
    }

    /// Starts the close deadline (once).
    pub(super) fn start_close(&mut self) {
        if self.close.is_none() {
            self.close = self.close_timeout.map(Delay::new);
        }
    }

    /// The connection is over: no timer matters any more.
    pub(super) fn stop(&mut self) {
        self.keepalive = None;
        self.send = None;
        self.close = None;
    }

    /// Polls every running timer. `due`: output waits for the transport (the send timeout's
    /// clock runs).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>, due: bool) -> Verdict {
        if let Some(close) = &mut self.close {
            if Pin::new(close).poll(cx).is_ready() {
                self.close = None;
                return Verdict::CloseTimeout;
            }
        }
        if let Some(send) = &mut self.send {
            if let Some(verdict) = send.poll(cx, due, self.moved) {
                return verdict;
            }
        }
        match &mut self.keepalive {
            Some(ka) => ka.poll(cx, self.life),
            None => Verdict::Quiet,
        }
    }
}

impl Keepalive {
    fn poll(&mut self, cx: &mut Context<'_>, life: Instant) -> Verdict {
        loop {
            if Pin::new(&mut self.timer).poll(cx).is_pending() {
                return Verdict::Quiet;
            }
            let now = Instant::now();
            match self.state {
                Ka::Idle => {
                    let silent = now.saturating_duration_since(life);
                    if silent >= self.interval {
                        self.state = Ka::Due(now);
                        self.timer.reset(self.timeout);
                        return Verdict::PingDue;
                    }
                    self.timer.reset(self.interval - silent);
                }
                // Our output moved while the ping waited: the peer reads, keep waiting.
                Ka::Due(since) if life > since => {
                    self.state = Ka::Due(now);
                    self.timer.reset(self.timeout);
                }
                Ka::Sent(at) if life > at => {
                    self.state = Ka::Idle;
                    let silent = now.saturating_duration_since(life);
                    self.timer.reset(self.interval.saturating_sub(silent));
                }
                Ka::Due(_) | Ka::Sent(_) => {
                    debug!("keepalive: no sign of life from the peer since the ping; giving up");
                    return Verdict::Dead(WsErr::KeepaliveTimeout);
                }
            }
        }
    }
}

impl SendWatch {
    fn poll(&mut self, cx: &mut Context<'_>, due: bool, moved: Instant) -> Option<Verdict> {
        if !due {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert_with(|| {
            self.timer.reset(self.timeout);
            Instant::now()
        });
        loop {
            if Pin::new(&mut self.timer).poll(cx).is_pending() {
                return None;
            }
            let now = Instant::now();
            let stalled = now.saturating_duration_since(since.max(moved));
            if stalled >= self.timeout {
                debug!("send timeout: output made no progress for {stalled:?}; giving up");
                return Some(Verdict::Dead(WsErr::SendTimeout));
            }
            self.timer.reset(self.timeout - stalled);
        }
    }
}
