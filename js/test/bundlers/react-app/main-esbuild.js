// esbuild's documented recipe (docs/browser.md, "Bundlers"): the file loader copies the wasm.
import wasmUrl from 'tether-sync/tether_wasm_bg.wasm';
import { init, Replica } from 'tether-sync';
import { install } from './app.js';

await init(new URL(wasmUrl, import.meta.url));
install({ Replica });
