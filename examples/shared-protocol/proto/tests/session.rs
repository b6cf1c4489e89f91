//! Whole sessions between `Client` and `serve` over an in-memory duplex pipe.
//!
//! The pipe buffers only a few bytes, so every frame crosses it in many short reads and
//! writes, as over a network; each test has a timeout, so a stall fails instead of hanging.

#![allow(
    clippy::expect_used,
    reason = "a test fails by panicking, with a message"
)]

use std::{future::Future, io, time::Duration};

use asynchronous_codec::Framed;
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use proto::{Client, Error, FrameCodec, MAX_FRAME_LEN, Reply, Request, serve};
use tokio::io::DuplexStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

type Io = Compat<DuplexStream>;

/// Small enough that no frame fits in one write.
const PIPE_BUF: usize = 7;

fn pipe() -> (Io, Io) {
    pipe_with_buffer(PIPE_BUF)
}

fn pipe_with_buffer(size: usize) -> (Io, Io) {
    let (a, b) = tokio::io::duplex(size);
    (a.compat(), b.compat())
}

async fn timed<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("test timed out")
}

/// A raw client: frames it sends are requests, frames it reads are replies.
fn raw_client(io: Io) -> Framed<Io, FrameCodec<Reply, Request>> {
    Framed::new(io, FrameCodec::new())
}

#[tokio::test]
async fn several_calls_then_client_closes() {
    let (client_io, server_io) = pipe();

    let client = async {
        let mut client = Client::new(client_io);
        let replies = vec![
            client
                .call(Request::Echo {
                    text: "hello".into(),
                })
                .await?,
            client.call(Request::Add { a: 40, b: 2 }).await?,
            client
                .call(Request::Reverse {
                    text: "añb😀".into(),
                })
                .await?,
            client.call(Request::Add { a: i64::MAX, b: 1 }).await?,
        ];
        client.close().await?;
        Ok::<_, Error>(replies)
    };

    let (replies, served) = timed(async { tokio::join!(client, serve(server_io)) }).await;

    let replies = replies.unwrap();
    assert_eq!(
        replies[0],
        Reply::Echo {
            text: "hello".into()
        }
    );
    assert_eq!(replies[1], Reply::Sum { value: 42 });
    assert_eq!(
        replies[2],
        Reply::Reversed {
            text: "😀bña".into()
        }
    );
    assert!(matches!(&replies[3], Reply::Error { message } if message.contains("overflow")));
    let served = served.unwrap();
    assert_eq!(served.requests, 4);
    assert!(!served.bye);
}

#[tokio::test]
async fn bye_lets_the_server_close_first() {
    let (client_io, server_io) = pipe();

    let client = async {
        let mut client = Client::new(client_io);
        let echo = client.call(Request::Echo { text: "x".into() }).await?;
        client.bye().await?;
        Ok::<_, Error>(echo)
    };

    let (echo, served) = timed(async { tokio::join!(client, serve(server_io)) }).await;

    assert_eq!(echo.unwrap(), Reply::Echo { text: "x".into() });
    let served = served.unwrap();
    assert_eq!(served.requests, 2);
    assert!(served.bye);
}

#[tokio::test]
async fn malformed_request_gets_an_error_reply_and_the_session_goes_on() {
    let (mut client_io, server_io) = pipe();

    let client = async {
        let garbage = b"{not json";
        client_io
            .write_all(&(garbage.len() as u32).to_be_bytes())
            .await?;
        client_io.write_all(garbage).await?;

        let mut framed = raw_client(client_io);
        let first = framed.next().await.ok_or(Error::Closed)??;
        framed.send(&Request::Add { a: 1, b: 1 }).await?;
        let second = framed.next().await.ok_or(Error::Closed)??;
        framed.close().await?;
        let end = framed.next().await.transpose()?;
        Ok::<_, Error>((first, second, end))
    };

    let (client, served) = timed(async { tokio::join!(client, serve(server_io)) }).await;

    let (first, second, end) = client.unwrap();
    assert!(matches!(first, Reply::Error { message } if message.starts_with("malformed request")));
    assert_eq!(second, Reply::Sum { value: 2 });
    assert_eq!(end, None);
    assert_eq!(served.unwrap().requests, 2);
}

#[tokio::test]
async fn oversized_frame_is_fatal() {
    let (mut client_io, server_io) = pipe();

    let client = async {
        client_io
            .write_all(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes())
            .await?;
        // The server gives up and closes: we see the end of stream.
        let mut rest = Vec::new();
        client_io.read_to_end(&mut rest).await?;
        Ok::<_, io::Error>(rest)
    };

    let (client, served) = timed(async { tokio::join!(client, serve(server_io)) }).await;

    assert!(matches!(served, Err(Error::FrameTooLarge { .. })));
    assert_eq!(client.unwrap(), b"");
}

#[tokio::test]
async fn stream_cut_inside_a_frame_is_an_error_not_an_end() {
    let (mut client_io, server_io) = pipe();

    let client = async {
        client_io.write_all(&[0, 0, 0, 10, b'{']).await?;
        client_io.close().await
    };

    let (client, served) = timed(async { tokio::join!(client, serve(server_io)) }).await;

    client.unwrap();
    match served {
        Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
        other => panic!("expected UnexpectedEof, got {other:?}"),
    }
}

#[tokio::test]
async fn server_closing_before_the_reply_is_reported() {
    let (client_io, mut server_io) = pipe();

    let server = async {
        // Take the request in, then leave without answering.
        let mut header = [0; 4];
        server_io.read_exact(&mut header).await?;
        let mut body = vec![0; u32::from_be_bytes(header) as usize];
        server_io.read_exact(&mut body).await?;
        server_io.close().await?;
        Ok::<_, io::Error>(body)
    };
    let client = async {
        let mut client = Client::new(client_io);
        client.call(Request::Reverse { text: "ab".into() }).await
    };

    let (body, reply) = timed(async { tokio::join!(server, client) }).await;

    assert_eq!(body.unwrap(), br#"{"op":"reverse","text":"ab"}"#);
    assert!(matches!(reply, Err(Error::Closed)));
}

#[tokio::test]
async fn request_after_bye_is_a_protocol_violation() {
    // Room for both requests: the client writes ahead without reading, which would deadlock
    // against a server that is busy writing its reply into a full pipe.
    let (client_io, server_io) = pipe_with_buffer(1024);

    let client = async {
        let mut framed = raw_client(client_io);
        framed.send(&Request::Bye).await?;
        framed
            .send(&Request::Echo {
                text: "late".into(),
            })
            .await?;
        let reply = framed.next().await.ok_or(Error::Closed)??;
        Ok::<_, Error>(reply)
    };

    let (reply, served) = timed(async { tokio::join!(client, serve(server_io)) }).await;

    assert_eq!(reply.unwrap(), Reply::Bye);
    assert!(matches!(served, Err(Error::Protocol(_))));
}
