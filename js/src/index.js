// Default entry (browsers, bundlers): loads the wasm next to this package on first use.
//
// The wasm's location is written as the literal `new URL('../pkg/…', import.meta.url)` because
// that is the pattern Vite, webpack 5, Rollup and Parcel recognise: they copy the file into the
// build and rewrite the URL. esbuild leaves it untouched; see docs/browser.md, "Bundlers".
// This module must not be dropped as side-effect free (package.json `sideEffects` lists it):
// registering the location is its whole job.
import * as glue from '../pkg/tether_wasm.js';
import { setGlue, setDefaultSource, fetchWasm } from './core.js';

setGlue(glue);
setDefaultSource(() => fetchWasm(new URL('../pkg/tether_wasm_bg.wasm', import.meta.url)));

export { init, Replica, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
