#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (wasm target, Chromium,
# the pinned wasm-bindgen CLI, PostgreSQL, npm packages); safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ci/setup.sh

# The run's temporary files in a directory of its own, removed at the end: chromedriver leaves
# each Chromium profile (about 65 MB) behind, and a run starts dozens of browsers.
TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/tether-test.XXXXXX")"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# Keep a copy of everything printed, to count the tests at the end.
LOG="$(mktemp)"
exec > >(tee "$LOG") 2>&1

log "formatting and lints"
cargo fmt --all --check
python3 scripts/ci/check-module-cycles.py
cargo clippy --workspace --exclude tether-wasm --all-targets --all-features --locked -- -D warnings
# The browser crate is linted on its own target: its IndexedDB types are not Send elsewhere.
ensure_wasm_target
cargo clippy -p tether-wasm --target wasm32-unknown-unknown --all-targets --locked -- -D warnings

log "engine: unit, property and conformance tests (memory store)"
cargo test -p tether-engine --all-features --locked

log "engine: builds for wasm32 with no env imports"
ensure_wasm_target
cargo build -p tether-engine --target wasm32-unknown-unknown --release --locked
scripts/ci/check-no-env-imports.sh target/wasm32-unknown-unknown/release/deps

# tests after browser: its declared-sources scenario syncs a Node replica with the npm
# package browser.sh builds.
for part in native server browser tests bundlers vscode; do
  if [ -x "scripts/ci/$part.sh" ]; then
    log "$part"
    "scripts/ci/$part.sh"
  fi
done
log "all tests passed in ${SECONDS} s"
# Every runner above stops the script on a failure, so reaching here means none failed.
cargo_passed=$(grep -oE "test result: ok\. [0-9]+ passed" "$LOG" | awk '{s += $4} END {print s + 0}')
node_passed=$(grep -E "^# pass [0-9]+" "$LOG" | awk '{s += $3} END {print s + 0}')
echo "tests: $((cargo_passed + node_passed)) passed, 0 failed"
