//! The echo server's accept loop and options, shared by `echo_server.rs` and its tests
//! (`tests/echo_server.rs` includes this file with `#[path]`).

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::{AsyncWriteExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};
use tracing::{debug, info, warn};
use ws_stream_tungstenite::{
    Channel, CloseCode, CloseFrame, CloseHandle, Config, Observable, ObserveConfig, WsErr, WsEvent,
    WsStream,
    async_tungstenite::tokio::accept_hdr_async_with_config,
    tungstenite::{
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
        protocol::WebSocketConfig,
    },
};

/// The command line, printed with every error in it.
pub const USAGE: &str = "usage: echo_server [ADDR] [--handshake-timeout SECS] \
[--max-connections N] [--max-message-size BYTES] [--lean] [--close-timeout SECS] \
[--ping-interval SECS] [--ping-timeout SECS] [--send-timeout SECS] [--allow-origin ORIGIN]...";

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (default `127.0.0.1:3012`).
    pub addr: String,
    /// The stream's settings: close timeout, keepalive, send timeout.
    pub config: Config,
    /// Browser origins let through; empty lets every origin through.
    pub allowed_origins: Vec<String>,
    /// How long a client has from TCP accept to a completed upgrade (default 10 s).
    pub handshake_timeout: Duration,
    /// Connections served at once, handshakes included (default 10,000).
    pub max_connections: u32,
    /// The largest message, and frame, accepted from a client (default 1 MiB).
    pub max_message_size: usize,
    /// Small buffers for many idle connections: tungstenite reads 4 KiB at a time and writes
    /// through (about 12 KiB per idle connection instead of 78 KiB).
    pub lean: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3012".to_owned(),
            config: Config::default(),
            allowed_origins: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_message_size: 1 << 20,
            lean: false,
        }
    }
}

impl Options {
    /// tungstenite's settings: the size limits, and the lean buffers if asked for.
    pub fn ws_config(&self) -> WebSocketConfig {
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size));
        if self.lean {
            config.read_buffer_size(4 << 10).write_buffer_size(0)
        } else {
            config
        }
    }
}

/// Parses the arguments (without the program name). An error says what is wrong; show it with
/// [`USAGE`].
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    fn value<T: std::str::FromStr>(v: Option<String>, flag: &str, what: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let v = v.ok_or_else(|| format!("{flag} needs {what}"))?;
        v.parse().map_err(|err| format!("{flag} {v:?}: {err}"))
    }
    let secs = |v: Option<String>, flag: &str| -> Result<Duration, String> {
        let secs: f64 = value(v, flag, "a value in seconds")?;
        Duration::try_from_secs_f64(secs).map_err(|err| format!("{flag} {secs}: {err}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--handshake-timeout" => options.handshake_timeout = secs(args.next(), &arg)?,
            "--max-connections" => {
                options.max_connections = value(args.next(), &arg, "a number")?;
                if options.max_connections == 0 {
                    return Err("--max-connections must be at least 1".to_owned());
                }
            }
            "--max-message-size" => {
                options.max_message_size = value(args.next(), &arg, "a size in bytes")?;
                if options.max_message_size == 0 {
                    return Err("--max-message-size must be at least 1".to_owned());
                }
            }
            "--lean" => options.lean = true,
            "--close-timeout" => {
                options.config = options.config.close_timeout(secs(args.next(), &arg)?);
            }
            "--ping-interval" => {
                options.config = options.config.ping_interval(secs(args.next(), &arg)?);
            }
            "--ping-timeout" => {
                options.config = options.config.ping_timeout(secs(args.next(), &arg)?);
            }
            "--send-timeout" => {
                options.config = options.config.send_timeout(secs(args.next(), &arg)?);
            }
            "--allow-origin" => {
                let origin = args.next().ok_or("--allow-origin needs an origin")?;
                options.allowed_origins.push(origin);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            addr => options.addr = addr.to_owned(),
        }
    }
    Ok(options)
}

/// A future that resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed here, so
/// signals that arrive before the future is polled are not missed.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM"),
                _ = int.recv() => info!("SIGINT"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            info!("Ctrl-C");
        })
    }
}

/// Serves connections on `listener` until `shutdown` resolves, then closes every connection
/// with 1001 (after the bytes already echoed), waits for them to end, at most the close
/// timeout (10 s when off) plus a second, and returns.
pub async fn run(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        ws_config: options.ws_config(),
        config: options
            .config
            .clone()
            // Send no larger messages than we accept.
            .max_message_size(
                options
                    .max_message_size
                    .min(Config::DEFAULT_MAX_MESSAGE_SIZE),
            ),
        origins: options.allowed_origins.clone(),
        handshake_timeout: options.handshake_timeout,
        registry: Registry::default(),
        stop: stop_rx,
    });
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // One slot per connection from accept to its end, handshake included.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Refused: the TCP connection is closed at once, before reading anything.
            warn!(%peer, "refused: {} connections open", options.max_connections);
            drop(tcp);
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve(tcp, peer, &shared).await;
            drop(slot);
        });
    }
    drop(listener);
    // Handshakes in progress are abandoned; open connections get 1001.
    let _ = stop_tx.send(true);
    let open = shared.registry.shut_down();
    info!(
        open,
        "shutting down: stopped accepting, closing open connections with 1001"
    );
    let wait = options
        .config
        .get_close_timeout()
        .unwrap_or(Config::DEFAULT_CLOSE_TIMEOUT)
        + Duration::from_secs(1);
    let all = options.max_connections;
    match tokio::time::timeout(wait, slots.acquire_many(all)).await {
        Ok(_) => info!("every connection ended"),
        Err(_) => warn!(
            left = all as usize - slots.available_permits(),
            "connections still open after {wait:?}: dropped"
        ),
    }
    Ok(())
}

/// What every connection task needs.
struct Shared {
    config: Config,
    ws_config: WebSocketConfig,
    origins: Vec<String>,
    handshake_timeout: Duration,
    registry: Registry,
    /// Becomes `true` at shutdown.
    stop: watch::Receiver<bool>,
}

/// The close handles of the open connections, for the shutdown.
#[derive(Default)]
struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    shutting_down: bool,
    next_id: u64,
    handles: HashMap<u64, CloseHandle>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the handle until the guard is dropped; after the shutdown began, closes at once.
    fn register(&self, handle: CloseHandle) -> Registered<'_> {
        let mut inner = self.lock();
        if inner.shutting_down {
            close_for_shutdown(&handle);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.handles.insert(id, handle);
        Registered { registry: self, id }
    }

    /// Closes every registered connection with 1001, and those registered later; returns how
    /// many were open.
    fn shut_down(&self) -> usize {
        let mut inner = self.lock();
        inner.shutting_down = true;
        inner.handles.values().for_each(close_for_shutdown);
        inner.handles.len()
    }

    fn shutting_down(&self) -> bool {
        self.lock().shutting_down
    }
}

fn close_for_shutdown(handle: &CloseHandle) {
    if let Err(err) = handle.close(CloseCode::Away, "server shutting down") {
        warn!("close at shutdown: {err}");
    }
}

/// Removes its handle from the registry when the connection ends.
struct Registered<'a> {
    registry: &'a Registry,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.lock().handles.remove(&self.id);
    }
}

/// Serves one connection and logs how it ended, once.
async fn serve(tcp: TcpStream, peer: SocketAddr, shared: &Shared) {
    match echo(tcp, shared).await {
        Ok((_, close)) if shared.registry.shutting_down() => {
            info!(%peer, "closed by us with 1001 (shutdown), answered with {}", describe(&close))
        }
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

/// Echoes until the connection closes: the bytes echoed and the peer's close frame (`None`
/// inside when it had no code).
async fn echo(tcp: TcpStream, shared: &Shared) -> io::Result<(u64, Option<CloseFrame>)> {
    tcp.set_nodelay(true)?;
    let origins = &shared.origins;
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
    // The whole upgrade, from accept, within the handshake timeout: a client that sends
    // nothing, or half a request, is dropped then. A shutdown abandons it.
    let handshake = accept_hdr_async_with_config(tcp, check_origin, Some(shared.ws_config));
    let mut stop = shared.stop.clone();
    let ws = tokio::select! {
        done = tokio::time::timeout(shared.handshake_timeout, handshake) => match done {
            Ok(ws) => ws.map_err(io::Error::other)?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "handshake timed out")),
        },
        _ = stop.wait_for(|stop| *stop) => {
            return Err(io::Error::other("shutting down during the handshake"));
        }
    };
    let mut stream = WsStream::with_config(ws, shared.config.clone());
    let _registered = shared.registry.register(stream.close_handle());

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
    // EOF only when the connection closed cleanly: the peer closed (the close already answered
    // it), or our shutdown did and the peer answered.
    let bytes = match futures::io::copy(&mut reader, &mut writer).await {
        Ok(bytes) => bytes,
        // Our shutdown closed the stream while bytes were on their way back: those can no
        // longer be sent. Read on until the peer answers the close, so the handshake finishes.
        Err(err) if err.kind() == io::ErrorKind::NotConnected => {
            futures::io::copy(&mut reader, &mut futures::io::sink()).await?;
            0
        }
        Err(err) => return Err(err),
    };
    // Checks that everything echoed went out.
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
