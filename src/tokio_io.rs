//! tokio's `AsyncRead`, `AsyncBufRead` and `AsyncWrite`: the same thin shells as in
//! `futures_io.rs`, over the same engine, for the stream and for both halves.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use crate::{ReadHalf, Transport, WriteHalf, WsIo};

impl<T: Transport> AsyncRead for WsIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // `put_slice` writes into the unfilled part without zeroing it first.
        let room = buf.remaining();
        self.get_mut()
            .core
            .poll_read_with(cx, room, |chunk| buf.put_slice(chunk))
            .map_ok(|_| ())
    }
}

impl<T: Transport> AsyncBufRead for WsIo<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().core.poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().core.consume(amt);
    }
}

impl<T: Transport> AsyncRead for ReadHalf<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        self.get_mut()
            .poll_read_with(cx, room, |chunk| buf.put_slice(chunk))
            .map_ok(|_| ())
    }
}

impl<T: Transport> AsyncBufRead for ReadHalf<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().poll_fill_chunk(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().consume_chunk(amt);
    }
}

impl<T: Transport> AsyncWrite for WsIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().core.poll_write(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().core.poll_write(cx, bufs)
    }

    /// `false`: every slice is copied into the message being built either way, so a gathered
    /// write saves nothing, while callers such as tokio-util's `poll_write_buf` set up an
    /// array of 64 slices for every vectored call. `poll_write_vectored` still takes all the
    /// slices it is given.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().core.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().core.poll_close(cx)
    }
}

impl<T: Transport> AsyncWrite for WriteHalf<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.lock_core().poll_write(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.lock_core().poll_write(cx, bufs)
    }

    /// `false`, as for the whole stream.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock_core().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock_core().poll_close(cx)
    }
}
