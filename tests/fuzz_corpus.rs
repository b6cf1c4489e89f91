//! Runs the committed fuzz corpora and a set of built-in seeds through the fuzz harnesses, so
//! CI covers what the fuzzer found without running the fuzzer:
//! - `fuzz/corpus/peer_bytes/` through `tests/support/harness.rs` (target `peer_bytes`);
//! - `fuzz/corpus/write_close/` through `tests/support/write_harness.rs` (target
//!   `write_close`), and the crashes it found, `fuzz/artifacts-found/write_close/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by panicking.

mod support;

use std::{fs, path::Path};

use support::{
    frames::{self, Frame},
    harness, write_harness,
};

/// Runs every file of `dir` (relative to the crate root) through `run`; fails naming every
/// entry that panicked.
fn run_dir(dir: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    assert!(!entries.is_empty(), "no corpus in {}", dir.display());
    let failed: Vec<_> = entries
        .iter()
        .filter(|path| {
            let data = fs::read(path).unwrap_or_default();
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} entries failed: {failed:#?}",
        failed.len()
    );
    println!("ran {} corpus entries", entries.len());
}

#[test]
fn committed_corpus() {
    run_dir("fuzz/corpus/peer_bytes", harness::run);
}

#[test]
fn write_close_corpus() {
    run_dir("fuzz/corpus/write_close", write_harness::run);
}

/// The crashes the `write_close` target found (silent loss and false `Ok`s of the engine of
/// the time); each must pass once the engine keeps the contract.
#[test]
fn write_close_found() {
    run_dir("fuzz/artifacts-found/write_close", write_harness::run);
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

/// Hand-made scripts for the `write_close` target (see `tests/support/write_harness.rs` for
/// the encoding): a header of 6 bytes, then operations.
fn write_close_seeds() -> Vec<Vec<u8>> {
    // Operations.
    let write = |len: u8| [0x00, len - 1];
    let write_v = |len: u8| [0x10, len - 1];
    let big_write = |len: u8| [0xC0, len]; // 1 + len * 4 bytes
    const FLUSH: u8 = 5;
    let ping = |len: u8| [7, len];
    let close = [8, 0];
    let close_1000 = [8, 110];
    let close_4000 = [8, 200];
    let close_invalid = [8, 100];
    let read = |len: u8| [9, len - 1];
    let fill_buf = |len: u8| [0x19, len - 1];
    let peer_data = |len: u8| [11, len];
    let peer_data_fragmented = |len: u8| [11 | 2 << 5, len];
    const PEER_PING: u8 = 13;
    let peer_close_1000 = [14, 10];
    let peer_close_4000 = [14, 200];
    const PEER_END: u8 = 15;

    // Header: flags (1 client, 2 split, 4 final close, 8 with a code, 16 final first,
    // 32 peer closes at the end, 64 with 4000+, 128 input ends with a reset), seed and
    // `Pending`s, seed and chunk, write fault, stalls and message size, tungstenite buffers.
    let header = |flags: u8, fault: u8, size: u8| vec![flags, 21, 7, fault, size, 0x05];
    let script = |header: Vec<u8>, ops: &[&[u8]]| -> Vec<u8> {
        let mut out = header;
        for op in ops {
            out.extend_from_slice(op);
        }
        out
    };
    vec![
        // Writes, a flush, the peer's data read, our close, the peer's answer.
        script(
            header(1 | 2 | 4 | 32, 0, 2 << 3),
            &[
                &write(100),
                &write_v(200),
                &[FLUSH],
                &peer_data(50),
                &read(60),
                &close,
                &peer_close_1000,
                &read(10),
            ],
        ),
        // The peer closes while our bytes wait in the buffer; then we flush and close.
        script(
            header(2 | 4 | 16, 0, 4 << 3),
            &[
                &write(200),
                &write(200),
                &peer_close_1000,
                &read(10),
                &[FLUSH],
                &close,
            ],
        ),
        // Unsplit: a read gives way to writes; the peer's close 4000 arrives mid-way.
        script(
            header(1 | 4 | 8, 0, 3 << 3),
            &[
                &read(100),
                &big_write(100),
                &peer_data_fragmented(90),
                &[PEER_PING],
                &fill_buf(30),
                &peer_close_4000,
                &big_write(50),
                &[FLUSH],
            ],
        ),
        // Close with a code, pings around it, an invalid close code, a ping too big.
        script(
            header(2 | 32 | 64, 0, 1 << 3),
            &[
                &write(30),
                &ping(5),
                &close_invalid,
                &ping(126),
                &close_4000,
                &write(10),
                &ping(1),
                &close_1000,
            ],
        ),
        // A write fault at byte 23: the first message (20 bytes, unmasked) gets out, the close
        // frame does not.
        script(
            header(2 | 4 | 32, 0x80 | 1, 3 | 2 << 3),
            &[
                &write(20),
                &[FLUSH],
                &read(5),
                &peer_data(5),
                &close,
                &write(5),
            ],
        ),
        // The peer vanishes (reset) with our bytes buffered.
        script(
            header(2 | 4 | 128, 0, 4 << 3),
            &[
                &write(250),
                &peer_data(20),
                &[PEER_END],
                &read(100),
                &[FLUSH],
            ],
        ),
        // Tiny messages (1 byte), the peer's close before ours, final close first.
        script(
            header(1 | 4 | 16 | 32, 0, 0),
            &[&write(20), &write_v(7), &close_1000, &read(3), &[FLUSH]],
        ),
        // Close before anything else, then writes that must fail.
        script(
            header(2 | 32, 0, 2 << 3),
            &[&close, &write(10), &[FLUSH], &ping(3), &read(1)],
        ),
    ]
}

#[test]
fn write_close_builtin_seeds() {
    let failed: Vec<usize> = write_close_seeds()
        .iter()
        .enumerate()
        .filter(|(_, seed)| std::panic::catch_unwind(|| write_harness::run(seed)).is_err())
        .map(|(i, _)| i)
        .collect();
    assert!(failed.is_empty(), "write_close seeds failed: {failed:?}");
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/write_close");
    fs::create_dir_all(&dir).unwrap_or_default();
    for (i, seed) in write_close_seeds().iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap_or_default();
    }
}

/// Not a test: groups the inputs of a folder by the check they fail (the first line of the
/// panic, numbers masked), with the smallest input of each group, to sort crashes found by
/// the `write_close` fuzzer:
/// `CLASSIFY_DIR=fuzz/artifacts/write_close cargo test --test fuzz_corpus classify -- --ignored --nocapture`.
#[test]
#[ignore = "a tool for sorting crashes"]
fn classify() {
    use std::collections::BTreeMap;
    let Some(dir) = std::env::var_os("CLASSIFY_DIR") else {
        return;
    };
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut groups: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for path in &entries {
        let data = fs::read(path).unwrap_or_default();
        let key = match std::panic::catch_unwind(|| write_harness::run(&data)) {
            Ok(()) => "passes".to_owned(),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                let mut key = String::new();
                for c in msg.lines().next().unwrap_or_default().chars() {
                    if !c.is_ascii_digit() {
                        key.push(c);
                    } else if !key.ends_with('#') {
                        key.push('#');
                    }
                }
                key.chars().take(90).collect()
            }
        };
        groups
            .entry(key)
            .or_default()
            .push((data.len(), path.display().to_string()));
    }
    std::panic::set_hook(hook);
    for (key, mut inputs) in groups {
        inputs.sort();
        println!("{} x {key}\n    smallest: {}", inputs.len(), inputs[0].1);
    }
}

/// Not a test: replays one `write_close` input, printing what it decodes to, with the
/// stream's and tungstenite's logs (`RUST_LOG`, e.g. `debug`):
/// `REPLAY=path RUST_LOG=debug cargo test --test fuzz_corpus replay -- --ignored --nocapture`.
#[test]
#[ignore = "a tool for reading a crash"]
fn replay() {
    let Some(path) = std::env::var_os("REPLAY") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let data = fs::read(path).unwrap_or_default();
    println!("{}", write_harness::describe(&data));
    write_harness::run(&data);
}
