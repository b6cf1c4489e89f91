#!/usr/bin/env bash
# End-to-end test of examples/shared-protocol: one protocol crate (`proto`) served natively over
# ws_stream_tungstenite's WsStream and called from headless Chromium over ws_stream_wasm.
#
#   scripts/wasm-e2e.sh
#
# Installs what is missing (wasm32 target, Chromium + chromedriver, the wasm-bindgen-cli that
# matches examples/shared-protocol/Cargo.lock) and skips what is already there, so a second
# run only rebuilds what changed. Starts the server on a free loopback port, runs the native
# tests of `proto`, then the browser tests, and stops the server on exit.
set -euo pipefail

start=$SECONDS
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ws="$root/examples/shared-protocol"
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export PATH="$CARGO_HOME/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$ws/target}"

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
if [ "$(wasm-bindgen --version 2>/dev/null || true)" = "wasm-bindgen $wb_version" ] &&
    command -v wasm-bindgen-test-runner >/dev/null; then
    echo "already installed: $wb_version"
else
    # No prebuilt binary can be downloaded here; this builds it (a few minutes). `--locked`
    # is left out on purpose: its published lock file does not build here.
    cargo install wasm-bindgen-cli --version "$wb_version" --no-default-features
fi

cd "$ws"

say "build the server"
cargo build -p server

server_log="$(mktemp)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -f "$server_log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "start the server"
# Port 0: the OS picks a free port, the server prints which.
"$target_dir/debug/server" 127.0.0.1:0 >"$server_log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 100); do
    addr="$(sed -n 's/^listening on //p' "$server_log")"
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$server_log" >&2; die "the server exited"; }
    sleep 0.1
done
[ -n "$addr" ] || die "the server did not report its address within 10 s"
echo "listening on $addr"

say "native tests of proto"
cargo test -p proto

say "browser tests against ws://$addr"
# The Chromium flags are in wasm-client/webdriver.json. wasm-bindgen-test-runner looks for
# webdriver.json in its working directory (cargo runs it in the package's directory); the
# variable makes that explicit.
env -u GECKODRIVER -u SAFARIDRIVER \
    WASM_BINDGEN_TEST_WEBDRIVER_JSON="$ws/wasm-client/webdriver.json" \
    WS_E2E_URL="ws://$addr" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    CHROMEDRIVER=/usr/bin/chromedriver \
    WASM_BINDGEN_TEST_TIMEOUT=120 \
    cargo test -p wasm-client --target wasm32-unknown-unknown

say "server log"
cat "$server_log"
# Each browser test runs one session, which the server must have seen end cleanly: a line
# "... closed cleanly" per session and nothing else. Keep in step with tests/browser.rs.
expected_sessions=3
clean="$(grep -c 'closed cleanly$' "$server_log" || true)"
if grep -v -e '^listening on ' -e 'closed cleanly$' "$server_log" >&2 || [ "$clean" -ne "$expected_sessions" ]; then
    die "the server saw $clean clean sessions of $expected_sessions, and the lines above"
fi

elapsed=$((SECONDS - start))
say "passed in ${elapsed} s ($((elapsed / 60)) min $((elapsed % 60)) s)"
# CPU time (user, system) of the script, then of all it ran: on a busy machine a fairer
# figure than the wall time.
times
