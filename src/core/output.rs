//! The write side: a coalescing buffer, our control frames, and what the sink has taken.
//!
//! A payload leaves the buffer only once the sink accepted it, and every byte that can no
//! longer be sent stays counted, so `flush` and `close` can tell "sent" from "lost".

use std::{
    io::IoSlice,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use tungstenite::{
    Error as TungErr, Message, Utf8Bytes,
    protocol::{CloseFrame, WebSocketConfig},
};

use crate::Transport;

/// The largest WebSocket frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
const MAX_FRAME_HEADER: usize = 14;

/// The header of a control frame (payload of at most 125 bytes): 2 bytes and a 4-byte mask.
const CONTROL_HEADER: usize = 6;

/// The most a control frame can carry.
const CONTROL_PAYLOAD: usize = 125;

/// Our close frame.
#[derive(Debug)]
enum CloseSlot {
    /// Not asked for.
    None,
    /// Waits until every buffered byte was handed to the sink.
    Queued(CloseFrame),
    /// Handed to the sink as frame number `at`.
    Handed { at: u64 },
}

/// What one drive of the output moved.
#[derive(Debug, Default)]
pub(super) struct Moved {
    /// The sink took a frame or completed a flush.
    pub(super) progress: bool,
    /// A ping went into the sink (for the round-trip report and the keepalive).
    pub(super) ping: Option<Bytes>,
}

/// The write side of the engine.
#[derive(Debug)]
pub(super) struct Output {
    buf: BytesMut,
    /// Largest payload of one outgoing data message.
    max: usize,
    /// Largest payload of one control frame (a ping, or a close code and reason).
    control_max: usize,
    /// Someone waits for the buffered bytes to reach the transport (a flush, a polled reader,
    /// a control frame): the buffer goes out even when it is not full, and the sink is flushed.
    flush_due: bool,
    /// Frames went into the sink since its last completed flush.
    unflushed: bool,
    /// tungstenite holds frames of its own (a pong, the answer to the peer's close) that the
    /// next flush sends.
    answer: bool,
    /// Frames handed to the sink, and that count when its last flush completed.
    handed: u64,
    flushed: u64,
    /// The ping waiting for the sink, ahead of buffered bytes.
    ping: Option<Bytes>,
    /// Serials of the latest ping queued, handed over, and refused (never to be sent); `ping_at`
    /// is the frame number of the latest ping handed over.
    ping_queued: u64,
    ping_handed: u64,
    ping_refused: u64,
    ping_at: u64,
    close: CloseSlot,
    /// Bytes written that can never be sent: the connection ended with them buffered, or the
    /// sink failed while taking them.
    stranded: usize,
    /// Frames the sink took were never confirmed by a flush before the connection ended.
    unconfirmed: bool,
}

/// Where a ping handed to [`Output::queue_ping`] is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PingState {
    /// Not in the sink yet, or not flushed.
    Waiting,
    /// In the sink and flushed.
    Sent,
    /// It will never be sent (the connection closed first, or it did not fit).
    Refused,
}

impl Output {
    /// The caps: outgoing frames fit tungstenite's write buffer limit. tungstenite refuses a
    /// frame when its buffer plus the frame would pass `max_write_buffer_size`; whenever the
    /// sink is ready, at most `write_buffer_size` bytes are buffered. One data frame and one
    /// control frame, headers included, must fit in the difference, so a ping or a close never
    /// finds the buffer full of our data.
    pub(super) fn new(max_message: usize, ws: Option<&WebSocketConfig>) -> Self {
        let mut max = max_message;
        let mut control_max = CONTROL_PAYLOAD;
        if let Some(ws) = ws {
            let room = ws
                .max_write_buffer_size
                .saturating_sub(ws.write_buffer_size);
            control_max = control_max.min(room.saturating_sub(CONTROL_HEADER));
            let control = control_max + CONTROL_HEADER;
            max = max
                .min(room.saturating_sub(MAX_FRAME_HEADER + control))
                .max(1);
        }
        Self {
            buf: BytesMut::new(),
            max,
            control_max,
            flush_due: false,
            unflushed: false,
            answer: false,
            handed: 0,
            flushed: 0,
            ping: None,
            ping_queued: 0,
            ping_handed: 0,
            ping_refused: 0,
            ping_at: 0,
            close: CloseSlot::None,
            stranded: 0,
            unconfirmed: false,
        }
    }

    pub(super) fn max(&self) -> usize {
        self.max
    }

    pub(super) fn control_max(&self) -> usize {
        self.control_max
    }

    /// Bytes written and not handed to the transport (stranded ones included).
    pub(super) fn unsent(&self) -> usize {
        self.buf.len() + self.stranded
    }

    /// Nothing buffered, nothing unflushed.
    pub(super) fn is_idle(&self) -> bool {
        self.buf.is_empty() && !self.unflushed && !self.answer
    }

    pub(super) fn is_full(&self) -> bool {
        self.buf.len() >= self.max
    }

    /// Some byte written will never be confirmed as sent.
    pub(super) fn lost(&self) -> bool {
        self.stranded > 0 || self.unconfirmed
    }

    /// Something is due to go into the transport: the send timeout's clock runs.
    pub(super) fn is_due(&self) -> bool {
        self.ping.is_some()
            || matches!(self.close, CloseSlot::Queued(_))
            || self.is_full()
            || (self.flush_due && !self.is_idle())
    }

    /// Asks for the buffered bytes to go out and the sink to be flushed.
    pub(super) fn want_flush(&mut self) {
        if !self.is_idle() {
            self.flush_due = true;
        }
    }

    /// The sink holds something we did not write (a pong, the answer to the peer's close):
    /// flush it, even while the reader waits for an observer.
    pub(super) fn flush_answer(&mut self) {
        self.answer = true;
        self.flush_due = true;
    }

    /// Copies as much of `bufs` as fits into the current message.
    pub(super) fn take(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        let room = self.max.saturating_sub(self.buf.len());
        let mut taken = 0;
        for b in bufs {
            if taken == room {
                break;
            }
            let n = b.len().min(room - taken);
            // `reserve` also takes back the allocation of messages the sink has released.
            self.buf.reserve(n);
            crate::copy::in_pieces(&b[..n], |piece| self.buf.extend_from_slice(piece));
            taken += n;
        }
        taken
    }

    /// Queues a ping ahead of the buffered bytes; its serial tells [`ping_state`] about it.
    /// `None` while another ping waits.
    ///
    /// [`ping_state`]: Self::ping_state
    pub(super) fn queue_ping(&mut self, payload: Bytes) -> Option<u64> {
        if self.ping.is_some() {
            return None;
        }
        self.ping = Some(payload);
        self.ping_queued += 1;
        self.flush_due = true;
        Some(self.ping_queued)
    }

    pub(super) fn ping_state(&self, serial: u64) -> PingState {
        if self.ping_refused >= serial && self.ping_handed < serial {
            PingState::Refused
        } else if self.ping_handed >= serial && self.flushed >= self.ping_at {
            PingState::Sent
        } else {
            PingState::Waiting
        }
    }

    pub(super) fn has_ping(&self) -> bool {
        self.ping.is_some()
    }

    /// Queues our close frame behind the buffered bytes (once).
    pub(super) fn queue_close(&mut self, frame: CloseFrame) {
        if matches!(self.close, CloseSlot::None) {
            self.close = CloseSlot::Queued(frame);
            self.flush_due = true;
        }
    }

    /// Replaces a close frame that was not handed over yet (a failure says more than a
    /// plain close). `false` when ours is already in the sink.
    pub(super) fn replace_close(&mut self, frame: CloseFrame) -> bool {
        match self.close {
            CloseSlot::Handed { .. } => false,
            _ => {
                self.close = CloseSlot::Queued(frame);
                self.flush_due = true;
                true
            }
        }
    }

    /// Our close frame is in the sink (`handed`) and the sink was flushed after it (`flushed`).
    pub(super) fn close_state(&self) -> (bool, bool) {
        match self.close {
            CloseSlot::Handed { at } => (true, self.flushed >= at && !self.lost()),
            _ => (false, false),
        }
    }

    /// The close frame is handed over or dropped, and the sink flushed: an ending can proceed.
    pub(super) fn is_settled(&self) -> bool {
        !matches!(self.close, CloseSlot::Queued(_)) && self.ping.is_none() && self.is_idle()
    }

    /// The peer closed: data can no longer be sent (tungstenite refuses it and answers the
    /// close itself), so buffered bytes and our queued frames are given up, and counted.
    pub(super) fn strand(&mut self) {
        self.stranded += self.buf.len();
        self.buf = BytesMut::new();
        if self.ping.take().is_some() {
            self.ping_refused = self.ping_queued;
        }
        if matches!(self.close, CloseSlot::Queued(_)) {
            self.close = CloseSlot::None;
        }
    }

    /// The connection is over: nothing goes into the sink any more.
    pub(super) fn abandon(&mut self) {
        self.strand();
        self.unconfirmed |= self.unflushed;
        self.unflushed = false;
        self.answer = false;
        self.flush_due = false;
    }

    /// Moves what is due into the sink, in priority order: our ping, a full message (or any
    /// buffered bytes when a flush is due), our close frame once the buffer is empty, then a
    /// flush when one is due. Stops at the first `Pending`; the sink keeps the waker of `cx`.
    pub(super) fn drive<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
    ) -> Result<Moved, TungErr> {
        let mut moved = Moved::default();
        let _ = self.send_ping(inner, cx, &mut moved)?
            && self.send_data(inner, cx, &mut moved)?
            && self.send_close(inner, cx, &mut moved)?
            && self.flush(inner, cx, &mut moved)?;
        if self.is_idle() && self.ping.is_none() && !matches!(self.close, CloseSlot::Queued(_)) {
            self.flush_due = false;
        }
        Ok(moved)
    }

    // Each step of `drive`: `Ok(false)` when the sink is not ready, so the later ones wait.

    fn send_ping<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        moved: &mut Moved,
    ) -> Result<bool, TungErr> {
        if self.ping.is_none() {
            return Ok(true);
        }
        if !ready(inner, cx)? {
            return Ok(false);
        }
        let payload = self.ping.take().unwrap_or_default();
        match Pin::new(inner).start_send(Message::Ping(payload.clone())) {
            Ok(()) => {
                self.handed_one(moved);
                self.ping_handed = self.ping_queued;
                self.ping_at = self.handed;
                moved.ping = Some(payload);
            }
            // Does not fit the write buffer even when it is empty: that ping fails alone.
            Err(TungErr::WriteBufferFull(_)) => self.ping_refused = self.ping_queued,
            Err(err) => return Err(err),
        }
        Ok(true)
    }

    fn send_data<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        moved: &mut Moved,
    ) -> Result<bool, TungErr> {
        if self.buf.is_empty() || !(self.flush_due || self.is_full()) {
            return Ok(true);
        }
        if !ready(inner, cx)? {
            return Ok(false);
        }
        let len = self.buf.len();
        let payload = self.buf.split().freeze();
        if let Err(err) = Pin::new(inner).start_send(Message::Binary(payload)) {
            self.stranded += len;
            return Err(err);
        }
        self.handed_one(moved);
        Ok(true)
    }

    fn send_close<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        moved: &mut Moved,
    ) -> Result<bool, TungErr> {
        // Twice at most: with the reason, then, if that does not fit, with the code alone.
        while self.buf.is_empty() && matches!(self.close, CloseSlot::Queued(_)) {
            if !ready(inner, cx)? {
                return Ok(false);
            }
            let CloseSlot::Queued(frame) = std::mem::replace(&mut self.close, CloseSlot::None)
            else {
                break;
            };
            let (code, bare) = (frame.code, frame.reason.is_empty());
            match Pin::new(&mut *inner).start_send(Message::Close(Some(frame))) {
                Ok(()) => {
                    self.handed_one(moved);
                    self.close = CloseSlot::Handed { at: self.handed };
                }
                Err(TungErr::WriteBufferFull(_)) if !bare => {
                    self.close = CloseSlot::Queued(CloseFrame {
                        code,
                        reason: Utf8Bytes::default(),
                    });
                }
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    fn flush<T: Transport>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        moved: &mut Moved,
    ) -> Result<bool, TungErr> {
        if !(self.flush_due && (self.unflushed || self.answer)) {
            return Ok(true);
        }
        match Pin::new(inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                self.answer = false;
                self.flushed = self.handed;
                moved.progress = true;
                Ok(true)
            }
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Ok(false),
        }
    }

    fn handed_one(&mut self, moved: &mut Moved) {
        self.handed += 1;
        self.unflushed = true;
        moved.progress = true;
    }
}

/// Whether the sink can take a frame now.
fn ready<T: Transport>(inner: &mut T, cx: &mut Context<'_>) -> Result<bool, TungErr> {
    match Pin::new(inner).poll_ready(cx) {
        Poll::Ready(Ok(())) => Ok(true),
        Poll::Ready(Err(err)) => Err(err),
        Poll::Pending => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_room_for_a_control_frame() {
        let ws = WebSocketConfig::default()
            .write_buffer_size(0)
            .max_write_buffer_size(1000);
        let out = Output::new(64 * 1024, Some(&ws));
        assert_eq!(out.control_max(), 125);
        assert_eq!(out.max(), 1000 - 14 - 131);

        let tiny = WebSocketConfig::default()
            .write_buffer_size(0)
            .max_write_buffer_size(64);
        let out = Output::new(64 * 1024, Some(&tiny));
        assert_eq!(out.control_max(), 58);
        assert_eq!(out.max(), 1);
    }

    #[test]
    fn nothing_is_lost_silently() {
        let mut out = Output::new(10, None);
        assert_eq!(out.take(&[IoSlice::new(b"hello")]), 5);
        assert!(!out.lost());
        out.strand();
        assert!(out.lost());
        assert_eq!(out.unsent(), 5);
    }
}
