#!/usr/bin/env bash
# The native part: tether-native's tests (SQLite store conformance, durability under SIGKILL,
# bad input, Replica facade), the demo dataset's, the tether CLI's (tether-cli: admin client,
# the binary end to end), the `tether demo` smoke run, and a smoke run of the benchmark.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

log "tether-sqlite and tether-native tests (the SQLite store and its rusqlite binding)"
cargo test -p tether-sqlite -p tether-native --locked

# The CLI's test of the README's "Sync an existing PostgreSQL schema" needs PostgreSQL.
ensure_postgres
log "tether-dataset and tether-cli tests"
cargo test -p tether-dataset -p tether-cli --locked

log "tether demo (20,000 records)"
demo_dir="$(mktemp -d)"
trap 'rm -rf "$demo_dir"' EXIT
out="$(cargo run -q -p tether-cli --locked -- demo --records 20000 --dir "$demo_dir")"
printf '%s\n' "$out"
if ! grep -Eq '^verified: count [0-9]+ digest [0-9a-f]{64}$' <<<"$out"; then
  echo "tether demo did not end with a verified digest" >&2
  exit 1
fi
cargo run -q -p tether-cli --locked -- status --db "$demo_dir/replica.db" --json >/dev/null

# A smoke run only proves the benchmark works; the dev profile spares a release build.
log "sync benchmark (smoke size, unoptimized)"
TETHER_BENCH_RECORDS="${TETHER_BENCH_RECORDS:-20000}" TETHER_BENCH_ROUNDS=1 \
  cargo bench -p tether-native --locked --bench sync --profile dev
