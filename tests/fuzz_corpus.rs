//! Runs the committed fuzz corpus (`fuzz/corpus/peer_bytes/`) and a set of built-in seeds
//! through the fuzz harness (`tests/support/harness.rs`), so CI covers what the fuzzer found
//! without running the fuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by panicking.

mod support;

use std::{fs, path::Path};

use support::{
    frames::{self, Frame},
    harness,
};

#[test]
fn committed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/peer_bytes");
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    assert!(!entries.is_empty(), "no corpus in {}", dir.display());
    for path in &entries {
        let data = fs::read(path).unwrap_or_default();
        let outcome = std::panic::catch_unwind(|| harness::run(&data));
        assert!(outcome.is_ok(), "corpus entry {} failed", path.display());
    }
    println!("ran {} corpus entries", entries.len());
}

/// Peer inputs worth starting from: every kind of frame, valid and not.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for client in [false, true] {
        // Frames from the peer: masked when the peer is the client (our stream the server).
        let peer_masks = !client;
        let f = |fr: Frame| fr.sent_by_client(peer_masks).encode();
        let bodies: Vec<Vec<u8>> = vec![
            [
                f(Frame::new(frames::BINARY, b"hello".to_vec())),
                f(Frame::new(frames::CLOSE, frames::close_payload(1000, ""))),
            ]
            .concat(),
            [
                f(Frame::new(frames::BINARY, b"he".to_vec()).fin(false)),
                f(Frame::new(frames::PING, b"p".to_vec())),
                f(Frame::new(frames::CONT, b"llo".to_vec())),
                f(Frame::new(frames::BINARY, Vec::new())),
                f(Frame::new(frames::CLOSE, Vec::new())),
            ]
            .concat(),
            [
                f(Frame::new(frames::BINARY, vec![7; 300])),
                f(Frame::new(frames::TEXT, b"text".to_vec())),
            ]
            .concat(),
            f(Frame::new(frames::TEXT, vec![0xff, 0xfe])),
            f(Frame::new(frames::BINARY, vec![1; 200])),
            f(Frame::new(0x3, b"x".to_vec())),
            f(Frame::new(0xB, b"x".to_vec())),
            Frame::new(frames::BINARY, b"unmasked?".to_vec()).encode(),
            Frame::new(frames::BINARY, b"masked?".to_vec())
                .masked([1, 2, 3, 4])
                .encode(),
            f(Frame::new(frames::CLOSE, frames::close_payload(1005, ""))),
            f(Frame::new(
                frames::CLOSE,
                frames::close_payload(4000, "bye"),
            )),
            f(Frame::new(frames::CLOSE, vec![3])),
            [f(Frame::new(frames::BINARY, b"half".to_vec()))[..4].to_vec()].concat(),
            [
                f(Frame::new(frames::CLOSE, Vec::new())),
                f(Frame::new(frames::BINARY, b"late".to_vec())),
            ]
            .concat(),
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let flags = u8::from(client) | ((i as u8 % 4) << 1) | ((i as u8 % 3) << 4);
            let mut seed = vec![flags, (i as u8).wrapping_mul(37), 31, i as u8];
            seed.extend_from_slice(&body);
            seeds.push(seed);
        }
    }
    seeds
}

#[test]
fn builtin_seeds() {
    for seed in seeds() {
        harness::run(&seed);
    }
}

/// Writes the built-in seeds into the corpus folder: `WRITE_FUZZ_SEEDS=1 cargo test --test
/// fuzz_corpus write_seeds`.
#[test]
fn write_seeds() {
    if std::env::var_os("WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/peer_bytes");
    fs::create_dir_all(&dir).unwrap_or_default();
    for (i, seed) in seeds().iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap_or_default();
    }
}
