#!/usr/bin/env bash
# Builds the npm package's wasm: tether-wasm in the size-tuned `wasm-release` profile, then the
# pinned wasm-bindgen CLI (`--target web`) writes the module and its JS glue into js/pkg.
# Prints the gzipped size of the wasm.
set -euo pipefail
JS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$JS/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cd "$ROOT"
cargo build -p tether-wasm --target wasm32-unknown-unknown --profile wasm-release
rm -rf "$JS/pkg"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$JS/pkg" --out-name tether_wasm \
  "$TARGET_DIR/wasm32-unknown-unknown/wasm-release/tether_wasm.wasm"
raw=$(wc -c < "$JS/pkg/tether_wasm_bg.wasm")
gz=$(gzip -9 -c "$JS/pkg/tether_wasm_bg.wasm" | wc -c)
echo "wasm: $raw bytes, $gz bytes gzipped"

# The example app (examples/browser) imports the package from ./vendor so that
# `tether serve --demo-dir examples/browser` serves it as is.
VENDOR="$ROOT/examples/browser/vendor/tether-sync"
rm -rf "$VENDOR"
mkdir -p "$VENDOR/pkg"
cp -r "$JS/src" "$JS/package.json" "$VENDOR/"
cp "$JS/pkg/tether_wasm.js" "$JS/pkg/tether_wasm_bg.wasm" "$VENDOR/pkg/"
