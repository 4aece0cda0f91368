// Entry `tether-sync/vscode` (extension host): serves the host's replica to a webview. It takes
// the panel or webview as a parameter and never imports the `vscode` module.
import { serveReplica } from './channel/serve.js';

/**
 * Serves `replica` to the webview of `target` (a `WebviewPanel`, a `WebviewView`, or a bare
 * `Webview`). One document at a time lives in a webview, and a reloaded one says no goodbye,
 * so a new connection ends the earlier ones. Disposed with the panel or view (`onDidDispose`),
 * or by the returned object's `dispose()`.
 */
export function serveWebview(target, replica, options = {}) {
  const webview = target?.webview ?? target;
  const handle = serveReplica(webview, replica, { ...options, single: true });
  const onDispose = typeof target?.onDidDispose === 'function' ? target.onDidDispose(() => handle.close()) : null;
  return {
    dispose() {
      onDispose?.dispose?.();
      handle.close();
    },
    get connections() {
      return handle.connections;
    },
    get active() {
      return handle.active;
    },
  };
}
