//! An echo server: every connection's byte stream is sent back as it arrives.
//!
//! ```sh
//! cargo run --example echo_server -- 127.0.0.1:9001 [--close-timeout SECS] \
//!     [--ping-interval SECS] [--ping-timeout SECS] [--send-timeout SECS] \
//!     [--allow-origin ORIGIN]...
//! ```
//!
//! The address comes from the first argument (default `127.0.0.1:3012`); it prints
//! `listening on <addr>` once bound and serves connections concurrently. The echo is written
//! the way a user would write it: `futures::io::copy` from the read half into the write half,
//! which flushes only at the very end; the stream still never stalls, because a polled reader
//! pushes written bytes out. Each connection's end (close code, errors) is logged with tracing
//! (`RUST_LOG=debug` shows more). Text messages are refused with close code 1003.
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

use std::{env, error::Error, time::Duration};

use async_tungstenite::tokio::accept_hdr_async;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use pharos::{Observable, ObserveConfig};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use ws_stream_tungstenite::{Config, WsEvent, WsStream};

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
                options.config = options.config.close_timeout(Some(d));
            }
            "--ping-interval" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.ping_interval(Some(d));
            }
            "--ping-timeout" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.ping_timeout(d);
            }
            "--send-timeout" => {
                let d = secs(args.next(), &arg)?;
                options.config = options.config.send_timeout(Some(d));
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ws_stream_tungstenite=debug".into()),
        )
        .init();
    let options = parse_args()?;
    let listener = TcpListener::bind(&options.addr).await?;
    println!("listening on {}", listener.local_addr()?);

    loop {
        let (tcp, peer) = listener.accept().await?;
        let config = options.config.clone();
        let origins = options.allowed_origins.clone();
        tokio::spawn(async move {
            match serve(tcp, config, origins).await {
                Ok(bytes) => info!(%peer, bytes, "connection done"),
                Err(err) => warn!(%peer, "connection failed: {err}"),
            }
        });
    }
}

async fn serve(tcp: TcpStream, config: Config, origins: Vec<String>) -> std::io::Result<u64> {
    tcp.set_nodelay(true)?;
    // The callback's signature is tungstenite's; its error type is an HTTP response.
    #[allow(clippy::result_large_err, reason = "the signature is tungstenite's")]
    let check_origin = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
        match origin {
            Some(origin) if !origins.is_empty() && !origins.iter().any(|o| o == origin) => {
                warn!(origin, "refused: origin not allowed");
                let mut refusal = ErrorResponse::new(Some("origin not allowed".into()));
                *refusal.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
                Err(refusal)
            }
            _ => Ok(resp),
        }
    };
    let ws = accept_hdr_async(tcp, check_origin)
        .await
        .map_err(std::io::Error::other)?;
    let mut stream = WsStream::with_config(ws, config);

    let mut events = stream
        .observe(ObserveConfig::default().channel(pharos::Channel::Bounded(16)))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                WsEvent::CloseFrame(Some(frame)) => {
                    info!(code = u16::from(frame.code), reason = %frame.reason, "peer closed")
                }
                WsEvent::CloseFrame(None) => info!("peer closed without a code"),
                WsEvent::Error(err) => warn!("{err}"),
                _ => {}
            }
        }
    });

    let (mut reader, mut writer) = stream.split();
    let copied = futures::io::copy(&mut reader, &mut writer).await?;
    writer.close().await?;
    Ok(copied)
}
