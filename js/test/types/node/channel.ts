// The host side of the channel in an extension's tsconfig (no DOM lib): a replica file served to
// a webview panel and to a worker_threads MessagePort.
import { MessageChannel } from 'node:worker_threads';
import { Replica } from 'tether-sync/node';
import { connectReplica, serveReplica } from 'tether-sync/channel';
import { serveWebview } from 'tether-sync/vscode';

/** What VS Code's WebviewPanel declares, as far as serveWebview uses it. */
interface Disposable {
  dispose(): any;
}
interface WebviewPanel {
  readonly webview: {
    postMessage(message: any): Thenable<boolean>;
    onDidReceiveMessage(listener: (e: any) => any, thisArgs?: any, disposables?: Disposable[]): Disposable;
  };
  onDidDispose(listener: () => any, thisArgs?: any, disposables?: Disposable[]): Disposable;
}
interface Thenable<T> extends PromiseLike<T> {}

export async function host(panel: WebviewPanel, subscriptions: Disposable[]): Promise<number> {
  const replica = await Replica.open('/tmp/replica.db');
  subscriptions.push(serveWebview(panel, replica, { readOnly: true, remote: { url: 'https://sync.example.com', token: () => 'token' } }));
  const { port1, port2 } = new MessageChannel();
  const served = serveReplica(port1, replica, { scopes: ['org-1'] });
  const connected = await connectReplica(port2);
  const n = await connected.scope('org-1').count();
  await connected.close();
  served.close();
  return n + served.active;
}
