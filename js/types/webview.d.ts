// Types of `tether-sync/webview` (inside a VS Code webview): no WebAssembly, no fetch, no eval.
import type { ConnectedReplica, ConnectOptions } from './channel.js';

export type { ConnectedReplica, ConnectedScope, ConnectOptions } from './channel.js';
export { isTetherError } from './channel.js';

/** What `connectVsCodeWebview` uses of the object `acquireVsCodeApi()` returns. */
export interface VsCodeApiLike {
  postMessage(message: any): void;
}

/**
 * Connects to the replica the extension host serves to this webview (`serveWebview` from
 * `tether-sync/vscode`). `vscodeApi` is the object `acquireVsCodeApi()` returned (VS Code hands
 * it out once per webview); left out, this calls `acquireVsCodeApi()`.
 *
 * ```ts
 * import { connectVsCodeWebview } from 'tether-sync/webview';
 * const replica = await connectVsCodeWebview();
 * replica.scope('org-1').watch('columns', { index: 'object_id', eq: objectId }, (page) => render(page.records));
 * ```
 */
export declare function connectVsCodeWebview(vscodeApi?: VsCodeApiLike, options?: ConnectOptions): Promise<ConnectedReplica>;
