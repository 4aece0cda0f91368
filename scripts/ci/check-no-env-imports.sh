#!/usr/bin/env bash
# Links a tiny cdylib over tether-engine and fails if the wasm module imports anything from
# `env` (which would mean the engine reaches for a host function: I/O, a clock, randomness).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$ROOT/target/env-check"
mkdir -p "$dir/src"
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "env-check"
version = "0.0.0"
edition = "2021"
publish = false
[lib]
crate-type = ["cdylib"]
path = "src/lib.rs"
[dependencies]
tether-engine = { path = "$ROOT/crates/engine" }
futures-executor = "0.3"
serde_json = "1"
[workspace]
TOML
cat > "$dir/src/lib.rs" <<'RS'
//! Exercises the engine end to end so the linker keeps its code.
#[no_mangle]
pub extern "C" fn run(n: u32) -> u64 {
    use tether_engine::*;
    futures_executor::block_on(async move {
        let scope = ScopeId::new("s").unwrap();
        let cloud = cloud::Cloud::new();
        for i in 0..n {
            cloud.put(&scope, "c", &i.to_string(), serde_json::json!({ "i": i }), 0);
        }
        let store = MemoryStore::new();
        let clock = || 0;
        let r = Syncer::new(&store, &cloud, &clock).sync(&scope, SyncOptions::default()).await;
        r.map(|r| r.snapshot.count).unwrap_or(0)
    })
}

/// The protocol's decoding and retry policy (Retry-After dates included) must not reach for a
/// clock either.
#[no_mangle]
pub extern "C" fn retry(code: u16, now_ms: i64) -> u64 {
    use tether_engine::protocol::*;
    let scope = tether_engine::ScopeId::new("s").unwrap();
    let mut pull = pull(&scope, None, 10);
    let answer = Answer::new(code, b"{}".to_vec()).retry_after("Sun, 06 Nov 1994 08:49:37 GMT");
    match pull.handle(&RetryPolicy::default(), Ok(answer), now_ms, 0.5) {
        Step::Wait(ms) => ms,
        Step::Done(r) => r.is_ok() as u64,
    }
}
RS
cp "$ROOT/Cargo.lock" "$dir/Cargo.lock" 2>/dev/null || true
CARGO_TARGET_DIR="$ROOT/target" cargo build --quiet --manifest-path "$dir/Cargo.toml" \
  --target wasm32-unknown-unknown --release
wasm="$ROOT/target/wasm32-unknown-unknown/release/env_check.wasm"
python3 - "$wasm" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\0asm", "not a wasm module"
def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7f) << s; s += 7
        if x < 0x80: return r, i
i, imports = 8, []
while i < len(data):
    sid = data[i]; i += 1
    size, i = leb(data, i); end = i + size
    if sid == 2:
        n, j = leb(data, i)
        for _ in range(n):
            l, j = leb(data, j); mod = data[j:j+l].decode(); j += l
            l, j = leb(data, j); name = data[j:j+l].decode(); j += l
            kind = data[j]; j += 1
            if kind == 0: _, j = leb(data, j)
            elif kind == 1: j += 1; flags = data[j]; j += 1; _, j = leb(data, j); j = leb(data, j)[1] if flags & 1 else j
            elif kind == 2: flags = data[j]; j += 1; _, j = leb(data, j); j = leb(data, j)[1] if flags & 1 else j
            elif kind == 3: j += 2
            imports.append((mod, name))
    i = end
env = [f"{m}.{n}" for m, n in imports if m == "env"]
print(f"wasm module: {len(data)} bytes, {len(imports)} imports, env imports: {env or 'none'}")
sys.exit(1 if env else 0)
PY
