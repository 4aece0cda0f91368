#!/usr/bin/env bash
# The reference server's own tests (raw HTTP, no tether-native), against SQLite and PostgreSQL
# storage (PostgreSQL is started on loopback if it is not running; ensure_postgres sets
# TETHER_REQUIRE_POSTGRES=1, so a missing database is a failure, as with CI=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/ci/setup.sh
ensure_postgres
cargo test -p tether-server --locked
