//! Empty: the tests are in `tests/contract.rs`, run by `scripts/wasm-e2e.sh`.
