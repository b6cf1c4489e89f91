//! Fuzz target: the WRITE side and closing of a `WsStream` with arbitrary timing. The input
//! scripts writes of arbitrary sizes (plain or vectored), flushes, pings, `close` and
//! `close_with` at arbitrary points, split or unsplit, over the fault-injecting transport
//! (random `Pending`s, short and stalled writes, a write fault at an offset), while a scripted
//! peer sends data, pings and its close frame at arbitrary points. The harness (shared with
//! `tests/fuzz_corpus.rs`) panics on silent loss (bytes accepted by a write that neither reach
//! the wire nor make a later flush or close fail), on a hang (a lost wake-up or livelock) and
//! on an outcome the contract rules out.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run write_close` from the crate root (see TESTING.md).
#![no_main]

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)] // The fuzz target uses only the write harness and what it needs.
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    support::write_harness::run(data);
});
