//! Shared test support: in-memory WebSocket pairs and timeouts (`ws`, re-exported at the top),
//! in-memory transports, a fault-injecting transport, transports that never wait (`ready`),
//! that get stuck or fail on command (`stuck`, `breakable`), a hand-made frame codec for raw
//! peers, a seeded RNG and the fuzz harness.
//!
//! Every test binary includes this module with `mod support;` and uses a different part of it.
//! The fuzz targets include it too; they build without tokio, so `ws` is left out there.
#![allow(dead_code, unreachable_pub, unused_imports)] // Each test binary uses only part of it.

#[cfg(not(fuzzing))]
pub mod breakable;
pub mod fault;
pub mod frames;
pub mod harness;
pub mod pipe;
#[cfg(not(fuzzing))]
pub mod ready;
pub mod rng;
#[cfg(not(fuzzing))]
pub mod stuck;
pub mod write_harness;
#[cfg(not(fuzzing))]
pub mod ws;

#[cfg(not(fuzzing))]
pub use ws::*;
