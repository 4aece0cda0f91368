// Types of `tether-sync/vscode` (extension host). The webview is a parameter: this entry does
// not import the `vscode` module, so these types describe only what it uses of one.
import type { ServableReplica, ServeOptions } from './channel.js';

/** What `serveWebview` uses of a VS Code `Webview`. */
export interface WebviewLike {
  postMessage(message: any): unknown;
  onDidReceiveMessage(listener: (message: any) => any): { dispose(): any };
}

/** A `WebviewPanel` or `WebviewView`: a webview that is disposed. */
export interface WebviewHostLike {
  readonly webview: WebviewLike;
  onDidDispose(listener: () => any): { dispose(): any };
}

/** Serving a replica to one webview; a VS Code `Disposable`. */
export interface WebviewServer {
  /** Stops serving: the webview's watches and subscriptions on the host are removed. */
  dispose(): void;
  /** Open connections (0 or 1). */
  readonly connections: number;
  /** Watched queries, subscriptions and calls in flight the webview has on the host. */
  readonly active: number;
}

/**
 * Serves the host's `replica` to the webview of a panel or view (or a bare `Webview`): the
 * webview connects with `connectVsCodeWebview()` from `tether-sync/webview`. Disposed with the
 * panel or view; a new connection (a reloaded webview) ends the earlier one.
 *
 * ```ts
 * import * as vscode from 'vscode';
 * import { Replica } from 'tether-sync/node';
 * import { serveWebview } from 'tether-sync/vscode';
 * const panel = vscode.window.createWebviewPanel('catalog', 'Object', vscode.ViewColumn.One, { enableScripts: true });
 * context.subscriptions.push(serveWebview(panel, replica, { readOnly: true, remote: { url, token } }));
 * ```
 */
export declare function serveWebview(
  target: WebviewHostLike | WebviewLike,
  replica: ServableReplica | Promise<ServableReplica>,
  options?: Omit<ServeOptions, 'single'>,
): WebviewServer;
