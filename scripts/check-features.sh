#!/usr/bin/env bash
# Checks that every feature combination builds, that the library builds on its MSRV, and that
# the docs build without warnings (the docs.rs way where a nightly toolchain is at hand).
#
# Usage: scripts/check-features.sh [--quick]
#   --quick   feature combinations only (no MSRV, no docs): a few minutes on a warm cache.
#
# Environment:
#   MSRV_INSTALL=0   do not try `rustup toolchain install` for the MSRV (default: try, 5 min max)
#   MSRV=1.xx        the toolchain to check with (default: `rust-version` in Cargo.toml)
#
# A missing MSRV or nightly toolchain is reported, not a failure; any failed check is.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[[ "${1:-}" == "--quick" ]] && quick=true

run() {
    echo "+ $*"
    "$@"
}

# With `cargo hack` this would be `cargo hack check --each-feature`; spelled out here to need no
# extra tool. The crate's own feature `tokio_io`, then async-tungstenite's features that it
# forwards: each runtime alone and together, and a TLS flavour of each family with its runtime.
# Not checked because it does not compile upstream: `smol-runtime` with a `tokio-rustls-*`
# feature alone (async-tungstenite 0.35 misses an import, sdroege/async-tungstenite#184).
# Examples and tests live in packages that name the features they need.
lib=(-p ws_stream_tungstenite)
run cargo check "${lib[@]}" --no-default-features
run cargo check "${lib[@]}" --no-default-features --all-targets
run cargo check "${lib[@]}" --features tokio_io
run cargo check "${lib[@]}" --features tokio_io --all-targets
run cargo check "${lib[@]}" --features tokio-runtime
run cargo check "${lib[@]}" --features smol-runtime
run cargo check "${lib[@]}" --features async-std-runtime
run cargo check "${lib[@]}" --features tokio-runtime,smol-runtime,async-std-runtime
run cargo check "${lib[@]}" --features tokio-rustls-webpki-roots
run cargo check "${lib[@]}" --features tokio-native-tls
run cargo check "${lib[@]}" --features smol-runtime,futures-rustls-webpki-roots
run cargo check "${lib[@]}" --features smol-runtime,smol-native-tls
run cargo check "${lib[@]}" --features async-native-tls
# Everything at once, with every target of the workspace (examples and integrations included).
run cargo check --workspace --all-features --all-targets
run cargo check "${lib[@]}" --features browser
# `browser` adds nothing outside wasm32, but must build there too.
run cargo check --features browser

# The browser side exists only on wasm32: clippy and rustdoc there, warnings denied. `--lib`
# only: the dev-dependencies are native. Its examples and tests run in `scripts/wasm-e2e.sh`.
if rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    run cargo clippy --lib --target wasm32-unknown-unknown --features browser -- -D warnings
    RUSTDOCFLAGS="-D warnings" run cargo doc --lib --target wasm32-unknown-unknown --features browser --no-deps
else
    echo "NOTE: no wasm32-unknown-unknown target (rustup could not add it): browser side not checked"
fi

if $quick; then
    echo "feature checks passed (--quick: MSRV and docs skipped)"
    exit 0
fi

# MSRV: the library with all features (dev-dependencies may need a newer Rust, and only the
# library is what users build).
msrv=${MSRV:-$(sed -n 's/^rust-version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)}
have_msrv=false
if rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    have_msrv=true
elif [[ "${MSRV_INSTALL:-1}" != 0 ]] &&
    timeout 300 rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; then
    have_msrv=true
fi
if $have_msrv; then
    run cargo "+$msrv" check "${lib[@]}" --lib --all-features
else
    echo "NOTE: the MSRV toolchain $msrv is unavailable (rustup could not install it);"
    echo "      checking the library with stable instead, which does not prove that it"
    echo "      compiles on Rust $msrv (the resolver setting only keeps a re-resolution of"
    echo "      Cargo.lock to versions that declare support for $msrv)."
    CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback run cargo +stable check "${lib[@]}" --lib --all-features
fi

# Docs with warnings denied. `--cfg docsrs` turns on `feature(doc_cfg)`, which only nightly
# accepts; on stable the same docs are built without it.
if rustup run nightly rustdoc --version >/dev/null 2>&1; then
    RUSTDOCFLAGS="--cfg docsrs -D warnings" run cargo +nightly doc "${lib[@]}" --all-features --no-deps
else
    echo "NOTE: no nightly toolchain: the docs.rs build (--cfg docsrs) is not checked;"
    echo "      checking the docs on stable without it."
fi
RUSTDOCFLAGS="-D warnings" run cargo doc "${lib[@]}" --all-features --no-deps

echo "feature, MSRV and doc checks passed"
