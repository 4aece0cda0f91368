// "Tether: Show Object": a webview panel with an object's columns and its lineage (the
// dependencies into and out of it), read from the extension host's replica through the channel
// (`tether-sync/vscode` here, `tether-sync/webview` in webview/object.ts). The webview loads no
// WebAssembly and fetches nothing: its queries run on the host, which pushes each new result of
// its watched queries, so a sync that changes the object shows in the open panel.
import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import type { ChangeEvent, Replica, Scope } from 'tether-sync';
import type { ServableReplica } from 'tether-sync/channel';
import { serveWebview } from 'tether-sync/vscode';
import { report } from './report';

/** The open panels, by scope and object id: showing an open object again reveals its panel. */
const panels = new Map<string, vscode.WebviewPanel>();

/**
 * The host's replica as the channel sees it, with the number of watched queries and
 * subscriptions the channel holds on it: what a closed panel must bring back down.
 */
export class WatchedReplica {
  private count = 0;
  readonly servable: ServableReplica;

  constructor(replica: Replica) {
    const track = (stop: () => void): (() => void) => {
      this.count += 1;
      let stopped = false;
      return () => {
        if (stopped) return;
        stopped = true;
        this.count -= 1;
        stop();
      };
    };
    const scopes = new Map<string, Scope>();
    this.servable = {
      name: replica.name,
      kind: replica.kind,
      scopes: () => replica.scopes(),
      subscribe: (listener: (e: ChangeEvent) => void) => track(replica.subscribe(listener)),
      scope: (id: string) => {
        let scope = scopes.get(id);
        if (!scope) {
          const inner = replica.scope(id);
          // Scope's methods use private fields: each call goes to the real scope.
          scope = new Proxy(inner, {
            get(target, prop) {
              if (prop === 'watch') return (...args: Parameters<Scope['watch']>) => track(target.watch(...args));
              if (prop === 'subscribe') return (listener: (e: ChangeEvent) => void) => track(target.subscribe(listener));
              const value: unknown = Reflect.get(target, prop, target);
              return typeof value === 'function' ? value.bind(target) : value;
            },
          });
          scopes.set(id, scope);
        }
        return scope;
      },
    };
  }

  /** Watched queries and subscriptions open on the replica through the channel. */
  get watchers(): number {
    return this.count;
  }
}

/** Opens (or reveals) the panel of object `objectId` of `scope`. */
export function showObject(
  context: vscode.ExtensionContext,
  replica: WatchedReplica,
  scope: Scope,
  objectId: string,
  title: string,
): vscode.WebviewPanel {
  const key = `${scope.id}/${objectId}`;
  const open = panels.get(key);
  if (open) {
    open.reveal();
    return open;
  }
  const opened = performance.now();
  const watchersBefore = replica.watchers;
  const root = vscode.Uri.joinPath(context.extensionUri, 'dist');
  const panel = vscode.window.createWebviewPanel('tether.object', title, vscode.ViewColumn.Active, {
    enableScripts: true,
    localResourceRoots: [root],
  });
  panels.set(key, panel);
  // Reads only, and only this organization: the webview gets no more than it shows.
  const served = serveWebview(panel, replica.servable, { readOnly: true, scopes: [scope.id] });
  let first = true;
  const listener = panel.webview.onDidReceiveMessage((m: unknown) => {
    if (!isRendered(m)) return;
    // The first full render is the panel's opening time; later ones are live updates.
    report(first ? 'panel-open' : 'panel-update', {
      object: objectId,
      columns: m.columns,
      upstream: m.upstream,
      downstream: m.downstream,
      names: m.names,
      ms: performance.now() - opened,
      webviewMs: m.sinceLoadMs,
      connectedMs: m.connectedMs,
      watchers: replica.watchers,
      watchersBefore,
    });
    first = false;
  });
  panel.onDidDispose(() => {
    panels.delete(key);
    listener.dispose();
    served.dispose();
    report('panel-closed', { object: objectId, watchers: replica.watchers, watchersBefore });
  });
  panel.webview.html = html(panel.webview, root, scope.id, objectId);
  return panel;
}

/** What the webview posts after each render (besides the channel's own messages). */
interface Rendered {
  type: 'tether-catalog.rendered';
  columns: number;
  upstream: number;
  downstream: number;
  names: string[];
  sinceLoadMs: number;
  connectedMs: number;
}

function isRendered(m: unknown): m is Rendered {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'tether-catalog.rendered';
}

function html(webview: vscode.Webview, root: vscode.Uri, scope: string, objectId: string): string {
  const nonce = randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(root, 'webview.js'));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(root, 'webview.css'));
  // No connect-src: the webview fetches nothing, its data comes over postMessage.
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}' ${webview.cspSource}`,
    `style-src ${webview.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
</head>
<body data-scope="${attr(scope)}" data-object="${attr(objectId)}">
<main id="app"><p class="muted">Loading ${attr(objectId)}…</p></main>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

function attr(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
