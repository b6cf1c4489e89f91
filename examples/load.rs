//! Load test: thousands of concurrent WebSocket connections over 127.0.0.1, each echoing random
//! data through `WsStream` (client and server both in this process), with every byte checked,
//! and the memory per connection measured from `/proc/self/status` (Linux).
//!
//! Run: `cargo run --release --example load -- [CONNECTIONS] [READ_BUFFER_KIB]`
//! (default 2000 connections, tungstenite's default 128 KiB read buffer). Needs about
//! 2 file descriptors per connection: raise the limit first if needed (`ulimit -n 8192`).
//! The run is bounded to 60 s; it exits non-zero if any byte is lost or anything fails.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{
    AsyncReadExt, AsyncWriteExt,
    future::{join, try_join_all},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Barrier, Semaphore},
};
use ws_stream_tungstenite::{
    WsStream,
    async_tungstenite::tokio::{accept_async_with_config, client_async_with_config},
    tungstenite::protocol::WebSocketConfig,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// SplitMix64: the data of connection `i` is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap_or(0)
    }
}

/// A field of `/proc/self/status` in KiB (0 where there is no such file).
fn status_kib(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files.
fn fd_limit() -> Option<usize> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(read_buffer)
}

/// The server side of one connection: echo until the client closes.
async fn serve(tcp: TcpStream, config: WebSocketConfig) -> Result<u64, Error> {
    tcp.set_nodelay(true)?;
    let ws = accept_async_with_config(tcp, Some(config)).await?;
    let (reader, mut writer) = WsStream::new(ws).split();
    let echoed = futures::io::copy(reader, &mut writer).await?;
    writer.close().await?;
    Ok(echoed)
}

/// The client side of connection `i`: handshake, wait for everyone, echo, check, close.
async fn client(
    i: usize,
    addr: std::net::SocketAddr,
    config: WebSocketConfig,
    connecting: Arc<Semaphore>,
    ready: Arc<Barrier>,
    go: Arc<Barrier>,
) -> Result<usize, Error> {
    let ws = {
        let _permit = connecting.acquire().await?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        client_async_with_config("ws://127.0.0.1/", tcp, Some(config))
            .await?
            .0
    };
    ready.wait().await;
    go.wait().await;

    let mut rng = Rng(i as u64);
    let len = 8 * 1024 + rng.below(24 * 1024);
    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let (mut reader, mut writer) = WsStream::new(ws).split();
    let write = async {
        let mut at = 0;
        while at < data.len() {
            let end = (at + 1 + rng.below(4096)).min(data.len());
            writer.write_all(&data[at..end]).await?;
            at = end;
        }
        writer.flush().await
    };
    let read = async {
        let mut back = vec![0; data.len()];
        reader.read_exact(&mut back).await.map(|()| back)
    };
    let (written, back) = join(write, read).await;
    written?;
    if back? != data {
        return Err(format!("connection {i}: the echo differs").into());
    }
    writer.close().await?;
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).await?; // EOF: the handshake completed
    if !rest.is_empty() {
        return Err(format!("connection {i}: bytes after the echo").into());
    }
    Ok(len)
}

async fn run(connections: usize, read_buffer: usize) -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ws_config(read_buffer);
    let served = Arc::new(AtomicUsize::new(0));
    let served2 = Arc::clone(&served);
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await?;
            let served = Arc::clone(&served2);
            tasks.push(tokio::spawn(async move {
                let echoed = serve(tcp, config).await?;
                served.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Error>(echoed)
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await??;
        }
        Ok::<_, Error>(total)
    });

    let rss_before = status_kib("VmRSS:");
    let start = Instant::now();
    let connecting = Arc::new(Semaphore::new(256));
    let ready = Arc::new(Barrier::new(connections + 1));
    let go = Arc::new(Barrier::new(connections + 1));
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(client(
                i,
                addr,
                config,
                Arc::clone(&connecting),
                Arc::clone(&ready),
                Arc::clone(&go),
            ))
        })
        .collect();

    ready.wait().await;
    let connected = start.elapsed();
    let rss_idle = status_kib("VmRSS:");
    go.wait().await;

    let mut sent = 0;
    for result in try_join_all(clients).await? {
        sent += result?;
    }
    let echoed = server.await??;
    let elapsed = start.elapsed();
    let rss_after = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");

    let served = served.load(Ordering::Relaxed);
    if served != connections || usize::try_from(echoed)? != sent {
        return Err(
            format!("{served}/{connections} served, {echoed} of {sent} bytes echoed").into(),
        );
    }
    let per_conn = |kib: usize| (kib.saturating_sub(rss_before)) as f64 / connections as f64;
    println!("connections:            {connections} (client and server side in this process)");
    println!("tungstenite read buffer: {} KiB", read_buffer / 1024);
    println!("bytes echoed:           {sent} (every byte checked), 0 lost");
    println!("all connected after:    {:.2} s", connected.as_secs_f64());
    println!("total time:             {:.2} s", elapsed.as_secs_f64());
    println!("RSS before:             {rss_before} KiB");
    println!(
        "RSS, all open and idle: {rss_idle} KiB = {:.1} KiB per connection (both ends)",
        per_conn(rss_idle)
    );
    println!(
        "RSS peak (VmHWM):       {hwm} KiB = {:.1} KiB per connection (both ends, during the echo)",
        per_conn(hwm)
    );
    println!("RSS after:              {rss_after} KiB");
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let connections: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let read_buffer: usize = args.next().map_or(Ok(128), |a| a.parse::<usize>())? * 1024;
    let needed = connections * 2 + 64;
    if let Some(limit) = fd_limit() {
        if limit < needed {
            return Err(format!(
                "{connections} connections need about {needed} file descriptors; the limit is {limit}: run `ulimit -n {needed}` first"
            )
            .into());
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), run(connections, read_buffer))
            .await
            .map_err(|_| "the load test did not finish within 60 s")?
    })
}
