//! Scenario `h2`: many byte streams over one HTTP/2 connection (RFC 8441, hyper 1) against the
//! same streams on separate HTTP/1.1 WebSocket connections. This crate's `WsStream` at both
//! ends in every variant, the same bytes, only the connection underneath differs.
//!
//! `cargo run --release -p ws_stream_bench -- --quick --only h2`; to run only some variants
//! (for a profiler), name them: `WS_BENCH_H2_VARIANTS=h1,h2`.
//!
//! Every stream carries `per_stream` bytes from the client to the server in 64 KiB writes (one
//! flush at the end); the server checks every byte. Measured from the moment all streams are
//! open (handshakes excluded) until the server holds the last byte: throughput over all streams,
//! and CPU time of both threads per GiB. Then every stream closes with 1000, outside the
//! measurement. Client and server each run on a thread of their own with a current-thread tokio
//! runtime, as the other scenarios do; the variants run interleaved, repetition by repetition.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Method, Request, Response, StatusCode, ext::Protocol, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws_stream_tungstenite::{Config, WsIo};

use crate::scenarios::{runtime, timed_out};
use crate::sys;

const KIB: usize = 1024;
const MIB: u32 = 1024 * 1024;
/// A run that takes longer than this is abandoned as failed.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Bytes per write on the client.
const WRITE: usize = 64 * KIB;

/// How the streams reach the server.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    /// One TCP connection and one HTTP/1.1 WebSocket handshake per stream.
    Http1,
    /// One TCP connection; one HTTP/2 stream per WebSocket.
    Http2 {
        /// Receive windows that both ends advertise: (connection, stream).
        windows: (u32, u32),
        /// `SETTINGS_MAX_FRAME_SIZE` that both ends advertise (hyper's default: 16 KiB).
        max_frame: u32,
    },
}

/// One column of the table.
#[derive(Clone, Debug)]
struct Variant {
    label: &'static str,
    describe: &'static str,
    carrier: Carrier,
    /// tungstenite's read buffer on both ends (its default: 128 KiB).
    read_buffer: usize,
    /// This crate's `Config::max_message_size` (its default: 32 KiB; 64 KiB here unless said).
    message: usize,
}

fn variants() -> Vec<Variant> {
    let recommended = (32 * MIB, 4 * MIB);
    let variant = |label, describe, carrier, read_buffer: usize, message: usize| Variant {
        label,
        describe,
        carrier,
        read_buffer: read_buffer * KIB,
        message: message * KIB,
    };
    let frames = |kib: usize| Carrier::Http2 {
        windows: recommended,
        max_frame: (kib * KIB) as u32,
    };
    vec![
        variant(
            "h1",
            "a TCP connection and an HTTP/1.1 WebSocket per stream",
            Carrier::Http1,
            128,
            64,
        ),
        variant(
            "h2-default",
            "one HTTP/2 connection, hyper's default windows (server 1 MiB/1 MiB, client 5 MiB/2 MiB), 16 KiB frames",
            Carrier::Http2 {
                windows: (0, 0),
                max_frame: (16 * KIB) as u32,
            },
            128,
            64,
        ),
        variant(
            "h2",
            "one HTTP/2 connection, windows 32 MiB/4 MiB (the README's advice), 16 KiB frames",
            frames(16),
            128,
            64,
        ),
        variant(
            "h1-msg32k",
            "as h1, with this crate's default messages of 32 KiB instead of 64 KiB",
            Carrier::Http1,
            128,
            32,
        ),
        variant(
            "h2-msg32k",
            "as h2, with this crate's default messages of 32 KiB instead of 64 KiB",
            frames(16),
            128,
            32,
        ),
        variant(
            "h2-msg256k",
            "as h2, with this crate's messages at 256 KiB instead of 64 KiB",
            frames(16),
            128,
            256,
        ),
        variant(
            "h2-rb16k",
            "as h2, with tungstenite's read buffer at 16 KiB (one DATA frame) instead of 128 KiB",
            frames(16),
            16,
            64,
        ),
        variant(
            "h2-f64k",
            "as h2, with 64 KiB frames (`max_frame_size` on both ends)",
            frames(64),
            128,
            64,
        ),
        variant(
            "h2-tuned",
            "as h2, with 64 KiB frames and tungstenite's read buffer at 64 KiB",
            frames(64),
            64,
            64,
        ),
    ]
}

/// The hook in `main`: with `--list`, names the scenario; with `h2` among `--only`, runs it,
/// prints its table and writes it to `OUT/H2.md`, then takes `h2` out of the list. Returns the
/// exit code when nothing else is left to run.
pub fn hook(
    only: &mut Option<Vec<String>>,
    list: bool,
    quick: bool,
    reps: Option<usize>,
    out: &std::path::Path,
) -> Option<std::process::ExitCode> {
    use std::process::ExitCode;
    if list {
        println!("scenario run only when named (`--only h2`), with a table of its own:");
        println!(
            "  h2           8 streams over one HTTP/2 connection against 8 HTTP/1.1 connections"
        );
        return None;
    }
    let ids = only.as_mut()?;
    if !ids.iter().any(|id| id == "h2") {
        return None;
    }
    ids.retain(|id| id != "h2");
    let code = match run(quick, reps) {
        Ok(md) => {
            println!("{md}");
            let path = out.join("H2.md");
            match std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, &md)) {
                Ok(()) => {
                    eprintln!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot write {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    };
    if ids.is_empty() || code != ExitCode::SUCCESS {
        Some(code)
    } else {
        None
    }
}

/// Runs the scenario and returns its section of RESULTS.md.
pub fn run(quick: bool, reps: Option<usize>) -> Result<String, String> {
    let streams = 8;
    let per_stream: u64 = if quick { 8 } else { 32 } * u64::from(MIB);
    let reps = reps.unwrap_or(if quick { 3 } else { 7 });
    let mut variants = variants();
    // For profiling one variant at a time: `WS_BENCH_H2_VARIANTS=h1` (labels, comma-separated).
    if let Ok(keep) = std::env::var("WS_BENCH_H2_VARIANTS") {
        variants.retain(|v| keep.split(',').any(|label| label.trim() == v.label));
        if variants.is_empty() {
            return Err(format!("WS_BENCH_H2_VARIANTS={keep}: no such variant"));
        }
    }
    let pattern: Arc<Vec<u8>> = Arc::new((0..WRITE + 251).map(|i| (i % 251) as u8).collect());
    eprintln!(
        "== {streams} streams x {} MiB, one HTTP/2 connection against HTTP/1.1 connections (h2), {reps} repetition(s)",
        per_stream / u64::from(MIB)
    );
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
    let started = Instant::now();
    for rep in 0..reps {
        for k in 0..variants.len() {
            let i = (k + rep) % variants.len();
            let v = &variants[i];
            let (mibs, cpu) = once(v, streams, per_stream, pattern.clone())
                .map_err(|e| format!("h2 scenario, {}: {e}", v.label))?;
            eprintln!("   rep {rep} {:<11} MiB/s {mibs:.1}", v.label);
            samples[i].push((mibs, cpu));
        }
    }
    eprintln!("   ({:.1} s)", started.elapsed().as_secs_f64());

    let median = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        }
    };
    let rows: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| {
            (
                median(s.iter().map(|x| x.0).collect()),
                median(s.iter().map(|x| x.1).collect()),
            )
        })
        .collect();
    // The ratios are to the first row: `h1` unless WS_BENCH_H2_VARIANTS left it out.
    let (base_mibs, base_cpu) = rows[0];
    let base = variants[0].label;
    let mut md = format!(
        "## WebSockets over HTTP/2 (h2)\n\n{streams} streams of {} MiB each, client to server in \
         64 KiB writes, this crate at both ends; medians of {reps} interleaved repetitions. \
         `÷ {base}` divides by the `{base}` row (throughput: below 1 is slower; CPU: above 1 \
         costs more).\n\n| variant | MiB/s | ÷ {base} | CPU s/GiB (both ends) | ÷ {base} | what \
         |\n|---|---:|---:|---:|---:|---|\n",
        per_stream / u64::from(MIB)
    );
    for (v, (mibs, cpu)) in variants.iter().zip(&rows) {
        md.push_str(&format!(
            "| `{}` | {mibs:.0} | {:.2} | {cpu:.2} | {:.2} | {} |\n",
            v.label,
            mibs / base_mibs,
            cpu / base_cpu,
            v.describe
        ));
    }
    Ok(md)
}

/// One repetition of one variant: (MiB/s, CPU s/GiB of both threads).
fn once(
    v: &Variant,
    streams: usize,
    per_stream: u64,
    pattern: Arc<Vec<u8>>,
) -> io::Result<(f64, f64)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (v_server, v_client) = (v.clone(), v.clone());
    let pat = pattern.clone();
    // The server reports when it held the last byte; the client when it started writing.
    let server = thread::spawn(move || -> io::Result<(Instant, Duration)> {
        let rt = runtime()?;
        rt.block_on(async move {
            let listener = TcpListener::from_std(listener)?;
            tokio::time::timeout(
                RUN_LIMIT,
                serve(&v_server, listener, streams, per_stream, pat),
            )
            .await
            .map_err(|_| timed_out())?
        })
    });
    let client = thread::spawn(move || -> io::Result<(Instant, Duration)> {
        let rt = runtime()?;
        rt.block_on(async move {
            tokio::time::timeout(
                RUN_LIMIT,
                send(&v_client, addr, streams, per_stream, pattern),
            )
            .await
            .map_err(|_| timed_out())?
        })
    });
    let (c_start, c_cpu) = join(client)?;
    let (s_end, s_cpu) = join(server)?;
    let secs = s_end.duration_since(c_start).as_secs_f64();
    let total = per_stream * streams as u64;
    let mib = total as f64 / f64::from(MIB);
    Ok((mib / secs, (c_cpu + s_cpu).as_secs_f64() / (mib / 1024.0)))
}

fn join<T>(h: thread::JoinHandle<io::Result<T>>) -> io::Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(io::Error::other("bench thread panicked")))
}

fn ws_config(v: &Variant) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(v.read_buffer)
}

// ---- server --------------------------------------------------------------------------------

/// Accepts the streams, reads `per_stream` bytes from each, checks them; returns when the last
/// byte arrived and the thread's CPU time spent since the first stream was open.
async fn serve(
    v: &Variant,
    listener: TcpListener,
    streams: usize,
    per_stream: u64,
    pattern: Arc<Vec<u8>>,
) -> io::Result<(Instant, Duration)> {
    let (opened, mut ready) = tokio::sync::mpsc::unbounded_channel::<Box<dyn Duplex>>();
    let config = ws_config(v);
    let message = v.message;
    match v.carrier {
        Carrier::Http1 => {
            for _ in 0..streams {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let ws = async_tungstenite::tokio::accept_async_with_config(tcp, Some(config))
                    .await
                    .map_err(io::Error::other)?;
                let _ = opened.send(Box::new(WsIo::from_transport(
                    ws,
                    Config::default().max_message_size(message),
                )));
            }
        }
        Carrier::Http2 { windows, max_frame } => {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let service = service_fn(move |mut request: Request<hyper::body::Incoming>| {
                let opened = opened.clone();
                async move {
                    let is_ws = request.method() == Method::CONNECT
                        && request
                            .extensions()
                            .get::<Protocol>()
                            .is_some_and(|p| p.as_str() == "websocket");
                    let mut response = Response::new(Empty::<Bytes>::new());
                    if !is_ws {
                        *response.status_mut() = StatusCode::BAD_REQUEST;
                        return Ok::<_, std::convert::Infallible>(response);
                    }
                    let on_upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        if let Ok(upgraded) = on_upgrade.await {
                            let io = TokioAdapter::new(TokioIo::new(upgraded));
                            let ws =
                                WebSocketStream::from_raw_socket(io, Role::Server, Some(config))
                                    .await;
                            let _ = opened.send(Box::new(WsIo::from_transport(
                                ws,
                                Config::default().max_message_size(message),
                            )));
                        }
                    });
                    Ok(response)
                }
            });
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder.enable_connect_protocol().max_frame_size(max_frame);
            if windows.0 > 0 {
                builder
                    .initial_connection_window_size(windows.0)
                    .initial_stream_window_size(windows.1);
            }
            tokio::spawn(builder.serve_connection(TokioIo::new(tcp), service));
        }
    }
    let mut ends = Vec::new();
    for _ in 0..streams {
        ends.push(
            ready
                .recv()
                .await
                .ok_or_else(|| io::Error::other("a stream failed to open"))?,
        );
    }
    let cpu = sys::thread_cpu();
    let tasks: Vec<_> = ends
        .into_iter()
        .map(|mut end| {
            let pattern = pattern.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * KIB];
                let mut got = 0u64;
                while got < per_stream {
                    let n = end.read(&mut buf).await?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "early EOF"));
                    }
                    check(&pattern, got, &buf[..n])?;
                    got += n as u64;
                }
                let done = Instant::now();
                // The client closes: read to EOF, then drop (which ends an HTTP/2 stream).
                let mut rest = Vec::new();
                end.read_to_end(&mut rest).await?;
                Ok::<_, io::Error>(done)
            })
        })
        .collect();
    let mut last = None;
    for task in tasks {
        let done = task.await.map_err(io::Error::other)??;
        last = Some(last.map_or(done, |l: Instant| l.max(done)));
    }
    let cpu = sys::thread_cpu() - cpu;
    Ok((last.ok_or_else(|| io::Error::other("no streams"))?, cpu))
}

fn check(pattern: &[u8], off: u64, got: &[u8]) -> io::Result<()> {
    // The client writes the pattern from offset (n * WRITE) % 251 onwards: see `send`.
    let mut at = (off % WRITE as u64) as usize;
    let mut base = ((off / WRITE as u64) * WRITE as u64 % 251) as usize;
    let mut rest = got;
    while !rest.is_empty() {
        let n = rest.len().min(WRITE - at);
        if rest[..n] != pattern[base + at..base + at + n] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a byte differs"));
        }
        rest = &rest[n..];
        at = 0;
        base = (base + WRITE) % 251;
    }
    Ok(())
}

// ---- client --------------------------------------------------------------------------------

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Opens the streams, then writes `per_stream` bytes into each; returns when writing started and
/// the thread's CPU time from then until every stream closed.
async fn send(
    v: &Variant,
    addr: std::net::SocketAddr,
    streams: usize,
    per_stream: u64,
    pattern: Arc<Vec<u8>>,
) -> io::Result<(Instant, Duration)> {
    let config = ws_config(v);
    let message = v.message;
    let mut ends: Vec<Box<dyn Duplex>> = Vec::new();
    let url = format!("ws://{addr}/");
    match v.carrier {
        Carrier::Http1 => {
            for _ in 0..streams {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let (ws, _) =
                    async_tungstenite::tokio::client_async_with_config(&url, tcp, Some(config))
                        .await
                        .map_err(io::Error::other)?;
                ends.push(Box::new(WsIo::from_transport(
                    ws,
                    Config::default().max_message_size(message),
                )));
            }
        }
        Carrier::Http2 { windows, max_frame } => {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
            builder.max_frame_size(max_frame);
            if windows.0 > 0 {
                builder
                    .initial_connection_window_size(windows.0)
                    .initial_stream_window_size(windows.1);
            }
            let (sender, connection) = builder
                .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
                .await
                .map_err(io::Error::other)?;
            // The server's SETTINGS must have allowed extended CONNECT (RFC 8441, section 3).
            for _ in 0..5_000 {
                if connection.is_extended_connect_protocol_enabled() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::spawn(connection);
            for _ in 0..streams {
                let mut sender = sender.clone();
                sender.ready().await.map_err(io::Error::other)?;
                let request = Request::builder()
                    .method(Method::CONNECT)
                    .uri(format!("http://{addr}/"))
                    .extension(Protocol::from_static("websocket"))
                    .header("sec-websocket-version", "13")
                    .body(Empty::<Bytes>::new())
                    .map_err(io::Error::other)?;
                let mut response = sender
                    .send_request(request)
                    .await
                    .map_err(io::Error::other)?;
                if response.status() != StatusCode::OK {
                    return Err(io::Error::other(format!("refused: {}", response.status())));
                }
                let upgraded = hyper::upgrade::on(&mut response)
                    .await
                    .map_err(io::Error::other)?;
                let io = TokioAdapter::new(TokioIo::new(upgraded));
                let ws = WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await;
                ends.push(Box::new(WsIo::from_transport(
                    ws,
                    Config::default().max_message_size(message),
                )));
            }
        }
    }
    let start = Instant::now();
    let cpu = sys::thread_cpu();
    let tasks: Vec<_> = ends
        .into_iter()
        .map(|mut end| {
            let pattern = pattern.clone();
            tokio::spawn(async move {
                let mut off = 0u64;
                let mut base = 0;
                while off < per_stream {
                    let n = WRITE.min((per_stream - off) as usize);
                    end.write_all(&pattern[base..base + n]).await?;
                    off += n as u64;
                    base = (base + WRITE) % 251;
                }
                end.flush().await?;
                // Close 1000 and read to EOF: the server answers, then drops its end.
                end.shutdown().await?;
                let mut rest = Vec::new();
                end.read_to_end(&mut rest).await?;
                Ok::<_, io::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(io::Error::other)??;
    }
    Ok((start, sys::thread_cpu() - cpu))
}
