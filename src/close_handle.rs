//! Closing a stream from anywhere: a handle for shutdown signals and supervisors.

use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::Waker,
};

use tungstenite::{Utf8Bytes, protocol::CloseFrame, protocol::frame::coding::CloseCode};

use crate::WsErr;

/// Closes a stream from another task, such as a server's shutdown signal, while the stream
/// (or its halves) is busy elsewhere.
///
/// Get one with [`WsIo::close_handle`](crate::WsIo::close_handle) (or from either half);
/// it is `Clone`, `Send` and `Sync`. [`close`](Self::close) asks the stream to close with a
/// code and reason: the stream sends the close frame after the bytes already written, exactly
/// as [`close_with`](crate::WsIo::close_with) would, and wakes whoever waits on it. From then
/// on, writes fail with `NotConnected`; the reader reads on until the peer answers (EOF) or the
/// close timeout runs out. A handle does nothing once the connection is closing or over.
///
/// ```
/// # async fn demo(mut stream: ws_stream_tungstenite::WsStream<futures::io::Cursor<Vec<u8>>>) {
/// use tungstenite::protocol::frame::coding::CloseCode;
///
/// let handle = stream.close_handle();
/// // In a shutdown task: every client gets 1001 after the bytes already echoed.
/// handle.close(CloseCode::Away, "server shutting down").unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct CloseHandle {
    request: Arc<CloseRequest>,
    /// Wakes both sides of the stream.
    wake: Waker,
}

/// The request shared between the handles and the engine.
#[derive(Debug)]
pub(crate) struct CloseRequest {
    requested: AtomicBool,
    frame: Mutex<Option<CloseFrame>>,
    /// The most a control frame can carry on this stream.
    control_max: usize,
}

impl CloseHandle {
    pub(crate) fn new(request: Arc<CloseRequest>, wake: Waker) -> Self {
        Self { request, wake }
    }

    /// Asks the stream to close with this code and reason (cut to 123 bytes at a character
    /// boundary). The first request wins; later ones, and requests after the stream began
    /// closing (by any means), change nothing.
    ///
    /// # Errors
    ///
    /// [`WsErr::InvalidCloseCode`] for codes that may not be sent, [`WsErr::ControlTooLarge`]
    /// when tungstenite's write buffer limit leaves no room for the reason. Nothing changes
    /// then.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), WsErr> {
        let frame = close_frame(code, reason, self.request.control_max)?;
        let mut slot = self
            .request
            .frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(frame);
            self.request.requested.store(true, Ordering::Release);
        }
        drop(slot);
        self.wake.wake_by_ref();
        Ok(())
    }
}

impl fmt::Debug for CloseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseHandle")
            .field("requested", &self.request.requested.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CloseRequest {
    pub(crate) fn new(control_max: usize) -> Self {
        Self {
            requested: AtomicBool::new(false),
            frame: Mutex::new(None),
            control_max,
        }
    }

    /// A close was asked for and not taken yet (one atomic load: the hot paths ask).
    pub(crate) fn is_pending(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Takes the requested frame. The engine acts on it only while the connection is open,
    /// which makes the first request win.
    pub(crate) fn take(&self) -> Option<CloseFrame> {
        if !self.requested.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A close frame with this code and reason: the code must be one that may be sent, the reason
/// is cut to the 123 bytes a close frame carries (at a character boundary), and the frame must
/// fit `control_max`.
pub(crate) fn close_frame(
    code: CloseCode,
    reason: &str,
    control_max: usize,
) -> Result<CloseFrame, WsErr> {
    let allowed = code.is_allowed() && u16::from(code) >= 1000;
    if !allowed {
        return Err(WsErr::InvalidCloseCode { code });
    }
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    if 2 + end > control_max {
        return Err(WsErr::ControlTooLarge { max: control_max });
    }
    Ok(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.get(..end).unwrap_or_default()),
    })
}
