//! The echo server template (`examples/echo_server.rs`): handshake timeout, connection cap,
//! message limit, graceful shutdown in-process and by SIGTERM to the example's process. Every
//! server listens on 127.0.0.1 port 0.

#[allow(dead_code, reason = "the example's module; the tests use part of it")]
#[path = "../echo_server/server.rs"]
mod server;

use std::{
    future::Future,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use ws_stream_tungstenite::{
    CloseCode, Config,
    async_tungstenite::{
        WebSocketStream,
        tokio::{ConnectStream, connect_async},
    },
    tungstenite::Message,
};

type Client = WebSocketStream<ConnectStream>;

async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("test timed out")
}

/// A server on 127.0.0.1 port 0, its address, the trigger of its shutdown and its task.
async fn start(
    options: server::Options,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server::run(listener, options, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn connect(addr: SocketAddr) -> Result<Client, ws_stream_tungstenite::tungstenite::Error> {
    connect_async(format!("ws://{addr}"))
        .await
        .map(|(ws, _)| ws)
}

/// Sends one binary message and checks that it comes back.
async fn round_trip(client: &mut Client, payload: &[u8]) {
    client
        .send(Message::binary(payload.to_vec()))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < payload.len() {
        match client.next().await {
            Some(Ok(Message::Binary(bytes))) => got.extend_from_slice(&bytes),
            other => panic!("expected the echo, got {other:?}"),
        }
    }
    assert_eq!(got, payload);
}

/// Reads until the TCP connection ends; panics if the server sends anything.
async fn expect_closed(mut tcp: TcpStream) -> Instant {
    let mut buf = [0; 1024];
    match tcp.read(&mut buf).await {
        Ok(0) | Err(_) => Instant::now(),
        Ok(n) => panic!("expected the connection closed, got {n} bytes"),
    }
}

fn options() -> server::Options {
    server::Options {
        config: Config::default().close_timeout(Duration::from_secs(3)),
        ..server::Options::default()
    }
}

#[test]
fn the_arguments_are_parsed_and_unknown_flags_refused() {
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let o = server::parse_args(args(
        "127.0.0.1:0 --handshake-timeout 2.5 --max-connections 7 --max-message-size 4096 --lean",
    ))
    .unwrap();
    assert_eq!(o.addr, "127.0.0.1:0");
    assert_eq!(o.handshake_timeout, Duration::from_millis(2500));
    assert_eq!(o.max_connections, 7);
    assert_eq!(o.ws_config().max_message_size, Some(4096));
    assert_eq!(o.ws_config().max_frame_size, Some(4096));
    assert_eq!(o.ws_config().read_buffer_size, 4096);
    let d = server::parse_args(Vec::new()).unwrap();
    assert_eq!(d.handshake_timeout, Duration::from_secs(10));
    assert_eq!(d.max_connections, 10_000);
    assert_eq!(d.ws_config().max_message_size, Some(1 << 20));
    assert!(server::parse_args(args("--frobnicate")).is_err());
    assert!(server::parse_args(args("--max-connections 0")).is_err());
    assert!(server::parse_args(args("--handshake-timeout")).is_err());
}

/// A client that sends nothing and one that sends half a request are closed after the
/// handshake timeout; a normal client keeps echoing all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_request_connections_are_closed_after_the_handshake_timeout() {
    within(20, async {
        let (addr, _stop, _task) = start(server::Options {
            handshake_timeout: Duration::from_secs(1),
            ..options()
        })
        .await;
        let began = Instant::now();
        let idle = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            .await
            .unwrap();
        let mut client = connect(addr).await.unwrap();
        round_trip(&mut client, b"before").await;

        let idle_closed = tokio::spawn(expect_closed(idle));
        let half_closed = tokio::spawn(expect_closed(half));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Past the handshake timeout: the upgraded client is not affected.
        round_trip(&mut client, b"after").await;
        for closed in [idle_closed.await.unwrap(), half_closed.await.unwrap()] {
            let after = closed - began;
            assert!(
                after >= Duration::from_millis(900),
                "closed too early: {after:?}"
            );
            assert!(after < Duration::from_secs(5), "closed too late: {after:?}");
        }
        round_trip(&mut client, b"still").await;
        client.close(None).await.unwrap();
    })
    .await;
}

/// With two slots, one held by an echoing client and one by a connection still in the
/// handshake, a third is refused at once while the first keeps echoing; when the handshake's
/// connection ends, its slot admits a new client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_then_admits_after_a_slot_frees() {
    within(20, async {
        let (addr, _stop, _task) = start(server::Options {
            max_connections: 2,
            ..options()
        })
        .await;
        let mut first = connect(addr).await.unwrap();
        round_trip(&mut first, b"one").await;
        let in_handshake = TcpStream::connect(addr).await.unwrap();
        // Let the server accept it.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let began = Instant::now();
        let refused = connect(addr).await;
        assert!(refused.is_err(), "a third connection was admitted");
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "refused too slowly"
        );
        // A raw connection over the cap is closed without an answer.
        let over = TcpStream::connect(addr).await.unwrap();
        expect_closed(over).await;
        round_trip(&mut first, b"still echoing").await;

        drop(in_handshake);
        let mut admitted = None;
        for _ in 0..50 {
            if let Ok(client) = connect(addr).await {
                admitted = Some(client);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut admitted = admitted.expect("the freed slot admitted no one");
        round_trip(&mut admitted, b"admitted").await;
        round_trip(&mut first, b"first").await;
    })
    .await;
}

/// A message over `--max-message-size` gets close 1009 after the bytes before it were echoed.
#[tokio::test]
async fn a_message_over_the_limit_is_closed_with_1009() {
    within(20, async {
        let (addr, _stop, _task) = start(server::Options {
            max_message_size: 1024,
            ..options()
        })
        .await;
        let mut client = connect(addr).await.unwrap();
        round_trip(&mut client, &[7; 1024]).await;
        client.send(Message::binary(vec![8; 1025])).await.unwrap();
        match client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
            other => panic!("expected close 1009, got {other:?}"),
        }
    })
    .await;
}

/// The byte at position `i` of every client's stream.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A client that sends the pattern without pause and reads the echo, until the server closes.
/// Returns what came back and the close frame's code; checks the echo is a prefix of what was
/// sent.
async fn streaming_client(client: Client, echoed: oneshot::Sender<()>) -> (usize, CloseCode) {
    let (mut sink, mut stream) = client.split();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        loop {
            let chunk: Vec<u8> = (sent..sent + 4096).map(pattern).collect();
            if sink.send(Message::binary(chunk)).await.is_err() {
                return sink;
            }
            sent += 4096;
            tokio::task::yield_now().await;
        }
    });
    let mut got = 0;
    let mut echoed = Some(echoed);
    let code = loop {
        match stream.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                for (i, b) in bytes.iter().enumerate() {
                    assert_eq!(*b, pattern(got + i), "echo corrupted at {}", got + i);
                }
                got += bytes.len();
                if got >= 64 << 10 {
                    if let Some(tx) = echoed.take() {
                        let _ = tx.send(());
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break frame.expect("a close frame with a code").code;
            }
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(err)) => panic!("connection ended without a close frame: {err}"),
            None => panic!("connection ended without a close frame"),
        }
    };
    // Answer the close: tungstenite queued the reply; the stream sends it while polled.
    let mut sink = writer.await.unwrap();
    let _ = sink.close(None).await;
    while let Some(Ok(_)) = stream.next().await {}
    (got, code)
}

/// An in-process shutdown: every client in the middle of a transfer gets the bytes already
/// echoed, then 1001; a connection in the handshake is dropped; the server returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_connection_with_1001_after_the_bytes_echoed() {
    within(30, async {
        let (addr, stop, task) = start(options()).await;
        let mut clients = Vec::new();
        let mut started = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel();
            let client = connect(addr).await.unwrap();
            clients.push(tokio::spawn(streaming_client(client, tx)));
            started.push(rx);
        }
        let mut idle_client = connect(addr).await.unwrap();
        round_trip(&mut idle_client, b"idle").await;
        let in_handshake = TcpStream::connect(addr).await.unwrap();
        for rx in started {
            rx.await.unwrap();
        }

        stop.send(()).unwrap();
        for client in clients {
            let (got, code) = client.await.unwrap();
            assert!(got >= 64 << 10);
            assert_eq!(code, CloseCode::Away);
        }
        match idle_client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "server shutting down");
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
        while let Some(Ok(_)) = idle_client.next().await {}
        expect_closed(in_handshake).await;
        task.await.unwrap().unwrap();
        // No longer listening.
        assert!(TcpStream::connect(addr).await.is_err());
    })
    .await;
}

/// The example's binary, built on demand next to this test's profile directory.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "-p", "integrations", "--example", "echo_server"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().unwrap();
    assert!(status.success(), "building the example failed");
    profile_dir.join("examples").join("echo_server")
}

/// SIGTERM to the example's process: every client gets the bytes already echoed and 1001, and
/// the process exits with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let binary = tokio::task::spawn_blocking(example_binary).await.unwrap();
    within(60, async {
        let mut child = Command::new(binary)
            .args(["127.0.0.1:0", "--close-timeout", "3"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (addr_tx, addr_rx) = oneshot::channel();
        // Reads the address, then drains the log so the server never blocks on it.
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                    }
                }
            }
        });
        let addr = addr_rx.await.expect("the server printed no address");

        let mut clients = Vec::new();
        let mut started = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel();
            let client = connect(addr).await.unwrap();
            clients.push(tokio::spawn(streaming_client(client, tx)));
            started.push(rx);
        }
        for rx in started {
            rx.await.unwrap();
        }

        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        for client in clients {
            let (got, code) = client.await.unwrap();
            assert!(got >= 64 << 10);
            assert_eq!(code, CloseCode::Away);
        }
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "exit status {status}");
    })
    .await;
}
