// Compiles against the hand-written types (tsc --noEmit): the public API as a user writes it.
import {
  init,
  isTetherError,
  Replica,
  type ChangeEvent,
  type IndexDeclarations,
  type LiveQuery,
  type Query,
  type QueryResult,
  type TetherError,
  type TetherRecord,
} from 'tether-sync';
import * as preloaded from 'tether-sync/preloaded';

// A record type as users declare it: an interface, no index signature.
interface TableData {
  name: string;
  schema: string;
}

export async function example(module: WebAssembly.Module): Promise<number> {
  await init();
  await preloaded.init(module);
  const replica = await Replica.open('catalog');
  const scope = replica.scope('org-1');
  const controller = new AbortController();
  const report = await scope.sync({
    remote: { url: 'https://sync.example.com', token: async () => 'token' },
    onProgress: (p) => console.log(p.phase, p.percent ?? 0),
    signal: controller.signal,
  });
  const inserted: number = report.run.inserted;
  const rec: TetherRecord<TableData> | null = await scope.get<TableData>('objects', 'obj_1');
  const name: string | undefined = rec?.data.name;
  const page = await scope.list<TableData>('objects', { after: 'obj_1', limit: 50 });
  await scope.put('objects', 'obj_2', { name: 'orders', schema: 'sales' });
  const table: TableData = { name: 'orders', schema: 'sales' };
  await scope.put('objects', 'obj_4', table);
  await scope.put<TableData>('objects', 'obj_5', table);
  // @ts-expect-error: data is an object
  await scope.put('objects', 'obj_6', 'not an object');
  await scope.delete('objects', 'obj_3');
  const status = await scope.status({ maxAgeMs: 60_000 });
  const recommended: boolean = status.syncRecommended;
  const [run] = await scope.history({ limit: 1 });
  const kind: 'initial' | 'incremental' | 'full-resync' = run.kind;
  const stats = await scope.stats({ days: 7 });
  for (const c of await scope.conflicts()) await scope.dismissConflict(c.id);
  const evicted: number = await scope.setSubscriptions([
    { collection: 'repositories' },
    { collection: 'files', where: { repository: ['repo_1'], size: [1, 2] }, priority: 1 },
  ]);
  await scope.addSubscription({ collection: 'objects', priority: 2 });
  const removed: number = await scope.removeSubscription({ collection: 'objects' });
  for (const h of await scope.subscriptions()) {
    const complete: boolean = h.complete;
    console.log(h.collection, h.where, h.priority, complete);
  }
  // @ts-expect-error: filter values are lists
  await scope.setSubscriptions([{ collection: 'files', where: { repository: 'repo_1' } }]);
  const ready: boolean = await scope.isReady(1);
  await scope.whenReady(0, { signal: new AbortController().signal });
  console.log(evicted, removed, ready);
  const bg = scope.startBackgroundSync({
    remote: {
      pull: async ({ checkpoint, limit }) => ({ changes: [], checkpoint: checkpoint ?? '0', has_more: limit < 0 }),
    },
    intervalMs: 60_000,
    onError: (e: TetherError) => {
      if (e.code === 'Network') console.log(e.retryAfterMs);
    },
  });
  await bg.stop();
  await scope.stop();
  const mem = await Replica.openInMemory({ snapshot: replica.exportSnapshot() });
  try {
    await mem.scope('x').sync({ remote: { url: 'http://127.0.0.1:1' } });
  } catch (e) {
    if (isTetherError(e) && e.name === 'IntegrityError') console.log(e.expected?.digest, e.actual?.count);
  }
  console.log(name, page.length, recommended, kind, stats.successRate);
  return inserted + (await scope.count('objects'));
}

interface Column {
  object_id: string;
  position: number;
  name: string;
}

// Indexes, queries, change events, watched and live queries.
export async function queries(): Promise<string[]> {
  const indexes: IndexDeclarations = {
    columns: ['object_id', ['object_id', 'position']],
    objects: ['name', { name: 'by_schema', paths: ['schema', 'name'] }, { name: 'owner', paths: 'owner.team' }],
  };
  const replica = await Replica.open('catalog', { indexes });
  const mem = await Replica.openInMemory({ indexes, snapshot: null });
  // @ts-expect-error: an index is a path, a list of paths or {name, paths}
  await Replica.open('x', { indexes: { columns: [42] } });
  const scope = replica.scope('org-1');
  const page: QueryResult<Column> = await scope.query<Column>('columns', { index: ['object_id', 'position'], eq: 'obj_1' });
  const position: number = page.records[0].data.position;
  const cursor: string | null = page.cursor;
  await scope.query('columns', { index: 'object_id+position', eq: ['obj_1'], gte: 10, lt: 20, order: 'desc', limit: 5 });
  await scope.query('columns', { index: 'object_id', gt: null, lte: 'z', after: cursor });
  await scope.query('objects', { index: 'name', prefix: 'ord', limit: 20 });
  await scope.query('objects', { index: 'name', in: ['orders', 3, true, null] });
  // @ts-expect-error: a query names its index
  await scope.query('objects', { eq: 'x' });
  // @ts-expect-error: prefix, in and a range exclude each other
  await scope.query('objects', { index: 'name', prefix: 'o', gt: 'a' });
  // @ts-expect-error: one lower bound
  await scope.query('objects', { index: 'name', gt: 'a', gte: 'b' });
  // @ts-expect-error: query values are null, booleans, numbers or strings
  await scope.query('objects', { index: 'name', eq: { a: 1 } });
  // @ts-expect-error: order is asc or desc
  await scope.query('objects', { index: 'name', order: 'up' });
  const q: Query = { index: 'name', prefix: 'o' };
  const n: number = await scope.count('objects', q);
  const all: number = await scope.count('objects');

  const off = scope.subscribe((e: ChangeEvent) => {
    const origin: 'local' | 'other-tab' = e.origin;
    const run: number | null = e.run;
    for (const c of e.changes) {
      const op: 'insert' | 'update' | 'delete' = c.op;
      console.log(origin, run, op, c.collection, c.id, e.source === 'pull');
    }
  });
  off();
  const offAll: () => void = replica.subscribe((e) => console.log(e.scope));
  offAll();

  const stop = scope.watch<Column>('columns', { index: 'object_id', eq: 'obj_1' }, (r) => console.log(r.records[0]?.data.name), {
    onError: (e) => console.log(e.code),
  });
  stop();
  const live: LiveQuery<Column> = scope.live<Column>('columns', { index: 'object_id', eq: 'obj_1' });
  // Svelte's store contract and React's useSyncExternalStore, as they are typed there.
  const svelteStore: { subscribe(run: (value: QueryResult<Column> | undefined) => void): () => void } = live;
  const useSyncExternalStore = <S>(subscribe: (onChange: () => void) => () => void, getSnapshot: () => S): S => {
    subscribe(() => {})();
    return getSnapshot();
  };
  const snapshot: QueryResult<Column> | undefined = useSyncExternalStore(live.subscribe, live.getSnapshot);
  const names: string[] = [];
  for await (const result of live) {
    names.push(...result.records.map((r) => r.data.name));
    if (live.error) console.log(live.error.code);
    break;
  }
  void svelteStore;
  console.log(position, n, all, snapshot?.cursor, mem.kind);
  return names;
}
