#!/usr/bin/env bash
# The example VS Code extension (examples/vscode): type-checked with tsc against @types/vscode,
# bundled with esbuild (CommonJS, `vscode` external, the wasm beside the bundle), packaged as a
# .vsix with @vscode/vsce, and run in a real extension host: code-server 4.139.1 (VS Code
# 1.139.1) on the pinned Node 24, installed once into a cache directory outside the repo
# (ensure_code_server, about 5 minutes the first time), driven from headless Chromium against
# `tether serve` (examples/vscode/test/host.test.mjs). tether-sync comes from `npm pack` of js/,
# unpacked over the example's node_modules, never from a registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/ci/setup.sh

VSCE_VERSION=3.7.1
EXAMPLE=examples/vscode

ensure_wasm_target
ensure_chromium
ensure_wasm_bindgen
ensure_code_server
# js/build.sh runs wasm-opt from js/node_modules (the binaryen devDependency).
ensure_node_deps_cached js
ensure_node_deps_cached "$EXAMPLE"

log "vscode: npm package (a no-op when browser.sh just built it), packed into the example"
js/build.sh
cargo build -p tether-cli --bin tether --locked
export TETHER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tether"
pack="$(mktemp -d)"
trap 'rm -rf "$pack"' EXIT
(cd js && npm pack --silent --pack-destination "$pack" >/dev/null)
(cd "$EXAMPLE" && npm install --no-save --no-audit --no-fund "$pack"/tether-sync-*.tgz)

log "vscode: tsc --noEmit, esbuild bundle, .vsix"
(cd "$EXAMPLE" && npm run --silent check && rm -rf dist && npm run --silent build)
(cd "$EXAMPLE" && /usr/bin/env npx --yes "@vscode/vsce@$VSCE_VERSION" package --allow-missing-repository \
  --skip-license --no-dependencies --out "$pack/tether-catalog.vsix")
export VSIX="$pack/tether-catalog.vsix"

log "vscode: bundle test (Node 24) and the extension in code-server (headless Chromium)"
(cd "$EXAMPLE" && "$TETHER_NODE24" --test --test-reporter=tap --test-concurrency=1 test/bundle.test.mjs)
(cd "$EXAMPLE" && node --test --test-reporter=tap --test-concurrency=1 test/host.test.mjs)
(cd "$EXAMPLE" && node --test --test-reporter=tap --test-concurrency=1 test/panel.test.mjs)
# The catalog at scale: 5,000 objects here (about 40 s); TETHER_CATALOG_OBJECTS=100000, the seeds'
# size (about 4 minutes), gives the figures of examples/vscode/README.md.
(cd "$EXAMPLE" && node --test --test-reporter=tap --test-concurrency=1 test/scale.test.mjs)
