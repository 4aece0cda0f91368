// Entry for pages that load the wasm themselves (strict Content-Security-Policy, VS Code
// webviews): call `init(moduleOrBytes)` with a WebAssembly.Module, bytes or a Response first.
// Nothing here fetches by URL.
export { init, Replica, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
