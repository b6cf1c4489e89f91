//! WebSockets over HTTP/2 (RFC 8441) with hyper 1: the pieces that the `h2` example and its
//! tests (`tests/h2.rs`) share. Each WebSocket is one HTTP/2 stream, opened by an extended
//! CONNECT request; many of them share one TCP (or TLS) connection.
//!
//! The handshake differs from HTTP/1.1, so `accept_async`/`client_async` cannot do it:
//! - the client sends `CONNECT` with the pseudo-header `:protocol = websocket` (hyper: the
//!   request extension [`Protocol`]) and `sec-websocket-version: 13`, and no
//!   `Sec-WebSocket-Key`;
//! - the server answers `200` (not `101`), with no `Sec-WebSocket-Accept`;
//! - the client may send `:protocol` only once the server's SETTINGS allowed it
//!   (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, hyper: `enable_connect_protocol()` on the server).
//!
//! After that, `hyper::upgrade::on` gives either side the stream's bytes, and
//! `WebSocketStream::from_raw_socket` + `WsIo::from_transport` make a byte stream of them, as
//! over HTTP/1.1.

// Each of the two users (the example, the tests) needs most of this module, not all of it.
#![allow(
    dead_code,
    reason = "shared by the h2 example and tests/h2.rs; each uses a part"
)]

use std::{convert::Infallible, error::Error, future::Future, time::Duration};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{
    Method, Request, Response, StatusCode, Uri,
    body::Incoming,
    client::conn::http2::{Connection, SendRequest},
    ext::Protocol,
    header::{HeaderValue, SEC_WEBSOCKET_VERSION},
    service::service_fn,
    upgrade::Upgraded,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use ws_stream_tungstenite::{Config, WsIo, tungstenite::protocol::Role};

/// The error type of the example and tests.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A byte stream over one HTTP/2 stream: hyper's upgraded stream, tokio-tungstenite on it,
/// `WsIo` on top. The same type at both ends.
pub type H2Stream = WsIo<WebSocketStream<TokioIo<Upgraded>>>;

const MIB: u32 = 1024 * 1024;

/// HTTP/2 flow-control windows that a receiver advertises: how many bytes the peer may send
/// before the receiver's reads release them, on one stream and on the connection as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// For all streams of the connection together.
    pub connection: u32,
    /// For each stream.
    pub stream: u32,
}

impl Windows {
    /// hyper 1's server defaults (1 MiB each). A stream whose reader stops may take the whole
    /// connection window, and every other stream stalls (head-of-line blocking).
    pub const HYPER_SERVER_DEFAULT: Self = Self {
        connection: MIB,
        stream: MIB,
    };

    /// hyper 1's client defaults (5 MiB for the connection, 2 MiB per stream).
    pub const HYPER_CLIENT_DEFAULT: Self = Self {
        connection: 5 * MIB,
        stream: 2 * MIB,
    };

    /// The windows this example recommends: a connection window 8 times the stream window, so
    /// that a stalled stream holds at most an eighth of it and the others go on.
    pub const RECOMMENDED: Self = Self {
        connection: 32 * MIB,
        stream: 4 * MIB,
    };
}

// ---- server --------------------------------------------------------------------------------

/// Checks an extended CONNECT request for a WebSocket (RFC 8441, section 5): `CONNECT`,
/// `:protocol = websocket`, `sec-websocket-version: 13`.
///
/// # Errors
///
/// The response to send instead when the request is not one: 400 for the wrong method or
/// protocol, 400 with `sec-websocket-version: 13` for another version (RFC 6455, 4.4).
#[allow(
    clippy::result_large_err,
    reason = "the error is the response to send; the check runs once per stream"
)]
pub fn check_request<B>(request: &Request<B>) -> Result<(), Response<Empty<Bytes>>> {
    let bad_request = || {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    };
    let is_websocket = request
        .extensions()
        .get::<Protocol>()
        .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"));
    if request.method() != Method::CONNECT || !is_websocket {
        return Err(bad_request());
    }
    if request
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        let mut response = bad_request();
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(response);
    }
    Ok(())
}

/// Serves one HTTP/2 connection: every WebSocket stream on it goes to `session`, with the
/// request's path, in a task of its own; every other request gets a 400.
///
/// When `session` returns, its stream is dropped, which ends the HTTP/2 stream: a tungstenite
/// client reports the end of a close handshake only when its transport ends, so the server
/// must not keep the stream after EOF.
///
/// # Errors
///
/// The connection's error (not a stream's: those are `session`'s to report).
pub async fn serve_connection<F, Fut>(
    tcp: TcpStream,
    windows: Windows,
    session: F,
) -> Result<(), BoxError>
where
    F: Fn(String, H2Stream) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let service = service_fn(move |mut request: Request<Incoming>| {
        let session = session.clone();
        async move {
            if let Err(response) = check_request(&request) {
                return Ok::<_, Infallible>(response);
            }
            let path = request.uri().path().to_owned();
            // The stream's bytes, once the 200 below went out.
            let on_upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                session(path, WsIo::from_transport(ws, Config::default())).await;
                // The stream is dropped here, which ends the HTTP/2 stream.
            });
            Ok(Response::new(Empty::new()))
        }
    });
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .enable_connect_protocol()
        .initial_connection_window_size(windows.connection)
        .initial_stream_window_size(windows.stream)
        .serve_connection(TokioIo::new(tcp), service)
        .await?;
    Ok(())
}

// ---- client --------------------------------------------------------------------------------

/// Opens an HTTP/2 connection for WebSocket streams: the HTTP/2 handshake, then waits (at most
/// `limit`) until the server's SETTINGS allowed extended CONNECT, then drives the connection in
/// a task of its own. Clone the returned sender to open streams from several tasks.
///
/// # Errors
///
/// The handshake failed, or the server did not allow extended CONNECT within `limit`.
pub async fn connect(
    tcp: TcpStream,
    windows: Windows,
    limit: Duration,
) -> Result<SendRequest<Empty<Bytes>>, BoxError> {
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_connection_window_size(windows.connection)
        .initial_stream_window_size(windows.stream)
        .handshake(TokioIo::new(tcp))
        .await?;
    extended_connect_allowed(&connection, limit).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Waits until the server's SETTINGS allowed extended CONNECT (RFC 8441, section 3), at most
/// `limit`. Call it after the handshake and before spawning `connection`.
///
/// hyper 1 exposes the setting only as a flag on the `Connection` object, which nothing wakes
/// when it changes: `handshake` returns before the server's SETTINGS arrived (the flag is then
/// `false`), and the frames are read by a task that hyper spawned on the executor. So this
/// looks at the flag every millisecond. A server that does not support RFC 8441 cannot be told
/// apart from a slow one: `limit` is the answer to both.
///
/// # Errors
///
/// The flag was still off after `limit`.
pub async fn extended_connect_allowed<T, E>(
    connection: &Connection<T, Empty<Bytes>, E>,
    limit: Duration,
) -> Result<(), BoxError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    E: hyper::rt::bounds::Http2ClientConnExec<Empty<Bytes>, T> + Unpin,
{
    let wait = async {
        while !connection.is_extended_connect_protocol_enabled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| "the server did not allow extended CONNECT (RFC 8441) in time".into())
}

/// The extended CONNECT request that opens a WebSocket on `uri` (`http://host:port/path`, or
/// `https://`: HTTP/2 takes the scheme, authority and path from it).
///
/// # Errors
///
/// `uri` is not a valid URI.
pub fn connect_request(uri: &str) -> Result<Request<Empty<Bytes>>, BoxError> {
    let uri: Uri = uri.parse()?;
    Ok(Request::builder()
        .method(Method::CONNECT)
        .uri(uri)
        .extension(Protocol::from_static("websocket"))
        .header(SEC_WEBSOCKET_VERSION, "13")
        .body(Empty::new())?)
}

/// Opens one WebSocket stream on the connection of `sender` and makes a byte stream of it.
///
/// # Errors
///
/// The connection is gone, or the server answered anything but 200 (a 2xx other than 200
/// is refused too: RFC 8441 asks for 200, a proxy might say otherwise).
pub async fn open(
    sender: &mut SendRequest<Empty<Bytes>>,
    uri: &str,
    config: Config,
) -> Result<H2Stream, BoxError> {
    sender.ready().await?;
    let mut response = sender.send_request(connect_request(uri)?).await?;
    if response.status() != StatusCode::OK {
        return Err(format!("the server refused the WebSocket: {}", response.status()).into());
    }
    let upgraded = hyper::upgrade::on(&mut response).await?;
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    Ok(WsIo::from_transport(ws, config))
}
