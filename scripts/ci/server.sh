#!/usr/bin/env bash
# The reference server's tests, against SQLite and PostgreSQL storage (PostgreSQL is started on
# loopback if it is not running). CI sets CI=1, which makes a missing database a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/ci/setup.sh
ensure_postgres
cargo test -p tether-server --locked
