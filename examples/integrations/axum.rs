//! An axum server that hands its WebSocket connections to `ws_stream_tungstenite`, serving a
//! tiny line protocol, and a client that talks to it; on 127.0.0.1 (port 0).
//!
//! Run: `cargo run -p integrations --example axum` (prints the conversation and exits 0 within a second).
//!
//! Shows how to get a tungstenite 0.30 stream out of axum. axum's own `ws` feature does not
//! fit: its `WebSocket` hides the tungstenite stream behind axum's own `Message` type, and
//! axum 0.8 builds it on tokio-tungstenite 0.29 (tungstenite 0.29), not 0.30. So the handler
//! takes the plain request and upgrades it itself:
//! 1. check the handshake headers and answer `101 Switching Protocols` with
//!    `Sec-WebSocket-Accept` (tungstenite's `derive_accept_key`);
//! 2. `hyper::upgrade::on(&mut request)` yields the raw connection once the 101 went out
//!    (`axum::serve` serves connections with upgrades enabled);
//! 3. `tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded),
//!    Role::Server, None)` makes it a WebSocket, and
//!    `WsIo::from_transport(ws, Config::default())` a byte stream.
//!
//! The protocol, one command per line: `ping` -> `pong`, `upper TEXT` -> `TEXT` in capitals,
//! `quit` -> `bye`, then the server closes (1000) and the client reads until EOF.

use std::{error::Error, time::Duration};

use asynchronous_codec::{Framed, LinesCodec};
use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use ws_stream_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};
use ws_stream_tungstenite::{Config, WsIo, WsStream};

type BoxError = Box<dyn Error + Send + Sync>;

/// Where finished sessions report how many commands they served.
type Sessions = mpsc::UnboundedSender<Result<usize, BoxError>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tokio::time::timeout(Duration::from_secs(10), run()).await?
}

async fn run() -> Result<(), BoxError> {
    let (sessions, mut finished) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/ws", get(upgrade))
        .with_state(sessions);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("serving ws://{addr}/ws");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    client(&format!("ws://{addr}/ws")).await?;

    let served = finished.recv().await.ok_or("no session finished")??;
    println!("server: the session served {served} commands");
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// The WebSocket handshake, by hand: check the request, answer 101, take over the connection
/// once hyper has sent the answer.
async fn upgrade(State(sessions): State<Sessions>, mut request: Request) -> Response {
    let Some(accept) = accept_key(request.method(), request.headers()) else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket handshake\n").into_response();
    };
    // A server that browsers can reach must also check `Origin` here (see
    // docs/SECURITY-NOTES.md): a 403 for origins not on its list.

    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let session = async {
            let upgraded = on_upgrade.await?;
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            serve(WsIo::from_transport(ws, Config::default())).await
        };
        let _ = sessions.send(session.await);
    });

    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// `Sec-WebSocket-Accept` for a valid WebSocket upgrade request (RFC 6455, 4.2.1), else `None`.
fn accept_key(method: &Method, headers: &HeaderMap) -> Option<HeaderValue> {
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|item| item.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let valid = method == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| valid)?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()
}

/// The line protocol, over any byte stream.
async fn serve<S>(stream: S) -> Result<usize, BoxError>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut lines = Framed::new(stream, LinesCodec);
    let mut served = 0;
    while let Some(line) = lines.next().await {
        let line = line?;
        let command = line.trim_end();
        served += 1;
        let reply = match command.split_once(' ') {
            None if command == "ping" => "pong".to_string(),
            Some(("upper", text)) => text.to_uppercase(),
            None if command == "quit" => {
                lines.send("bye\n".to_string()).await?;
                // Sends close 1000; reading on until EOF completes the handshake.
                lines.close().await?;
                continue;
            }
            _ => format!("unknown command: {command}"),
        };
        lines.send(reply + "\n").await?;
    }
    Ok(served)
}

async fn client(url: &str) -> Result<(), BoxError> {
    let (ws, _response) =
        ws_stream_tungstenite::async_tungstenite::tokio::connect_async(url).await?;
    let mut lines = Framed::new(WsStream::new(ws), LinesCodec);
    for command in ["ping", "upper hello axum", "quit"] {
        lines.send(format!("{command}\n")).await?;
        let reply = lines.next().await.ok_or("the server hung up")??;
        println!("client: {command:?} -> {:?}", reply.trim_end());
    }
    // The server closes after `bye`: the next read is EOF, which means a clean close (an abrupt
    // end or another close code would be an error).
    if lines.next().await.transpose()?.is_some() {
        return Err("expected the end of the stream after bye".into());
    }
    println!("client: the server closed cleanly");
    Ok(())
}
