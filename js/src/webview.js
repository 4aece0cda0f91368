// Entry `tether-sync/webview` (inside a VS Code webview): the host's replica over
// `acquireVsCodeApi()`. No WebAssembly, no fetch, no eval: it runs under a webview's strict
// Content-Security-Policy.
import { connectReplica } from './channel/connect.js';

/**
 * Connects to the replica the extension host serves to this webview (`serveWebview`).
 * `vscodeApi`: the object `acquireVsCodeApi()` returned, which VS Code hands out once per
 * webview; left out, this calls `acquireVsCodeApi()` itself.
 */
export function connectVsCodeWebview(vscodeApi, options = {}) {
  const api = vscodeApi ?? globalThis.acquireVsCodeApi();
  // The host's messages arrive as the window's message events.
  const port = {
    postMessage: (m) => api.postMessage(m),
    addEventListener: (type, fn) => globalThis.addEventListener(type, fn),
    removeEventListener: (type, fn) => globalThis.removeEventListener(type, fn),
  };
  return connectReplica(port, options);
}

export { isTetherError } from './channel/wire.js';
