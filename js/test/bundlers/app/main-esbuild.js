// esbuild's documented recipe (docs/browser.md, "Bundlers"): its `file` loader copies the wasm
// into the build and gives its URL, which init() loads before anything else.
import wasmUrl from 'tether-sync/tether_wasm_bg.wasm';
import { init, Replica, isTetherError } from 'tether-sync';
import { install } from './app.js';

await init(new URL(wasmUrl, import.meta.url));
install({ Replica, isTetherError });
