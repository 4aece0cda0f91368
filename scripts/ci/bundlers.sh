#!/usr/bin/env bash
# The packed npm package in every build, unmodified (js/test/bundlers): a tiny app built with
# Vite 6, Vite 8, webpack 5 (production, development) and esbuild, and served by Vite 6's and
# Vite 8's dev servers, run in headless Chromium against `tether serve`; and Node 20 `import`,
# `require` and an esbuild CommonJS bundle. Then `tether-sync/react` in a React page (React 19
# built by esbuild, Vite 8 and webpack; React 18 by esbuild) rendered in Chromium against
# `tether serve`: syncs, another tab's edits, render counts, unmount; and rendered on the server.
# The bundlers and React (pinned in js/test/bundlers/package-lock.json, React 18 in
# js/test/bundlers/react18) are installed once and kept in those folders' node_modules while
# the lockfiles are unchanged.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/ci/setup.sh

ensure_wasm_target
ensure_chromium
ensure_wasm_bindgen
ensure_node_deps_cached js
ensure_node_deps_cached js/test/bundlers
ensure_node_deps_cached js/test/bundlers/react18

log "bundlers: npm package (a no-op when browser.sh just built it)"
js/build.sh
cargo build -p tether-cli --bin tether --locked
export TETHER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tether"

log "bundlers: Vite 6, Vite 8, webpack 5, esbuild in Chromium; Node import, require, CJS bundle; React hooks"
(cd js && node --test --test-concurrency=1 test/bundlers/)
