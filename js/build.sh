#!/usr/bin/env bash
# Builds the npm package's wasm, for browsers and for Node: tether-wasm in the size-tuned
# `wasm-release` profile (`wasm-release-node`, with the node:sqlite store, for Node), then the
# pinned wasm-bindgen CLI (`--target web`) writes the module and its JS glue into js/pkg, and
# binaryen's wasm-opt (the npm package `binaryen`, a pinned devDependency: run `npm ci` in js/
# first) shrinks the modules. Prints the size of each wasm, raw and gzipped.
set -euo pipefail
JS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$JS/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WASM_OPT="$JS/node_modules/binaryen/bin/wasm-opt"
if [ ! -f "$WASM_OPT" ]; then
  echo "build.sh: $WASM_OPT is missing: run \`npm ci\` in js/ first" >&2
  exit 1
fi
cd "$ROOT"

# -Oz, but without binaryen's inlining: inlining makes the module smaller raw and larger gzipped
# (it scatters code that gzip finds repeated: 388 KB gzipped with it, 352 KB without, 357 KB
# before wasm-opt, measured on the build of the time). merge-similar-functions is skipped for the
# same reason (0.5 KB gzipped), and so are local-cse and ssa-nomerge (1.5 KB gzipped together);
# --converge repeats the passes until the module stops shrinking (0.4 KB gzipped, twice the time
# of one round). The features are those rustc enables by default for wasm32-unknown-unknown (also
# in the module's target_features section, stripped here).
# The Node module is optimized for speed instead (-O3, as its cargo profile): no page downloads it.
# Both then have their functions ordered by name, and only then their names stripped (wasm-bindgen
# keeps them for this): the monomorphizations of one generic function (a serde_json deserializer
# per struct, a BTreeMap's code per key and value types) end up side by side, where gzip's 32 KB
# window finds them alike (8.5 KB gzipped less in the browser's; the code is the same, only in
# another order).
wasm_opt() {
  local level=(-Oz --skip-pass=inlining-optimizing --skip-pass=merge-similar-functions
    --skip-pass=local-cse --skip-pass=ssa-nomerge --converge)
  [ "$2" = speed ] && level=(-O3)
  node "$WASM_OPT" "$1" -o "$1" "${level[@]}" --reorder-functions-by-name --strip-debug \
    --strip-target-features \
    --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    --enable-call-indirect-overlong
}
# Two builds: the browser one (index.js, preloaded.js), and the Node one (node.js) with the
# node:sqlite store (the `node-sqlite` feature), which the browser build leaves out.
# build PROFILE OUT_NAME [CARGO_ARGS...]: js/pkg/OUT_NAME.js and js/pkg/OUT_NAME_bg.wasm.
build() {
  local profile="$1" name="$2"
  shift 2
  cargo build -p tether-wasm --target wasm32-unknown-unknown --profile "$profile" "$@"
  wasm-bindgen --target web --no-typescript --remove-producers-section \
    --out-dir "$JS/pkg" --out-name "$name" "$TARGET_DIR/wasm32-unknown-unknown/$profile/tether_wasm.wasm"
  wasm_opt "$JS/pkg/${name}_bg.wasm" "$([ "$name" = tether_wasm_node ] && echo speed)"
  local raw gz
  raw=$(wc -c < "$JS/pkg/${name}_bg.wasm")
  gz=$(gzip -9 -c "$JS/pkg/${name}_bg.wasm" | wc -c)
  echo "wasm ($name): $raw bytes, $gz bytes gzipped"
  # The browser wasm must stay under its budget (docs/browser.md): fail the build past it.
  if [ "$name" = tether_wasm ] && [ "$gz" -ge "$BROWSER_GZ_LIMIT" ]; then
    echo "build.sh: the browser wasm is $gz bytes gzipped (gzip -9), over its budget:" \
      "it must be under $BROWSER_GZ_LIMIT bytes" >&2
    exit 1
  fi
}
# The browser wasm's budget, gzipped (gzip -9): build.sh fails at this size or above.
BROWSER_GZ_LIMIT=330000
rm -rf "$JS/pkg"
build wasm-release tether_wasm
build wasm-release-node tether_wasm_node --features node-sqlite

# The example app (examples/browser) imports the package from ./vendor so that
# `tether serve --demo-dir examples/browser` serves it as is.
VENDOR="$ROOT/examples/browser/vendor/tether-sync"
rm -rf "$VENDOR"
mkdir -p "$VENDOR/pkg"
cp -r "$JS/src" "$JS/package.json" "$VENDOR/"
cp "$JS/pkg/tether_wasm.js" "$JS/pkg/tether_wasm_bg.wasm" "$VENDOR/pkg/"
