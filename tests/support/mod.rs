//! Shared test support: in-memory transports, a fault-injecting transport, a hand-made frame
//! codec for raw peers, a seeded RNG and the fuzz harness.
//!
//! Every test binary includes this module with `mod support;` and uses a different part of it.
#![allow(dead_code, unreachable_pub)] // Each test binary uses only part of the support code.

pub mod fault;
pub mod frames;
pub mod harness;
pub mod pipe;
pub mod rng;
