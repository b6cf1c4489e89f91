//! Shared helpers for the integration tests: in-memory WebSocket pairs, raw peers, timeouts.

use std::{future::Future, time::Duration};

use async_tungstenite::{
    WebSocketStream, accept_async_with_config, client_async_with_config, tokio::TokioAdapter,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use tokio::io::DuplexStream;
use tungstenite::protocol::WebSocketConfig;

/// The transport of the tests: tokio's in-memory pipe seen through futures-io.
pub type Pipe = TokioAdapter<DuplexStream>;
pub type Ws = WebSocketStream<Pipe>;

/// Fails the test instead of hanging it.
pub async fn within<F: Future>(secs: u64, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("test timed out")
}

/// A connected client and server over a pipe of `capacity` bytes per direction.
pub async fn ws_pair_with(
    capacity: usize,
    client: Option<WebSocketConfig>,
    server: Option<WebSocketConfig>,
) -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(capacity);
    let (c, s) = futures::join!(
        client_async_with_config("ws://localhost/", TokioAdapter::new(a), client),
        accept_async_with_config(TokioAdapter::new(b), server),
    );
    (c.expect("client handshake").0, s.expect("server handshake"))
}

/// A connected client and server with roomy pipes and default configs.
pub async fn ws_pair() -> (Ws, Ws) {
    ws_pair_with(1 << 20, None, None).await
}

/// A WebSocket server (to wrap) and the raw client end of its pipe, after the handshake: the
/// test writes hand-made frames and reads the server's frames back byte by byte.
pub async fn raw_client(server: Option<WebSocketConfig>) -> (Ws, Pipe) {
    let (client, server) = ws_pair_with(1 << 20, None, server).await;
    (server, client.into_inner())
}

/// A WebSocket client (to wrap) and the raw server end of its pipe.
pub async fn raw_server(client: Option<WebSocketConfig>) -> (Ws, Pipe) {
    let (client, server) = ws_pair_with(1 << 20, client, None).await;
    (client, server.into_inner())
}

/// Encodes one frame. Client frames must be masked; the mask here is fixed, which is allowed.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

pub use super::frames::close_payload;

/// Reads one unmasked frame (as a server sends them) from a raw pipe: (opcode, payload).
pub async fn read_frame(raw: &mut Pipe) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    raw.read_exact(&mut head).await?;
    let len = match head[1] & 0x7F {
        126 => {
            let mut l = [0u8; 2];
            raw.read_exact(&mut l).await?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            raw.read_exact(&mut l).await?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mask = if head[1] & 0x80 != 0 {
        let mut m = [0u8; 4];
        raw.read_exact(&mut m).await?;
        Some(m)
    } else {
        None
    };
    let mut payload = vec![0; len];
    raw.read_exact(&mut payload).await?;
    if let Some(m) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= m[i % 4]);
    }
    Ok((head[0] & 0x0F, payload))
}

/// Reads frames until a close frame arrives; returns its code (None for an empty close).
pub async fn read_close_code(raw: &mut Pipe) -> Option<u16> {
    loop {
        let (op, payload) = read_frame(raw).await.expect("a close frame");
        if op == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// Writes raw bytes to the pipe.
pub async fn send_raw(raw: &mut Pipe, bytes: &[u8]) {
    raw.write_all(bytes).await.expect("raw write");
    raw.flush().await.expect("raw flush");
}

/// Collects every message a plain WebSocket peer receives until the stream ends, then drops
/// the peer (closing its end of the pipe, as a server does after the close handshake).
pub async fn drain_messages(mut ws: Ws) -> Vec<tungstenite::Message> {
    let mut all = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        all.push(msg);
    }
    all
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Reads to the end, then drops the stream, which closes the transport so that a peer waiting
/// for the end of the connection gets it (a server would do the same).
pub async fn read_all_then_drop<R: futures::AsyncRead + Unpin>(
    mut r: R,
) -> std::io::Result<Vec<u8>> {
    let result = read_all(&mut r).await;
    drop(r);
    result
}

/// Reads to the end in 64 KiB steps. (futures' `read_to_end` zeroes the spare capacity of its
/// vector on every poll, which is quadratic for large transfers that arrive in small pieces.)
pub async fn read_all<R: futures::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await? {
            0 => return Ok(got),
            n => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The client side of an echo: sends `data` in odd-sized writes without flushing while reading
/// the echo concurrently; closes only after the whole echo arrived (a WebSocket has no
/// half-close: after a close frame the peer cannot send the rest), then reads to the end.
pub async fn echo_client<S>(ws: WebSocketStream<S>, data: &[u8]) -> Vec<u8>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = ws_stream_tungstenite::WsStream::new(ws).into_split();
    let send = async {
        for chunk in data.chunks(1000) {
            writer.write_all(chunk).await.expect("write");
        }
    };
    let mut back = vec![0u8; data.len()];
    let (_, read) = futures::join!(send, reader.read_exact(&mut back));
    read.expect("the whole echo");
    writer.close().await.expect("close");
    assert_eq!(
        read_all(&mut reader).await.expect("clean end"),
        b"",
        "nothing after the echo"
    );
    back
}
