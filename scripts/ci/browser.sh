#!/usr/bin/env bash
# The browser part of the test suite: IdbStore (engine conformance suite and IndexedDB tests)
# in headless Chromium through wasm-bindgen-test, then the npm package built, packed, installed
# and driven by playwright-core in Node: Node entry, packed package in Chromium, end to end
# against `tether serve` and the native CLI, and the example app (screenshot in
# target/browser-example.png). The benchmark is separate: `cd js && npm run bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/ci/setup.sh

ensure_wasm_target
ensure_chromium
ensure_wasm_bindgen
ensure_node_deps js

log "browser: clippy on wasm32"
cargo clippy -p tether-wasm --target wasm32-unknown-unknown --all-targets --locked -- -D warnings

log "browser: IdbStore conformance and IndexedDB tests in headless Chromium"
cargo test -p tether-wasm --target wasm32-unknown-unknown --locked

log "browser: npm package (wasm-release profile, wasm-bindgen --target web)"
js/build.sh

log "browser: the tether CLI, tether-cli (server and native replica for the end-to-end tests)"
cargo build -p tether-cli --bin tether --locked
export TETHER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tether"

log "browser: hand-written TypeScript types, the docs' js snippets against them, and an extension's tsconfig (no DOM lib)"
(cd js && node test/types/readme.mjs && npx --no-install tsc -p test/types \
  && npx --no-install tsc -p test/types/node && npx --no-install tsc -p test/types/node/tsconfig.node16.json)

log "browser: Node and Chromium tests of the packed package"
(cd js && npm test)
