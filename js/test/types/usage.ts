// Compiles against the hand-written types (tsc --noEmit): the public API as a user writes it.
import { init, isTetherError, Replica, type TetherError, type TetherRecord } from 'tether-sync';
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
