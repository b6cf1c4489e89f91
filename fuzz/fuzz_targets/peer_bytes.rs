//! Fuzz target: arbitrary bytes as the peer's side of a server or client `WsStream`, driven
//! with interleaved reads, writes, flushes and closes over the fault-injecting in-memory
//! transport. The harness (shared with `tests/fuzz_corpus.rs`) checks the stream against a
//! plain tungstenite decoder of the same bytes and panics on any broken promise.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run peer_bytes` from the crate root (see TESTING.md).
#![no_main]

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)] // The fuzz target uses only the harness and what it needs.
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    support::harness::run(data);
});
