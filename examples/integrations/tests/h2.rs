//! WebSockets over HTTP/2 (RFC 8441) with hyper 1: many byte streams over one TCP connection
//! on 127.0.0.1 (port 0), with the helpers of the `h2` example (`h2_ws.rs`).
//!
//! - 20 streams of 1 MiB each echoed byte for byte over one accepted TCP connection, each
//!   ending with the close code and reason the peer sent and a clean EOF on both sides;
//! - a close code other than 1000 reaches the peer as an error with that code;
//! - a server that keeps its stream after EOF makes the client wait out its close timeout
//!   (tokio-tungstenite's own stream, too, ends only when the server drops it);
//! - the request check, and the SETTINGS wait against a server without RFC 8441;
//! - head-of-line blocking: a stream that the server stops reading stalls the others with
//!   hyper's default server windows, and does not with `Windows::RECOMMENDED`.

#[path = "../h2_ws.rs"]
mod h2_ws;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use h2_ws::{BoxError, H2Stream, Windows};
use http_body_util::Empty;
use hyper::{
    Method, Request, Response, StatusCode, ext::Protocol, header::SEC_WEBSOCKET_VERSION,
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use ws_stream_tungstenite::{
    Channel, CloseCode, Config, Observable, ObserveConfig, WsErr, WsEvent,
};

type TestResult = Result<(), BoxError>;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Fails the test instead of hanging it.
async fn within<F: Future<Output = TestResult>>(limit: Duration, fut: F) -> TestResult {
    tokio::time::timeout(limit, fut).await?
}

/// What a server session reports when its stream ended: the peer's close frame (code and
/// reason) and how the reader ended.
type Ended = (Option<(CloseCode, String)>, io::Result<()>);

/// A server on 127.0.0.1 port 0 that counts the TCP connections it accepts and serves each as
/// HTTP/2 with `windows`. Paths: `/echo` echoes until EOF, `/hold` never reads,
/// `/echo-then-keep` reads to EOF and then keeps the stream,
/// `/close-4000` closes at once with 4000 "go away". Each `/echo` session reports how it ended.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    ended: mpsc::UnboundedReceiver<Ended>,
}

impl Server {
    async fn start(windows: Windows) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let (report, ended) = mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _peer)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let report = report.clone();
                tokio::spawn(h2_ws::serve_connection(
                    tcp,
                    windows,
                    move |path, stream| {
                        let report = report.clone();
                        async move {
                            match path.as_str() {
                                "/echo" => {
                                    let _ = report.send(echo(stream).await);
                                }
                                "/echo-then-keep" => {
                                    // Reads to EOF, then keeps the stream instead of dropping it.
                                    let mut stream = stream;
                                    let _ = stream.read_to_end(&mut Vec::new()).await;
                                    std::future::pending::<()>().await;
                                }
                                "/hold" => {
                                    // Keeps the stream and never reads it; the test's end drops it.
                                    let _stream = stream;
                                    std::future::pending::<()>().await;
                                }
                                "/close-4000" => {
                                    let mut stream = stream;
                                    let _ =
                                        stream.close_with(CloseCode::from(4000), "go away").await;
                                    let _ = stream.read_to_end(&mut Vec::new()).await;
                                }
                                _ => {}
                            }
                        }
                    },
                ));
            }
        });
        Ok(Self {
            addr,
            accepted,
            ended,
        })
    }

    fn uri(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn client(&self, windows: Windows) -> Result<H2Client, BoxError> {
        let tcp = TcpStream::connect(self.addr).await?;
        h2_ws::connect(tcp, windows, Duration::from_secs(5)).await
    }
}

type H2Client = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// Echoes until EOF, then reports the close frame the events carried and how reading ended.
async fn echo(mut stream: H2Stream) -> Ended {
    let mut events = match stream
        .observe(ObserveConfig::default().channel(Channel::Bounded(8)))
        .await
    {
        Ok(events) => events,
        Err(e) => return (None, Err(io::Error::other(e))),
    };
    let mut buf = vec![0; 64 * KIB];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
            stream.flush().await?;
        }
    }
    .await;
    drop(stream);
    let mut close = None;
    while let Some(event) = events.next().await {
        if let WsEvent::CloseFrame(Some(frame)) = event {
            close = Some((frame.code, frame.reason.to_string()));
        }
    }
    (close, read)
}

/// Bytes of stream `id`: distinct per stream and per offset, so a byte delivered to the wrong
/// stream or place is caught.
fn pattern(id: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 31 + id as u64 * 7 + (i / 251) as u64) as u8)
        .collect()
}

/// Sends `data` in 64 KiB pieces, each echoed before the next goes, then closes with 1000
/// "bye" and reads to EOF.
async fn echo_client(mut stream: H2Stream, data: Vec<u8>) -> TestResult {
    let mut back = vec![0; 64 * KIB];
    for piece in data.chunks(64 * KIB) {
        stream.write_all(piece).await?;
        stream.flush().await?;
        stream.read_exact(&mut back[..piece.len()]).await?;
        if back[..piece.len()] != *piece {
            return Err("an echoed piece differs".into());
        }
    }
    stream.close_with(CloseCode::Normal, "bye").await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the echo", rest.len()).into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_streams_of_one_mib_over_one_connection() -> TestResult {
    within(Duration::from_secs(60), async {
        const STREAMS: usize = 20;
        let mut server = Server::start(Windows::RECOMMENDED).await?;
        let client = server.client(Windows::RECOMMENDED).await?;
        let tasks: Vec<_> = (0..STREAMS)
            .map(|id| {
                let mut client = client.clone();
                let uri = server.uri("/echo");
                tokio::spawn(async move {
                    let stream = h2_ws::open(&mut client, &uri, Config::default()).await?;
                    echo_client(stream, pattern(id, MIB)).await
                })
            })
            .collect();
        for task in tasks {
            // Each client read EOF after its close: a clean end.
            task.await??;
        }
        for _ in 0..STREAMS {
            let (close, read) = server.ended.recv().await.ok_or("a session vanished")?;
            assert_eq!(close, Some((CloseCode::Normal, "bye".to_string())));
            // The server's reader ended with EOF, not an error.
            read?;
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_close_code_other_than_1000_reaches_the_client_as_an_error() -> TestResult {
    within(Duration::from_secs(20), async {
        let server = Server::start(Windows::RECOMMENDED).await?;
        let mut client = server.client(Windows::RECOMMENDED).await?;
        let mut stream =
            h2_ws::open(&mut client, &server.uri("/close-4000"), Config::default()).await?;
        let err = stream
            .read_to_end(&mut Vec::new())
            .await
            .expect_err("a close with 4000 is not an end of stream");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        let ws_err = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<WsErr>())
            .ok_or("the error carries no WsErr")?;
        match ws_err {
            WsErr::PeerClosed { code, reason } => {
                assert_eq!(*code, CloseCode::from(4000));
                assert_eq!(reason, "go away");
            }
            other => return Err(format!("expected PeerClosed, got {other:?}").into()),
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_server_that_keeps_its_stream_after_eof_makes_the_client_wait_out_its_close_timeout()
-> TestResult {
    within(Duration::from_secs(30), async {
        let server = Server::start(Windows::RECOMMENDED).await?;
        let mut client = server.client(Windows::RECOMMENDED).await?;

        // The server drops its stream after EOF: the client's read ends with the HTTP/2
        // stream, long before its close timeout (30 s).
        let config = Config::default().close_timeout(Duration::from_secs(30));
        let mut stream = h2_ws::open(&mut client, &server.uri("/echo"), config).await?;
        stream.close_with(CloseCode::Normal, "bye").await?;
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut Vec::new()))
            .await
            .map_err(|_| "the client waited although the server dropped its stream")??;

        // The server answers the close but keeps the HTTP/2 stream open: the client's
        // tungstenite waits for the transport's end, so the read ends only at the close
        // timeout (1 s here). The handshake did complete, so that end is still a clean EOF.
        let config = Config::default().close_timeout(Duration::from_secs(1));
        let mut stream = h2_ws::open(&mut client, &server.uri("/echo-then-keep"), config).await?;
        let started = std::time::Instant::now();
        stream.close_with(CloseCode::Normal, "bye").await?;
        stream.read_to_end(&mut Vec::new()).await?;
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "ended after {:?}, before the close timeout",
            started.elapsed()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_plain_tungstenite_client_waits_for_the_end_of_the_http2_stream() -> TestResult {
    within(Duration::from_secs(20), async {
        let server = Server::start(Windows::RECOMMENDED).await?;
        let mut client = server.client(Windows::RECOMMENDED).await?;
        // tokio-tungstenite's own stream, not this crate's: it ends only when the transport
        // ends, i.e. when the server drops its stream after EOF.
        let plain = |stream: H2Stream| stream.into_inner().map_err(|_| "stream in use");

        let mut dropped =
            plain(h2_ws::open(&mut client, &server.uri("/echo"), Config::default()).await?)?;
        dropped.close(None).await?;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while dropped.next().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "the server dropped its stream: the client must see the end"
        );

        let mut kept = plain(
            h2_ws::open(
                &mut client,
                &server.uri("/echo-then-keep"),
                Config::default(),
            )
            .await?,
        )?;
        kept.close(None).await?;
        let ended = tokio::time::timeout(Duration::from_secs(1), async {
            while kept.next().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_err(),
            "the server kept its stream: the client cannot see the end"
        );
        Ok(())
    })
    .await
}

#[test]
fn the_request_check_wants_connect_websocket_and_version_13() {
    let request = |method: Method, protocol: Option<&'static str>, version: Option<&str>| {
        let mut builder = Request::builder()
            .method(method)
            .uri("http://127.0.0.1/echo");
        if let Some(protocol) = protocol {
            builder = builder.extension(Protocol::from_static(protocol));
        }
        if let Some(version) = version {
            builder = builder.header(SEC_WEBSOCKET_VERSION, version);
        }
        builder.body(()).expect("a valid request")
    };
    let refused = |request: Request<()>| {
        h2_ws::check_request(&request).expect_err("this request must be refused")
    };

    let ok = h2_ws::connect_request("http://127.0.0.1/echo").expect("a valid URI");
    assert!(h2_ws::check_request(&ok).is_ok());
    assert!(h2_ws::check_request(&request(Method::CONNECT, Some("websocket"), Some("13"))).is_ok());

    // Not extended CONNECT, or another protocol: 400.
    for wrong in [
        request(Method::GET, Some("websocket"), Some("13")),
        request(Method::CONNECT, None, Some("13")),
        request(Method::CONNECT, Some("webtransport"), Some("13")),
    ] {
        let response = refused(wrong);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(SEC_WEBSOCKET_VERSION).is_none());
    }
    // Another WebSocket version, or none: 400 naming the one supported.
    for version in [Some("8"), None] {
        let response = refused(request(Method::CONNECT, Some("websocket"), version));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[SEC_WEBSOCKET_VERSION], "13");
    }
}

#[tokio::test]
async fn the_settings_wait_gives_up_on_a_server_without_rfc_8441() -> TestResult {
    within(Duration::from_secs(20), async {
        // A plain HTTP/2 server: no `enable_connect_protocol()`.
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let Ok((tcp, _peer)) = listener.accept().await else {
                return;
            };
            let service = service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
        let tcp = TcpStream::connect(addr).await?;
        let (_sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await?;
        let waited = h2_ws::extended_connect_allowed(&connection, Duration::from_millis(300)).await;
        assert!(waited.is_err(), "the server never allowed extended CONNECT");
        Ok(())
    })
    .await
}

// ---- head-of-line blocking -------------------------------------------------------------------

/// Opens `/hold` (a stream the server never reads) and writes into it from a task until the
/// stream accepted at least `window` bytes and then made no progress for 300 ms: the server's
/// window for it is full (a slow machine cannot pass for a stall before that). Returns the bytes
/// the stream accepted.
async fn fill_a_stalled_stream(
    client: &mut H2Client,
    server: &Server,
    window: u32,
) -> Result<u64, BoxError> {
    let mut stream = h2_ws::open(client, &server.uri("/hold"), Config::default()).await?;
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        let chunk = vec![7; 16 * KIB];
        // Bounded: 64 MiB is far more than any window here.
        for _ in 0..4096 {
            if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    // No progress for 300 ms in a row: the writer is blocked by flow control.
    let mut last = 0;
    let mut still = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = written.load(Ordering::SeqCst);
        if now >= u64::from(window) && now == last {
            still += 1;
            if still == 6 {
                return Ok(now);
            }
        } else {
            still = 0;
        }
        last = now;
    }
    Err("the writer into the held stream never stalled".into())
}

/// 256 KiB written on a second stream and read back.
async fn second_stream_echo(client: &mut H2Client, server: &Server) -> TestResult {
    let mut stream = h2_ws::open(client, &server.uri("/echo"), Config::default()).await?;
    let data = pattern(1, 256 * KIB);
    stream.write_all(&data).await?;
    stream.flush().await?;
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).await?;
    assert!(back == data, "the echo differs");
    Ok(())
}

#[tokio::test]
async fn a_stalled_stream_does_not_block_the_others_with_the_recommended_windows() -> TestResult {
    within(Duration::from_secs(30), async {
        let server = Server::start(Windows::RECOMMENDED).await?;
        let mut client = server.client(Windows::RECOMMENDED).await?;
        let held = fill_a_stalled_stream(&mut client, &server, Windows::RECOMMENDED.stream).await?;
        eprintln!(
            "recommended windows: the held stream took {} KiB",
            held / 1024
        );
        // Flow control stopped the held stream at its own window (4 MiB), far below the
        // connection's (32 MiB).
        assert!(
            held < u64::from(Windows::RECOMMENDED.connection) / 4,
            "{held}"
        );
        let started = std::time::Instant::now();
        tokio::time::timeout(
            Duration::from_secs(5),
            second_stream_echo(&mut client, &server),
        )
        .await
        .map_err(|_| "the second stream's echo stalled behind the held stream")??;
        eprintln!(
            "recommended windows: the second stream's 256 KiB echo took {:?}",
            started.elapsed()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_stalled_stream_blocks_the_others_with_hyper_default_windows() -> TestResult {
    within(Duration::from_secs(30), async {
        let server = Server::start(Windows::HYPER_SERVER_DEFAULT).await?;
        let mut client = server.client(Windows::HYPER_CLIENT_DEFAULT).await?;
        let held = fill_a_stalled_stream(
            &mut client,
            &server,
            Windows::HYPER_SERVER_DEFAULT.connection,
        )
        .await?;
        eprintln!("default windows: the held stream took {} KiB", held / 1024);
        // Flow control stopped the held stream once it had the server's whole connection window
        // (1 MiB, the same as its stream window).
        assert!(
            held < 2 * u64::from(Windows::HYPER_SERVER_DEFAULT.connection),
            "{held}"
        );
        // So nothing more can reach the server on any stream: the second echo cannot finish.
        let second = tokio::time::timeout(
            Duration::from_secs(1),
            second_stream_echo(&mut client, &server),
        )
        .await;
        assert!(
            second.is_err(),
            "the second stream got through: no head-of-line blocking"
        );
        Ok(())
    })
    .await
}
