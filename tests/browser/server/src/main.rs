//! A WebSocket server that misbehaves on purpose, for the browser side's contract tests
//! (`tests/browser/client/tests/contract.rs`, run by `scripts/wasm-e2e.sh`).
//!
//! ```text
//! cargo run -p contract-server -- 127.0.0.1:0
//! ```
//!
//! Prints `listening on <addr>` once bound. What it does depends on the request path,
//! `/<scenario>[/<argument>]/<id>`:
//!
//! | scenario | what the server does |
//! |---|---|
//! | `close/<code>` | sends 1000 pattern bytes, then closes with `<code>` (reason "boom" for 1011, "app error" for 4000) |
//! | `drop` | sends 1000 pattern bytes, then drops the TCP connection without a close frame |
//! | `reset` | sends 1000 pattern bytes, then resets the TCP connection (RST) |
//! | `empty` | sends empty, "abc", empty, empty, "def", empty binary messages, then closes with 1000 |
//! | `text` | sends 1000 pattern bytes, a text message "hello", then "after" (binary) |
//! | `sink` | reads until the end |
//! | `echo` | sends every binary message back |
//! | `slow/<secs>` | reads at 1 MiB/s for `<secs>` seconds from the first message, then as fast as it can |
//! | `fast-1011/<ms>` | reads as fast as it can; `<ms>` after the first message it closes with 1011 and reads on |
//! | `stall` | reads nothing for 20 s, then drops the connection |
//! | `refuse` | refuses the handshake with HTTP 403 |
//! | `report/<id>` | waits (10 s at most) for session `<id>` to end, then sends its report and closes with 1000 |
//!
//! The pattern byte at offset `i` is `i % 251`. A session's report is one line of `key=value`
//! pairs: for `slow` `early` (bytes received in the slow phase), for `fast-1011` `before`
//! (bytes received before our close frame went), then `messages` (binary messages received,
//! empty ones included), `bytes`, `fnv` (FNV-1a 64 of the bytes, hex), `close` (the client's
//! close code, `none` without a close frame), `end` (how the session ended) and, last, as it
//! may hold spaces, `reason` (the client's close reason).
#![forbid(unsafe_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_tungstenite::{WebSocketStream, tokio::TokioAdapter};
use futures::StreamExt;
use tokio::{
    net::{TcpListener, TcpStream},
    time::{Instant, sleep, timeout},
};
use tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    http::StatusCode,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

type Ws = WebSocketStream<TokioAdapter<TcpStream>>;

/// Finished sessions' reports, by id.
type Reports = Arc<Mutex<HashMap<String, String>>>;

const MIB: usize = 1024 * 1024;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let addr = match arg
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse::<SocketAddr>()
    {
        Ok(addr) if addr.ip().is_loopback() => addr,
        _ => {
            eprintln!("usage: contract-server [LOOPBACK_IP:PORT] (default 127.0.0.1:0)");
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

    let reports = Reports::default();
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let reports = Arc::clone(&reports);
                tokio::spawn(async move {
                    if let Err(e) = connection(tcp, &reports).await {
                        println!("{e}");
                    }
                });
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
}

/// One connection: the handshake, then the scenario its path names.
async fn connection(tcp: TcpStream, reports: &Reports) -> Result<(), String> {
    let mut path = String::new();
    #[allow(
        clippy::result_large_err,
        reason = "the handshake callback's signature is tungstenite's"
    )]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        if path.starts_with("/refuse") {
            let mut refusal = ErrorResponse::new(Some("refused on purpose".into()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        Ok(response)
    };
    let handshake = async_tungstenite::tokio::accept_hdr_async(tcp, callback).await;
    let mut ws = match handshake {
        Ok(ws) => ws,
        Err(_) if path.starts_with("/refuse") => return Ok(()),
        Err(e) => return Err(format!("{path}: handshake failed: {e}")),
    };

    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (scenario, arg, id) = match parts.as_slice() {
        [scenario, id] => (*scenario, "", *id),
        [scenario, arg, id] => (*scenario, *arg, *id),
        _ => return Err(format!("{path}: unknown path")),
    };
    let report = match (scenario, arg) {
        ("close", code) => {
            let code: u16 = code.parse().map_err(|_| format!("{path}: bad code"))?;
            let reason = match code {
                1011 => "boom",
                4000 => "app error",
                _ => "",
            };
            send(&mut ws, pattern(0, 1000)).await?;
            ws.close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))
            .await
            .map_err(|e| format!("{path}: close: {e}"))?;
            Session::default().read_all(&mut ws).await
        }
        ("drop", _) => {
            send(&mut ws, pattern(0, 1000)).await?;
            drop(ws);
            "end=dropped".to_owned()
        }
        ("reset", _) => {
            send(&mut ws, pattern(0, 1000)).await?;
            ws.get_ref()
                .get_ref()
                .set_zero_linger()
                .map_err(|e| format!("{path}: SO_LINGER: {e}"))?;
            drop(ws);
            "end=reset".to_owned()
        }
        ("empty", _) => {
            for payload in ["", "abc", "", "", "def", ""] {
                send(&mut ws, payload.as_bytes().to_vec()).await?;
            }
            ws.close(None)
                .await
                .map_err(|e| format!("{path}: close: {e}"))?;
            Session::default().read_all(&mut ws).await
        }
        ("text", _) => {
            send(&mut ws, pattern(0, 1000)).await?;
            ws.send(Message::text("hello"))
                .await
                .map_err(|e| format!("{path}: send: {e}"))?;
            // The browser may close before this arrives; it must not reach the reader anyway.
            let _ = ws.send(Message::binary(&b"after"[..])).await;
            Session::default().read_all(&mut ws).await
        }
        ("sink", _) => Session::default().read_all(&mut ws).await,
        ("stall-1011", ms) => {
            let ms: u64 = ms.parse().map_err(|_| format!("{path}: bad delay"))?;
            sleep(Duration::from_millis(ms)).await;
            let frame = CloseFrame {
                code: CloseCode::Error,
                reason: "boom".into(),
            };
            let _ = ws.close(Some(frame)).await;
            Session::default().read_all(&mut ws).await
        }
        ("stall", _) => {
            sleep(Duration::from_secs(20)).await;
            "end=stalled".to_owned()
        }
        ("echo", _) => echo(&mut ws).await,
        ("slow", secs) => {
            let secs: u64 = secs.parse().map_err(|_| format!("{path}: bad seconds"))?;
            slow(&mut ws, Duration::from_secs(secs)).await
        }
        ("fast-1011", ms) => {
            let ms: u64 = ms.parse().map_err(|_| format!("{path}: bad delay"))?;
            close_under_writes(&mut ws, Duration::from_millis(ms)).await
        }
        ("report", _) => {
            let report = wait_for_report(reports, id).await;
            send(&mut ws, report.into_bytes()).await?;
            ws.close(None)
                .await
                .map_err(|e| format!("{path}: close: {e}"))?;
            Session::default().read_all(&mut ws).await;
            return Ok(());
        }
        _ => return Err(format!("{path}: unknown scenario")),
    };
    if let Ok(mut done) = reports.lock() {
        done.insert(id.to_owned(), report);
    }
    Ok(())
}

/// `len` bytes of the pattern, starting at offset `from`.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

async fn send(ws: &mut Ws, payload: Vec<u8>) -> Result<(), String> {
    ws.send(Message::binary(payload))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// What a session received.
#[derive(Default)]
struct Session {
    messages: usize,
    bytes: usize,
    fnv: u64,
    close: Option<Option<CloseFrame>>,
}

impl Session {
    fn take(&mut self, payload: &[u8]) {
        if self.bytes == 0 {
            self.fnv = 0xcbf2_9ce4_8422_2325;
        }
        self.messages += 1;
        self.bytes += payload.len();
        for &byte in payload {
            self.fnv = (self.fnv ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Handles one message; `false` once the input ended (with how it ended).
    fn on(&mut self, next: Option<Result<Message, tungstenite::Error>>, end: &mut String) -> bool {
        match next {
            Some(Ok(Message::Binary(payload))) => self.take(&payload),
            Some(Ok(Message::Text(_))) => self.messages += 1,
            Some(Ok(Message::Close(frame))) => self.close = Some(frame),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                *end = format!("error:{}", e.to_string().replace(' ', "_"));
                return false;
            }
            None => {
                *end = "eof".to_owned();
                return false;
            }
        }
        true
    }

    /// Reads until the input ends (15 s at most), then reports.
    async fn read_all(mut self, ws: &mut Ws) -> String {
        let mut end = String::new();
        let read = async { while self.on(ws.next().await, &mut end) {} };
        if timeout(Duration::from_secs(15), read).await.is_err() {
            end = "timeout".to_owned();
        }
        self.report(&end)
    }

    fn report(&self, end: &str) -> String {
        let (close, reason) = match &self.close {
            None | Some(None) => ("none".to_owned(), String::new()),
            Some(Some(frame)) => (u16::from(frame.code).to_string(), frame.reason.to_string()),
        };
        format!(
            "messages={} bytes={} fnv={:016x} close={close} end={end} reason={reason}",
            self.messages, self.bytes, self.fnv
        )
    }
}

/// Sends every binary message back, until the input ends.
async fn echo(ws: &mut Ws) -> String {
    let mut session = Session::default();
    let mut end = String::new();
    loop {
        let next = ws.next().await;
        let payload = match &next {
            Some(Ok(Message::Binary(payload))) => Some(payload.clone()),
            _ => None,
        };
        if !session.on(next, &mut end) {
            break;
        }
        if let Some(payload) = payload {
            if ws.send(Message::Binary(payload)).await.is_err() {
                end = "send-failed".to_owned();
                break;
            }
        }
    }
    session.report(&end)
}

/// Reads at 1 MiB/s for `slow_for`, then as fast as it can, until the input ends.
async fn slow(ws: &mut Ws, slow_for: Duration) -> String {
    let mut session = Session::default();
    let mut end = String::new();
    // The slow phase starts with the first message.
    let mut start = Instant::now();
    let mut early = None;
    loop {
        if session.bytes == 0 {
            start = Instant::now();
        } else if early.is_none() {
            let elapsed = start.elapsed();
            if elapsed >= slow_for {
                early = Some(session.bytes);
            } else {
                // Pace: `bytes` may have arrived by now at 1 MiB/s.
                let due = Duration::from_secs_f64(session.bytes as f64 / MIB as f64);
                if due > elapsed {
                    sleep((due - elapsed).min(slow_for - elapsed)).await;
                    continue;
                }
            }
        }
        if !session.on(ws.next().await, &mut end) {
            break;
        }
    }
    format!(
        "early={} {}",
        early.unwrap_or(session.bytes),
        session.report(&end)
    )
}

/// Reads as fast as it can; `after` the first message it closes with 1011 and reads on until
/// the input ends. The close comes from a timer, at no particular point of the client's writes
/// and flushes.
async fn close_under_writes(ws: &mut Ws, after: Duration) -> String {
    let mut session = Session::default();
    let mut end = String::new();
    let mut before = None;
    let mut deadline = None;
    loop {
        let next = match deadline {
            Some(at) if before.is_none() => {
                tokio::select! {
                    next = ws.next() => next,
                    () = tokio::time::sleep_until(at) => {
                        before = Some(session.bytes);
                        let frame = CloseFrame {
                            code: CloseCode::Error,
                            reason: "boom".into(),
                        };
                        if ws.close(Some(frame)).await.is_err() {
                            end = "close-failed".to_owned();
                            break;
                        }
                        continue;
                    }
                }
            }
            _ => ws.next().await,
        };
        if !session.on(next, &mut end) {
            break;
        }
        if deadline.is_none() {
            deadline = Some(Instant::now() + after);
        }
    }
    format!("before={} {}", before.unwrap_or(0), session.report(&end))
}

/// The report of session `id`, once it ended (10 s at most).
async fn wait_for_report(reports: &Reports, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = reports.lock().ok().and_then(|mut done| done.remove(id));
        if let Some(report) = found {
            return report;
        }
        if Instant::now() >= deadline {
            return "end=no-report".to_owned();
        }
        sleep(Duration::from_millis(10)).await;
    }
}
