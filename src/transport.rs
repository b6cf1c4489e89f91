//! What a [`WsIo`](crate::WsIo) runs over: any WebSocket of tungstenite messages, or one made
//! of two parts.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures_core::Stream;
use futures_sink::Sink;
use tungstenite::{Error as TungErr, Message};

/// Any WebSocket of tungstenite 0.30 messages: a `Stream` of incoming messages and a `Sink` of
/// outgoing ones.
///
/// Implemented for every such type: async-tungstenite's `WebSocketStream`, tokio-tungstenite's
/// `WebSocketStream`, [`Joined`], and anything else of the same shape. Nothing to implement by
/// hand.
pub trait Transport:
    Stream<Item = Result<Message, TungErr>> + Sink<Message, Error = TungErr> + Unpin
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Message, TungErr>> + Sink<Message, Error = TungErr> + Unpin
{
}

/// A [`Transport`] from a separate receiving stream and sending sink, such as
/// the halves of async-tungstenite's `WebSocketStream::split` (`WebSocketReceiver`,
/// `WebSocketSender`).
///
/// ```
/// # async fn demo(ws: async_tungstenite::WebSocketStream<futures::io::Cursor<Vec<u8>>>) {
/// use ws_stream_tungstenite::{Config, Joined, WsIo};
///
/// let (sender, receiver) = ws.split();
/// let stream = WsIo::from_transport(Joined::new(receiver, sender), Config::default());
/// # drop(stream); }
/// ```
#[derive(Debug)]
pub struct Joined<R, W> {
    receiver: R,
    sender: W,
}

impl<R, W> Joined<R, W> {
    /// Joins a stream of incoming messages and a sink of outgoing ones.
    pub fn new(receiver: R, sender: W) -> Self {
        Self { receiver, sender }
    }

    /// The receiving and the sending part.
    pub fn into_parts(self) -> (R, W) {
        (self.receiver, self.sender)
    }
}

impl<R, W> Stream for Joined<R, W>
where
    R: Stream<Item = Result<Message, TungErr>> + Unpin,
    W: Unpin,
{
    type Item = Result<Message, TungErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().receiver).poll_next(cx)
    }
}

impl<R, W> Sink<Message> for Joined<R, W>
where
    R: Unpin,
    W: Sink<Message, Error = TungErr> + Unpin,
{
    type Error = TungErr;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Pin::new(&mut self.get_mut().sender).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), TungErr> {
        Pin::new(&mut self.get_mut().sender).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Pin::new(&mut self.get_mut().sender).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TungErr>> {
        Pin::new(&mut self.get_mut().sender).poll_close(cx)
    }
}
