// Entry for pages that load the wasm themselves (strict Content-Security-Policy, VS Code
// webviews): call `init(moduleOrBytes)` with a WebAssembly.Module, bytes or a Response first.
// Nothing here fetches by URL. Like index.js, it drives the browser build of the wasm (it must
// not be dropped as side-effect free: package.json `sideEffects` lists it).
import * as glue from '../pkg/tether_wasm.js';
import { setGlue } from './core.js';

setGlue(glue);

export { init, Replica, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
