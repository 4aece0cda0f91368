#!/usr/bin/env bash
# The cross-crate scenarios of the workspace's tests/ package (tether-tests): tether-native's
# Replica against tether-server on loopback, on SQLite and on PostgreSQL storage (PostgreSQL is
# started on loopback if it is not running; a missing database is then a failure), and smoke
# runs of the HTTP sync and live delay benchmarks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/ci/setup.sh
ensure_postgres

log "tether-tests: native replica <-> server over HTTP"
cargo test -p tether-tests --locked

# A smoke run only proves the benchmark works; the dev profile spares a release build.
log "HTTP sync benchmark (smoke size, unoptimized)"
TETHER_BENCH_RECORDS="${TETHER_BENCH_RECORDS:-5000}" \
  cargo bench -p tether-tests --locked --bench http_sync --profile dev

log "live sync delay benchmark (smoke size, unoptimized)"
TETHER_BENCH_WRITES="${TETHER_BENCH_WRITES:-20}" \
  cargo bench -p tether-tests --locked --bench live_delay --profile dev
