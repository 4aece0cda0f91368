// Node entry (VS Code extension hosts, scripts): Node has no IndexedDB, so use
// `Replica.openInMemory({snapshot})` and persist `exportSnapshot()` wherever the host likes.
import { setDefaultSource } from './core.js';

setDefaultSource(async () => {
  const { readFile } = await import('node:fs/promises');
  return readFile(new URL('../pkg/tether_wasm_bg.wasm', import.meta.url));
});

export { init, Replica, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
