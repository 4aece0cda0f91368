// Compiles against the types of the channel entries (tsc --noEmit), DOM lib: a page connected to
// a replica in a Worker or SharedWorker, a worker that serves it, a VS Code webview.
import { Replica, type QueryResult, type TetherError } from 'tether-sync';
import { connectReplica, isTetherError, serveReplica, type ConnectedReplica, type ConnectedScope } from 'tether-sync/channel';
import { serveFromWorker } from 'tether-sync/worker';
import { connectVsCodeWebview } from 'tether-sync/webview';
import { useLiveQuery, useRecord, useSync, useSyncStatus } from 'tether-sync/react';

interface Column {
  object_id: string;
  position: number;
}

export async function page(worker: Worker, shared: SharedWorker): Promise<number> {
  const replica: ConnectedReplica = await connectReplica(worker, { timeoutMs: 5000 });
  const other = await connectReplica(shared.port);
  const scope: ConnectedScope = replica.scope('org-1');
  const stop = scope.watch<Column>('columns', { index: ['object_id', 'position'], eq: 'obj_1' }, (page) => {
    const first: number | undefined = page.records[0]?.data.position;
    void first;
  }, { onError: (e: TetherError) => console.error(e.code, e.detail) });
  const live = scope.live<Column>('columns', { index: 'object_id', eq: 'obj_1' });
  const value: QueryResult<Column> | undefined = live.getSnapshot();
  void value;
  const abort = new AbortController();
  try {
    await scope.sync({ onProgress: (p) => console.log(p.percent), signal: abort.signal });
    await scope.sync({ remote: { url: 'https://sync.example.com', token: 'secret' } });
    await scope.query('columns', { index: 'object_id', eq: 'obj_1' }, { signal: abort.signal });
    await scope.setSubscriptions([{ collection: 'files', where: { repository: ['repo_1'] } }]);
    if (!(await scope.isReady(0))) await scope.whenReady(0, { signal: abort.signal });
    console.log((await scope.subscriptions()).map((h) => h.complete));
  } catch (e) {
    if (isTetherError(e) && e.code === 'InvalidInput' && e.detail === 'ReadOnly') return -1;
    if (isTetherError(e) && e.code === 'Storage' && e.detail === 'Closed') return -2;
  }
  const off = replica.subscribe((e) => console.log(e.scope, e.changes.length));
  off();
  stop();
  await other.close();
  return (await scope.count('columns')) + (await replica.scopes()).length;
}

export function worker(): void {
  const server = serveFromWorker(Replica.open('catalog', { indexes: { columns: ['object_id'] } }), {
    remote: { url: 'https://sync.example.com', token: async () => 'token' },
    scopes: ['org-1'],
  });
  console.log(server.connections, server.active);
}

export async function channel(replica: Replica): Promise<void> {
  const { port1, port2 } = new MessageChannel();
  const served = serveReplica(port1, replica, { readOnly: true, remote: (scope) => ({ url: `https://sync.example.com/${scope}` }) });
  const connected = await connectReplica(port2);
  await connected.close();
  served.dispose();
}

export async function webview(): Promise<string> {
  const replica = await connectVsCodeWebview();
  return replica.name;
}

// The React hooks take a connected scope as they take a Scope (called outside a component
// here: only the types are checked).
export function hooks(scope: ConnectedScope): number {
  const { records } = useLiveQuery<Column>(scope, 'columns', { index: 'object_id', eq: 'obj_1' });
  const { record } = useRecord<Column>(scope, 'columns', 'c1');
  const { status } = useSyncStatus(scope);
  const { sync } = useSync(scope);
  void sync;
  const off = scope.onSyncEnd(() => {});
  off();
  return records.length + (record?.data.position ?? 0) + (status?.pendingEdits ?? 0);
}
