//! Placeholder while the core lands.
#![forbid(unsafe_code)]
