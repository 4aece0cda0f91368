// Default entry (browsers, bundlers): loads the wasm next to this package on first use.
import { setDefaultSource } from './core.js';

setDefaultSource(() => new URL('../pkg/tether_wasm_bg.wasm', import.meta.url));

export { init, Replica, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
