//! An echo server: every connection's byte stream is sent back as it arrives. A template that
//! is safe to put in front of the public: handshake timeout, connection cap, message limits,
//! keepalive, send timeout, Origin check and a graceful shutdown.
//!
//! ```sh
//! cargo run -p integrations --example echo_server -- 127.0.0.1:9001 \
//!     [--handshake-timeout SECS] [--max-connections N] [--max-message-size BYTES] [--lean] \
//!     [--close-timeout SECS] [--ping-interval SECS] [--ping-timeout SECS] \
//!     [--send-timeout SECS] [--allow-origin ORIGIN]...
//! ```
//!
//! The address comes from the first argument (default `127.0.0.1:3012`); it prints
//! `listening on <addr>` once bound and serves connections concurrently. Unknown flags and bad
//! values print the usage line and exit with status 2. The echo is written the way a user would
//! write it: `futures::io::copy` from the read half into the write half, which flushes only at
//! the very end; the stream still never stalls, because a polled reader pushes written bytes
//! out. Text messages are refused with close code 1003.
//!
//! - `--handshake-timeout` (default 10 s): a client must complete the upgrade this soon after
//!   TCP accept, or its connection is closed (clients that send nothing, or half a request).
//! - `--max-connections` (default 10,000): connections beyond it, handshakes included, are
//!   closed at once after accept, before anything is read; a slot frees when a connection ends.
//! - `--max-message-size` (default 1 MiB, as Python `websockets`): tungstenite's
//!   `max_message_size` and `max_frame_size`; a larger message or frame gets close 1009.
//! - `--lean`: tungstenite reads 4 KiB at a time and writes through (`read_buffer_size` 4 KiB,
//!   `write_buffer_size` 0): about 12 KiB per idle connection instead of 78 KiB (the load
//!   example's figures, see the README).
//! - `--ping-interval` turns on keepalive (a ping when the peer is silent that long; the
//!   connection is dropped when nothing arrives within `--ping-timeout` after it).
//! - `--send-timeout` drops a client that stopped reading: when the echo makes no progress into
//!   the transport for that long, the connection ends (`TimedOut`) and its slot is freed.
//! - `--allow-origin` (repeatable) refuses browser handshakes whose `Origin` is not listed
//!   (403), the defence against cross-site WebSocket hijacking; clients that send no `Origin`
//!   (not browsers) are let through.
//! - SIGINT (Ctrl-C) or SIGTERM: the server stops accepting, abandons the handshakes in
//!   progress, closes every open connection with 1001 "server shutting down" after the bytes
//!   already echoed, waits for the close handshakes (at most the close timeout plus a second)
//!   and exits with status 0.
//!
//! Each connection's end is logged once, saying who closed: `closed by the peer` with its code
//! (1000 or 1001 for a normal finish) or `closed by us` with ours (1003 for text, 1001 at
//! shutdown, ...), or why the connection was dropped. The log shows `info` and above;
//! `RUST_LOG` picks more (`RUST_LOG=debug`, or `RUST_LOG=info,ws_stream_tungstenite=debug` for
//! the library's own lines). Colours only when standard output is a terminal.
//!
//! The accept loop is in `echo_server/server.rs`, shared with the tests
//! (`tests/echo_server.rs`).
//!
//! Try it with a browser console (`new WebSocket("ws://127.0.0.1:9001")`), Python
//! `websockets`, or Node `ws`: binary messages come back, text closes with 1003.

#[path = "echo_server/server.rs"]
mod server;

use std::{
    env,
    io::{self, IsTerminal, Write},
    process::ExitCode,
};

use tokio::net::TcpListener;
use tracing::{error, level_filters::LevelFilter};
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};

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
async fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", server::USAGE);
        return ExitCode::SUCCESS;
    }
    let options = match server::parse_args(args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("echo_server: {err}\n{}", server::USAGE);
            return ExitCode::from(2);
        }
    };
    init_log();
    let listener = match TcpListener::bind(&options.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("echo_server: cannot listen on {}: {err}", options.addr);
            return ExitCode::FAILURE;
        }
    };
    // Listen for the signals before saying we listen, so that none is missed.
    let signal = match server::shutdown_signal() {
        Ok(signal) => signal,
        Err(err) => {
            eprintln!("echo_server: cannot handle signals: {err}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(err) => eprintln!("echo_server: {err}"),
    }
    let _ = io::stdout().flush();
    match server::run(listener, options, signal).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err}");
            ExitCode::FAILURE
        }
    }
}
