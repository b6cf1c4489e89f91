#!/usr/bin/env bash
# The browser side, end to end, in headless Chromium:
#
# 1. examples/shared-protocol: one protocol crate (`proto`) served natively over
#    ws_stream_tungstenite's WsStream and called from the browser over its BrowserStream;
# 2. tests/browser: BrowserStream's contract against `contract-server`, which misbehaves on
#    purpose (closes with 1011 or 4000, drops or resets the connection, sends empty and text
#    messages, reads slowly, closes while we write, refuses the handshake); the examples of the
#    browser module's docs are compiled there too.
#
#   scripts/wasm-e2e.sh
#
# Installs what is missing (wasm32 target, Chromium + chromedriver, the wasm-bindgen-cli that
# matches examples/shared-protocol/Cargo.lock) and skips what is already there, so a second
# run only rebuilds what changed. Starts the servers on free loopback ports, runs the native
# tests of `proto`, then the browser tests, and stops the servers on exit. Both workspaces
# share one target directory, so their common dependencies are built once.
set -euo pipefail

start=$SECONDS
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ws="$root/examples/shared-protocol"
contract="$root/tests/browser"
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export PATH="$CARGO_HOME/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$ws/target}"
export CARGO_TARGET_DIR="$target_dir"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'wasm-e2e: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v cargo >/dev/null && command -v rustup >/dev/null || die "needs rustup and cargo"

say "wasm32 target"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "already installed"
else
    rustup target add wasm32-unknown-unknown
fi

say "Chromium and chromedriver"
if command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ]; then
    echo "already installed: $(chromium --version 2>/dev/null || echo chromium)"
else
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi

say "wasm-bindgen-cli"
# The runner must be exactly the version of the wasm-bindgen crate in the lock file.
wb_version="$(awk -F'"' '/^name = "wasm-bindgen"$/ { getline; print $2; exit }' "$ws/Cargo.lock")"
[ -n "$wb_version" ] || die "no wasm-bindgen in $ws/Cargo.lock"
wb_contract="$(awk -F'"' '/^name = "wasm-bindgen"$/ { getline; print $2; exit }' "$contract/Cargo.lock")"
[ "$wb_contract" = "$wb_version" ] ||
    die "wasm-bindgen is $wb_version in $ws/Cargo.lock but $wb_contract in $contract/Cargo.lock: keep them equal (cargo update -p wasm-bindgen --precise ...)"
if [ "$(wasm-bindgen --version 2>/dev/null || true)" = "wasm-bindgen $wb_version" ] &&
    command -v wasm-bindgen-test-runner >/dev/null; then
    echo "already installed: $wb_version"
else
    # No prebuilt binary can be downloaded here; this builds it (a few minutes). `--locked`
    # is left out on purpose: its published lock file does not build here.
    cargo install wasm-bindgen-cli --version "$wb_version" --no-default-features
fi

say "build the servers"
(cd "$ws" && cargo build -p server)
(cd "$contract" && cargo build -p contract-server)

logs="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a server on port 0 (the OS picks a free port; the server prints which) and sets
# `addr` to its address.
start_server() {
    local name="$1" log="$logs/$1.log"
    "$target_dir/debug/$name" 127.0.0.1:0 >"$log" 2>&1 &
    pids+=("$!")
    addr=""
    for _ in $(seq 100); do
        addr="$(sed -n 's/^listening on //p' "$log")"
        [ -n "$addr" ] && break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; die "$name exited"; }
        sleep 0.1
    done
    [ -n "$addr" ] || die "$name did not report its address within 10 s"
    echo "$name listening on $addr"
}

say "start the servers"
start_server server
server_addr="$addr"
start_server contract-server
contract_addr="$addr"

say "native tests of proto: over an in-memory pipe, and over WsStream on both ends"
(cd "$ws" && cargo test -p proto -p server)

# The Chromium flags are in each package's webdriver.json. wasm-bindgen-test-runner looks for
# webdriver.json in its working directory (cargo runs it in the package's directory); the
# variable makes that explicit.
browser_test() {
    local dir="$1" package="$2"
    shift 2
    (cd "$dir" && env -u GECKODRIVER -u SAFARIDRIVER \
        WASM_BINDGEN_TEST_WEBDRIVER_JSON="$dir/$package/webdriver.json" \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
        CHROMEDRIVER=/usr/bin/chromedriver \
        WASM_BINDGEN_TEST_TIMEOUT=300 \
        "$@" cargo test -p "$package" --target wasm32-unknown-unknown)
}

say "browser tests of the shared protocol against ws://$server_addr"
browser_test "$ws" wasm-client WS_E2E_URL="ws://$server_addr"

say "the examples of the browser module's docs compile for wasm32"
# rustdoc cannot build them for wasm32 (the crate's dev-dependencies are native), so they are
# extracted into a test of the contract workspace and compiled there.
python3 "$root/scripts/browser-doc-examples.py" "$root/src" >"$contract/client/tests/doc_examples.rs"
rustfmt --edition 2024 "$contract/client/tests/doc_examples.rs"
(cd "$contract" && cargo build -p contract-client --tests --target wasm32-unknown-unknown)

say "the browser side's contract against ws://$contract_addr"
browser_test "$contract" contract-client CONTRACT_URL="ws://$contract_addr"

say "server logs"
cat "$logs/server.log"
# Each shared-protocol test runs one session, which the server must have seen end cleanly: a
# line "... closed cleanly" per session and nothing else. Keep in step with tests/browser.rs.
expected_sessions=3
clean="$(grep -c 'closed cleanly$' "$logs/server.log" || true)"
if grep -v -e '^listening on ' -e 'closed cleanly$' "$logs/server.log" >&2 || [ "$clean" -ne "$expected_sessions" ]; then
    die "the server saw $clean clean sessions of $expected_sessions, and the lines above"
fi
# contract-server prints only what went wrong on its side.
if grep -v '^listening on ' "$logs/contract-server.log" >&2; then
    die "contract-server reported the errors above"
fi

elapsed=$((SECONDS - start))
say "passed in ${elapsed} s ($((elapsed / 60)) min $((elapsed % 60)) s)"
# CPU time (user, system) of the script, then of all it ran: on a busy machine a fairer
# figure than the wall time.
times
