//! Serves the `proto` crate over WebSockets on a loopback address.
//!
//! ```text
//! cargo run -p server -- 127.0.0.1:9001   # or 127.0.0.1:0 for any free port
//! ```
//!
//! Prints `listening on <addr>` once bound, then one line per finished connection. The same
//! `proto::serve` that the browser client's tests talk to runs here, over `WsStream`: the
//! WebSocket as an `AsyncRead + AsyncWrite` byte stream.
#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode};

use tokio::net::{TcpListener, TcpStream};
use ws_stream_tungstenite::WsStream;

const DEFAULT_ADDR: &str = "127.0.0.1:9001";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let addr = match arg.as_deref().unwrap_or(DEFAULT_ADDR).parse::<SocketAddr>() {
        // A demo has no business listening beyond this machine.
        Ok(addr) if addr.ip().is_loopback() => addr,
        Ok(addr) => {
            eprintln!(
                "refusing to listen on {addr}: use a loopback address such as {DEFAULT_ADDR}"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("usage: server [IP:PORT] (default {DEFAULT_ADDR}): {e}");
            return ExitCode::FAILURE;
        }
    };

    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(bound) => println!("listening on {bound}"),
        Err(e) => {
            eprintln!("cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    }

    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                tokio::spawn(async move { println!("{peer}: {}", connection(tcp).await) });
            }
            // E.g. out of file descriptors: report and keep serving the others.
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
}

/// One connection from handshake to close, summed up in a line.
async fn connection(tcp: TcpStream) -> String {
    let ws = match async_tungstenite::tokio::accept_async(tcp).await {
        Ok(ws) => ws,
        Err(e) => return format!("handshake failed: {e}"),
    };
    match proto::serve(WsStream::new(ws)).await {
        Ok(served) => format!(
            "served {} requests, {} closed first, closed cleanly",
            served.requests,
            if served.bye { "server" } else { "client" },
        ),
        Err(e) => format!("error: {e}"),
    }
}
