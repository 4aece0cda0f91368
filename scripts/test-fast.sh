#!/usr/bin/env bash
# The fast tier: formatting, lints of the native crates, and the tests that need neither a
# browser nor a database nor Node: the engine's unit, property, simulation and conformance tests
# (memory store), the SQLite store and its rusqlite binding (tether-sqlite, tether-native:
# conformance on a file, durability, bad input, the Replica facade), the demo dataset and the
# CLI (which starts `tether serve` on SQLite storage). Installs nothing. None of these crates
# reads TETHER_TEST_PG or TETHER_REQUIRE_POSTGRES: they run the same with or without
# PostgreSQL. scripts/test.sh is the whole run (what CI calls); run it before a merge.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ci/setup.sh

log "formatting and lints (native crates)"
cargo fmt --all --check
python3 scripts/ci/check-module-cycles.py
cargo clippy --workspace --exclude tether-wasm --all-targets --all-features --locked -- -D warnings

log "engine: unit, property, simulation and conformance tests (memory store)"
cargo test -p tether-engine --all-features --locked

log "tether-sqlite and tether-native tests (the SQLite store and its rusqlite binding)"
cargo test -p tether-sqlite -p tether-native --locked

log "tether-dataset and tether-cli tests"
cargo test -p tether-dataset -p tether-cli --locked

log "fast tier passed in ${SECONDS} s (the full run: scripts/test.sh)"
