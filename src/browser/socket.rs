//! The browser's `WebSocket` and what its event handlers record for the stream.
//!
//! The handlers run between two polls of the stream (JavaScript is single-threaded): they
//! only record what happened in the [`Inbox`] and wake both sides; the stream reads the inbox
//! at its next poll. The one exception is a text message under [`TextPolicy::Reject`]: the
//! handler closes the socket at once, so the peer stops sending and nothing after the text is
//! queued.

use std::{cell::RefCell, collections::VecDeque, rc::Rc, sync::Arc, task::Wake};

use bytes::Bytes;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::{TextPolicy, WsErr, core::Wakers};

/// The close code sent when the peer sent a text message. A page may send only 1000 and
/// 3000–4999 (browsers throw on 1003), so this is 4000 + 1003, "unsupported data".
pub(super) const TEXT_CODE: u16 = 4003;
pub(super) const TEXT_REASON: &str = "only binary messages are supported";

/// The close code sent when the stream is dropped (or the browser failed) without `close`:
/// 4000 + 1006, "abnormal closure". A native stream that is dropped sends no close frame and
/// its peer sees the stream cut; a browser cannot cut a WebSocket without a close frame, so
/// this code tells the peer that the end was not a normal one.
pub(super) const ABNORMAL_CODE: u16 = 4006;
pub(super) const DROP_REASON: &str = "dropped without close";

/// The close event, as the browser reported it.
#[derive(Debug, Clone)]
pub(super) struct CloseInfo {
    pub(super) code: u16,
    pub(super) reason: String,
    pub(super) clean: bool,
}

/// What the handlers recorded and the stream did not take yet.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    /// The open event fired.
    pub(super) opened: bool,
    /// Payloads of binary messages (and of text ones under `TextPolicy::Accept`), none empty.
    messages: VecDeque<Bytes>,
    /// Bytes in `messages`.
    queued: usize,
    /// A text message arrived under `TextPolicy::Reject`: the handler closed the socket, the
    /// input ends after `messages`, and later messages are dropped.
    pub(super) text: bool,
    /// The close event fired.
    pub(super) closed: Option<CloseInfo>,
}

impl Inbox {
    /// The next payload, in order.
    pub(super) fn pop(&mut self) -> Option<Bytes> {
        let message = self.messages.pop_front()?;
        self.queued -= message.len();
        Some(message)
    }

    /// Bytes received and not taken by the stream yet.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    fn push(&mut self, payload: Bytes) {
        // Empty messages carry nothing: skipped here, a read never sees them.
        if !payload.is_empty() {
            self.queued += payload.len();
            self.messages.push_back(payload);
        }
    }
}

/// A browser `WebSocket` (binary type `arraybuffer`) with its handlers installed.
pub(super) struct Socket {
    ws: WebSocket,
    pub(super) inbox: Rc<RefCell<Inbox>>,
    // Kept alive as long as the socket may call them; detached in `drop`.
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Starts opening a WebSocket to `url`.
    ///
    /// # Errors
    ///
    /// [`WsErr::InvalidUrl`] when the browser refuses the URL.
    pub(super) fn open(url: &str, text: TextPolicy, wakers: &Arc<Wakers>) -> Result<Self, WsErr> {
        let ws = WebSocket::new(url).map_err(|e| WsErr::InvalidUrl {
            detail: describe(&e),
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let inbox = Rc::new(RefCell::new(Inbox::default()));

        let on_open = {
            let (inbox, wakers) = (Rc::clone(&inbox), Arc::clone(wakers));
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                inbox.borrow_mut().opened = true;
                wakers.wake_by_ref();
            })
        };
        let on_message = {
            let (inbox, wakers, socket) = (Rc::clone(&inbox), Arc::clone(wakers), ws.clone());
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                if receive(&mut inbox.borrow_mut(), &event.data(), text) {
                    // The socket goes at once: the peer stops sending, nothing more is queued.
                    // The close event follows and ends the stream.
                    let _ = socket.close_with_code_and_reason(TEXT_CODE, TEXT_REASON);
                }
                wakers.wake_by_ref();
            })
        };
        let on_close = {
            let (inbox, wakers) = (Rc::clone(&inbox), Arc::clone(wakers));
            Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                inbox.borrow_mut().closed = Some(CloseInfo {
                    code: event.code(),
                    reason: event.reason(),
                    clean: event.was_clean(),
                });
                wakers.wake_by_ref();
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));

        Ok(Self {
            ws,
            inbox,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Hands one message to the browser.
    ///
    /// # Errors
    ///
    /// What the browser threw, as [`WsErr::Io`] (it throws only before the socket is open,
    /// which the stream never does).
    pub(super) fn send(&self, payload: &[u8]) -> Result<(), WsErr> {
        self.ws.send_with_u8_array(payload).map_err(|e| WsErr::Io {
            source: Arc::new(std::io::Error::other(format!(
                "WebSocket.send failed: {}",
                describe(&e)
            ))),
        })
    }

    /// Starts the close handshake (the browser sends the close frame after the messages it
    /// still holds). Does nothing once closing: a second close is a no-op in browsers too.
    pub(super) fn close(&self, code: u16, reason: &str) {
        // Throws only for codes and reasons a page may not send; callers check both.
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }

    /// `WebSocket.bufferedAmount`: bytes handed to `send` that the browser did not pass on
    /// yet.
    pub(super) fn buffered_amount(&self) -> usize {
        usize::try_from(self.ws.buffered_amount()).unwrap_or(usize::MAX)
    }

    /// `WebSocket.readyState` is `OPEN`.
    pub(super) fn is_open(&self) -> bool {
        self.ws.ready_state() == WebSocket::OPEN
    }

    /// `WebSocket.url`.
    pub(super) fn url(&self) -> String {
        self.ws.url()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // JavaScript must never call a closure that is gone.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // An open socket is not collected while it is open: close it, with a code that tells
        // the peer this was not a normal end.
        if matches!(
            self.ws.ready_state(),
            WebSocket::CONNECTING | WebSocket::OPEN
        ) {
            self.close(ABNORMAL_CODE, DROP_REASON);
        }
    }
}

/// Records one message; `true` when it was text to reject (the socket must close).
fn receive(inbox: &mut Inbox, data: &JsValue, text: TextPolicy) -> bool {
    if inbox.text || inbox.closed.is_some() {
        // After rejected text nothing is read any more.
        return false;
    }
    if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
        inbox.push(Bytes::from(Uint8Array::new(buffer).to_vec()));
        return false;
    }
    match (data.as_string(), text) {
        (Some(text), TextPolicy::Accept) => {
            inbox.push(Bytes::from(text.into_bytes()));
            false
        }
        (Some(_), _) => {
            inbox.text = true;
            true
        }
        // With binary type `arraybuffer`, binary data is never a `Blob`; nothing else is sent.
        (None, _) => {
            tracing::warn!("ignored a WebSocket message that is neither binary nor text");
            false
        }
    }
}

/// A JavaScript exception as text.
fn describe(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}
