#!/usr/bin/env bash
# The cross-crate scenarios of the workspace's tests/ package (tether-tests): tether-native's
# Replica against tether-server on loopback, on SQLite and on PostgreSQL storage (PostgreSQL is
# started on loopback if it is not running; a missing database is then a failure), and smoke
# runs of the HTTP sync, live delay and declared sources benchmarks. The declared-sources
# scenario also syncs a replica with the npm package under Node 24.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/ci/setup.sh
ensure_postgres
# The declared-sources scenario (tests/sources.rs) syncs a Node replica too: Node 24 and the
# npm package (js/build.sh, which browser.sh runs first) are required here.
ensure_node24
export TETHER_REQUIRE_NODE24=1
if [ ! -f js/pkg/tether_wasm_node_bg.wasm ]; then
  log "tether-tests: building the npm package for the Node replica (js/build.sh)"
  ensure_wasm_target
  ensure_wasm_bindgen
  ensure_node_deps js
  js/build.sh
fi

log "tether-tests: native replica <-> server over HTTP"
cargo test -p tether-tests --locked

# A smoke run only proves the benchmark works; the dev profile spares a release build.
log "HTTP sync benchmark (smoke size, unoptimized)"
TETHER_BENCH_RECORDS="${TETHER_BENCH_RECORDS:-5000}" \
  cargo bench -p tether-tests --locked --bench http_sync --profile dev

log "live sync delay benchmark (smoke size, unoptimized)"
TETHER_BENCH_WRITES="${TETHER_BENCH_WRITES:-20}" \
  cargo bench -p tether-tests --locked --bench live_delay --profile dev

log "declared sources benchmark (smoke size, unoptimized)"
TETHER_BENCH_SOURCE_ROWS="${TETHER_BENCH_SOURCE_ROWS:-20000}" \
  TETHER_BENCH_SOURCE_BASE="${TETHER_BENCH_SOURCE_BASE:-2000}" \
  TETHER_BENCH_SOURCE_SECONDS="${TETHER_BENCH_SOURCE_SECONDS:-0.5}" \
  TETHER_BENCH_SOURCE_ROUNDS="${TETHER_BENCH_SOURCE_ROUNDS:-1}" \
  TETHER_BENCH_SOURCE_WRITES="${TETHER_BENCH_SOURCE_WRITES:-20}" \
  TETHER_BENCH_SOURCE_LOAD_SECONDS="${TETHER_BENCH_SOURCE_LOAD_SECONDS:-1}" \
  cargo bench -p tether-tests --locked --bench declared_sources --profile dev
