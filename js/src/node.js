// Node entry (VS Code extension hosts, scripts): Node has no IndexedDB, so use
// `Replica.openInMemory({snapshot})` and persist `exportSnapshot()` wherever the host likes.
//
// The wasm is read from disk: beside this file as published (`../pkg/`), or, when this module
// was bundled into CommonJS (esbuild `--platform=node --format=cjs`, where `import.meta` is
// empty), next to the bundle, then through the `tether-sync` package a `require` from the
// bundle's folder finds. docs/browser.md, "Bundlers", says where the file goes.
import { setDefaultSource, tetherError } from './core.js';

const WASM = 'tether_wasm_bg.wasm';

setDefaultSource(async () => {
  const { readFile } = await import('node:fs/promises');
  const tried = [];
  for (const place of await wasmPlaces()) {
    tried.push(String(place));
    try {
      return await readFile(place);
    } catch (e) {
      if (e?.code !== 'ENOENT') throw tetherError('Storage', `could not read the Tether wasm at ${place}: ${e.message}`);
    }
  }
  throw tetherError(
    'InvalidInput',
    `the Tether wasm was not found (looked at: ${tried.join(', ') || 'nowhere: no import.meta.url and no __dirname'}). ` +
      `In a bundle, copy node_modules/tether-sync/pkg/${WASM} next to it, or call init(bytes) first`,
    'WasmNotFound',
  );
});

async function wasmPlaces() {
  const places = [];
  const here = import.meta.url;
  if (typeof here === 'string' && here) places.push(new URL(`../pkg/${WASM}`, here));
  const dir = typeof __dirname === 'string' ? __dirname : null;
  if (dir) {
    const path = await import('node:path');
    places.push(path.join(dir, WASM));
    const { createRequire } = await import('node:module');
    try {
      places.push(createRequire(path.join(dir, 'index.js')).resolve(`tether-sync/${WASM}`));
    } catch {
      // no tether-sync package reachable from the bundle's folder
    }
  }
  return places;
}

export { init, Replica, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
