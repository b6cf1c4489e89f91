//! Allocations per message, counted (not timed): this crate adds at most one heap allocation per
//! outgoing message and none per incoming one, beyond what tungstenite and the transport do.
//!
//! One test in its own binary, on one thread, so the global counter sees only this scenario.

mod support;

use std::alloc::System;

use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;
use tungstenite::Message;
use ws_stream_tungstenite::WsStream;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MESSAGES: usize = 2000;
const SIZE: usize = 1024;

/// Allocations while `f` runs.
async fn allocations<F: std::future::Future>(f: F) -> usize {
    let region = Region::new(GLOBAL);
    f.await;
    region.change().allocations
}

#[test]
fn allocations_per_message() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(within(60, async {
        let payload = vec![7u8; SIZE];

        // Sending: ours (write + flush per message) against raw messages, both read by a raw
        // peer that is drained afterwards.
        let (ws, mut peer) = ws_pair_with(64 << 20, None, None).await;
        let mut ours = WsStream::new(ws);
        ours.write_all(&payload).await.unwrap(); // warm up buffers
        ours.flush().await.unwrap();
        let sent_ours = allocations(async {
            for _ in 0..MESSAGES {
                ours.write_all(&payload).await.unwrap();
                ours.flush().await.unwrap();
            }
        })
        .await;
        let (mut raw, _peer2) = ws_pair_with(64 << 20, None, None).await;
        raw.send(Message::binary(payload.clone())).await.unwrap();
        let sent_raw = allocations(async {
            for _ in 0..MESSAGES {
                raw.send(Message::binary(payload.clone())).await.unwrap();
            }
        })
        .await;
        // Each raw send allocates its payload (`Message::binary(Vec)`), which ours avoids.
        let per_msg_ours = sent_ours as f64 / MESSAGES as f64;
        let per_msg_raw = sent_raw as f64 / MESSAGES as f64;
        println!(
            "sending: ours {per_msg_ours:.2}, raw messages {per_msg_raw:.2} allocations/message"
        );
        assert!(
            per_msg_ours <= 1.0,
            "{per_msg_ours} allocations per outgoing message"
        );
        assert!(
            per_msg_ours <= per_msg_raw,
            "{per_msg_ours} vs {per_msg_raw}"
        );

        // Receiving: the peer sends; ours reads into a buffer, raw reads messages.
        for _ in 0..=MESSAGES {
            peer.feed(Message::binary(payload.clone())).await.unwrap();
        }
        peer.flush().await.unwrap();
        let mut buf = vec![0u8; SIZE];
        ours.read_exact(&mut buf).await.unwrap(); // warm up
        let recv_ours = allocations(async {
            for _ in 0..MESSAGES {
                ours.read_exact(&mut buf).await.unwrap();
            }
        })
        .await;
        let (mut sender, mut receiver) = ws_pair_with(64 << 20, None, None).await;
        for _ in 0..=MESSAGES {
            sender.feed(Message::binary(payload.clone())).await.unwrap();
        }
        sender.flush().await.unwrap();
        receiver.next().await.unwrap().unwrap(); // warm up
        let recv_raw = allocations(async {
            for _ in 0..MESSAGES {
                receiver.next().await.unwrap().unwrap();
            }
        })
        .await;
        let per_msg_ours = recv_ours as f64 / MESSAGES as f64;
        let per_msg_raw = recv_raw as f64 / MESSAGES as f64;
        println!(
            "receiving: ours {per_msg_ours:.2}, raw messages {per_msg_raw:.2} allocations/message"
        );
        assert!(
            per_msg_ours <= per_msg_raw + 0.05,
            "{per_msg_ours} vs {per_msg_raw}"
        );
    }));
}
