//! An echo server: every connection's byte stream is sent back as it arrives.
//!
//! ```sh
//! cargo run -p integrations --example echo_server -- 127.0.0.1:9001 [--close-timeout SECS] \
//!     [--ping-interval SECS] [--ping-timeout SECS] [--send-timeout SECS] \
//!     [--allow-origin ORIGIN]...
//! ```
//!
//! The address comes from the first argument (default `127.0.0.1:3012`); it prints
//! `listening on <addr>` once bound and serves connections concurrently. The echo is written
//! the way a user would write it: `futures::io::copy` from the read half into the write half,
//! which flushes only at the very end; the stream still never stalls, because a polled reader
//! pushes written bytes out. Text messages are refused with close code 1003.
//!
//! Each connection's end is logged once, saying who closed: `closed by the peer` with its code
//! (1000 or 1001 for a normal finish) or `closed by us` with ours (1003 for text, ...), or
//! why the connection was dropped. The log shows `info` and above; `RUST_LOG` picks more
//! (`RUST_LOG=debug`, or `RUST_LOG=info,ws_stream_tungstenite=debug` for the library's own
//! lines). Colours only when standard output is a terminal.
//!
//! `--ping-interval` turns on keepalive (a ping when the peer is silent that long; the
//! connection is dropped when nothing arrives within `--ping-timeout` after it).
//! `--send-timeout` drops a client that stopped reading: when the echo makes no progress into
//! the transport for that long, the connection ends (`TimedOut`) and its slot is freed.
//! `--allow-origin` (repeatable) refuses browser handshakes whose `Origin` is not listed (403),
//! the defence against cross-site WebSocket hijacking; clients that send no `Origin` (not
//! browsers) are let through.
//!
//! Try it with a browser console (`new WebSocket("ws://127.0.0.1:9001")`), Python
//! `websockets`, or Node `ws`: binary messages come back, text closes with 1003.

use std::{
    env,
    error::Error,
    io::{self, IsTerminal},
    net::SocketAddr,
    time::Duration,
};

use futures::{AsyncWriteExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, level_filters::LevelFilter, warn};
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
use ws_stream_tungstenite::{
    Channel, CloseFrame, Config, Observable, ObserveConfig, WsErr, WsEvent, WsStream,
    async_tungstenite::tokio::accept_hdr_async,
    tungstenite::{
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
    },
};

struct Options {
    addr: String,
    config: Config,
    allowed_origins: Vec<String>,
}

fn parse_args() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        addr: "127.0.0.1:3012".to_owned(),
        config: Config::default(),
        allowed_origins: Vec::new(),
    };
    let mut args = env::args().skip(1);
    let secs = |v: Option<String>, flag: &str| -> Result<Duration, Box<dyn Error>> {
        let v = v.ok_or_else(|| format!("{flag} needs a value in seconds"))?;
        Ok(Duration::from_secs_f64(v.parse()?))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--close-timeout" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.close_timeout(d);
            }
            "--ping-interval" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.ping_interval(d);
            }
            "--ping-timeout" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.ping_timeout(d);
            }
            "--send-timeout" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.send_timeout(d);
            }
            "--allow-origin" => {
                let origin = args.next().ok_or("--allow-origin needs an origin")?;
                options.allowed_origins.push(origin);
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}").into()),
            addr => options.addr = addr.to_owned(),
        }
    }
    Ok(options)
}

/// Logs `info` and above, or what `RUST_LOG` asks for (`target=level` directives and a bare
/// default level, as in `info,ws_stream_tungstenite=debug`); colours only on a terminal.
fn init_log() {
    let default = Targets::new().with_default(LevelFilter::INFO);
    let filter = match env::var("RUST_LOG") {
        Ok(directives) => directives.parse().unwrap_or_else(|err| {
            eprintln!("RUST_LOG={directives:?} ignored: {err}");
            default
        }),
        Err(_) => default,
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(io::stdout().is_terminal()))
        .with(filter)
        .init();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_log();
    let options = parse_args()?;
    let listener = TcpListener::bind(&options.addr).await?;
    println!("listening on {}", listener.local_addr()?);

    loop {
        let (tcp, peer) = listener.accept().await?;
        let config = options.config.clone();
        let origins = options.allowed_origins.clone();
        tokio::spawn(serve(tcp, peer, config, origins));
    }
}

/// Serves one connection and logs how it ended, once.
async fn serve(tcp: TcpStream, peer: SocketAddr, config: Config, origins: Vec<String>) {
    match echo(tcp, config, origins).await {
        Ok((bytes, close)) => info!(%peer, bytes, "closed by the peer: {}", describe(&close)),
        Err(err) => match err.get_ref().and_then(|e| e.downcast_ref::<WsErr>()) {
            // The peer's close frame, with an error code.
            Some(WsErr::PeerClosed { code, reason }) => {
                warn!(%peer, "closed by the peer with {code} {reason:?}")
            }
            // Bad input from the peer: we closed, with the code that says why (in the message).
            Some(ws_err) if ws_err.close_code().is_some() => {
                warn!(%peer, "closed by us: {ws_err}")
            }
            _ => warn!(%peer, "connection dropped: {err}"),
        },
    }
}

/// Echoes until the peer closes: the bytes echoed and the peer's close frame (`None` inside when
/// it had no code).
async fn echo(
    tcp: TcpStream,
    config: Config,
    origins: Vec<String>,
) -> io::Result<(u64, Option<CloseFrame>)> {
    tcp.set_nodelay(true)?;
    // The callback's signature is tungstenite's; its error type is an HTTP response.
    #[allow(clippy::result_large_err, reason = "the signature is tungstenite's")]
    let check_origin = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
        match origin {
            Some(origin) if !origins.is_empty() && !origins.iter().any(|o| o == origin) => {
                warn!(origin, "refused: origin not allowed");
                let mut refusal = ErrorResponse::new(Some("origin not allowed".into()));
                *refusal.status_mut() = StatusCode::FORBIDDEN;
                Err(refusal)
            }
            _ => Ok(resp),
        }
    };
    let ws = accept_hdr_async(tcp, check_origin)
        .await
        .map_err(io::Error::other)?;
    let mut stream = WsStream::with_config(ws, config);

    // The events: the peer's close frame is kept for the log line at the end (when we closed
    // first, it is only the peer's answer); the rest is logged at debug level.
    let mut events = stream
        .observe(ObserveConfig::default().channel(Channel::Bounded(16)))
        .await
        .map_err(io::Error::other)?;
    let peer_close = tokio::spawn(async move {
        let mut close = None;
        while let Some(event) = events.next().await {
            match event {
                WsEvent::CloseFrame(frame) => close = frame,
                other => debug!(?other, "event"),
            }
        }
        close
    });

    let (mut reader, mut writer) = stream.into_split();
    // EOF only when the peer closed cleanly; the close already answered it, and `close` checks
    // that everything echoed went out before.
    let bytes = futures::io::copy(&mut reader, &mut writer).await?;
    writer.close().await?;
    // Dropping the stream ends the events, if its end had not already.
    drop((reader, writer));
    let close = peer_close.await.map_err(io::Error::other)?;
    Ok((bytes, close))
}

/// `1000 (Normal) "reason"`, or `no code`.
fn describe(close: &Option<CloseFrame>) -> String {
    match close {
        Some(frame) => format!(
            "{} ({:?}) {:?}",
            frame.code,
            frame.code,
            frame.reason.as_str()
        ),
        None => "no code".to_owned(),
    }
}
