#!/usr/bin/env bash
# The browser part of the test suite: IdbStore (engine conformance suite and IndexedDB tests)
# in headless Chromium and the node:sqlite store (the same suite) in Node 24 through
# wasm-bindgen-test, then the npm package built, packed, installed and driven by playwright-core
# in Node: Node entry, packed package in Chromium, end to end against `tether serve` and the
# native CLI, and the example app (screenshot in target/browser-example.png); then the Node
# entry's file replica (node:sqlite) under the pinned Node 24, against `tether serve` and the
# native CLI. A partial replica against `tether serve --filter-index` runs in both:
# js/test/partial.test.mjs (Chromium) and js/test/node24/partial.test.mjs (Node 24). The
# benchmarks are separate: `cd js && npm run bench`, and
# `"$TETHER_NODE24" js/bench/node-sqlite-bench.mjs`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/ci/setup.sh

ensure_wasm_target
ensure_chromium
ensure_wasm_bindgen
ensure_node_deps js
# Fails here, loudly, if the pinned Node 24 cannot be installed: its tests are not optional.
ensure_node24

log "browser: clippy on wasm32 (the browser build, and the Node build with node-sqlite)"
cargo clippy -p tether-wasm --target wasm32-unknown-unknown --all-targets --locked -- -D warnings
cargo clippy -p tether-wasm --target wasm32-unknown-unknown --all-targets --features node-sqlite --locked -- -D warnings

log "browser: IdbStore conformance and IndexedDB tests in headless Chromium, node:sqlite store in Node 24"
# wasm-bindgen-test-runner runs the Node test files with the `node` on PATH: Node 24 here.
# node-sqlite: the node:sqlite store (crates/wasm/tests/node_sqlite.rs needs it).
PATH="$(dirname "$TETHER_NODE24"):$PATH" cargo test -p tether-wasm --target wasm32-unknown-unknown --features node-sqlite --locked

log "browser: npm package (wasm-release profile, wasm-bindgen --target web)"
js/build.sh

log "browser: the tether CLI, tether-cli (server and native replica for the end-to-end tests)"
cargo build -p tether-cli --bin tether --locked
export TETHER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tether"

log "browser: hand-written TypeScript types, the docs' js snippets against them, and an extension's tsconfig (no DOM lib)"
(cd js && node test/types/readme.mjs && npx --no-install tsc -p test/types \
  && npx --no-install tsc -p test/types/node && npx --no-install tsc -p test/types/node/tsconfig.node16.json)

log "browser: Node (system Node $(node --version): no node:sqlite) and Chromium tests of the packed package"
(cd js && TETHER_EXPECT_NODE_SQLITE=0 npm test)

log "browser: the Node entry's SQLite file replica under Node $("$TETHER_NODE24" --version)"
(cd js && TETHER_EXPECT_NODE_SQLITE=1 "$TETHER_NODE24" --test --test-reporter=tap --test-concurrency=1 \
  test/node.test.mjs 'test/node24/*.test.mjs')
