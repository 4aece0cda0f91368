// An extension host's use of the package, checked with an extension's usual tsconfig: no DOM
// lib, @types/node. `tether-sync` resolves to the Node types through the `node` condition.
import { Replica, isTetherError, type TetherRecord } from 'tether-sync';
import * as browser from 'tether-sync/preloaded';

/** What VS Code's `Memento` (context.globalState) declares. */
interface Memento {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): Thenable<void>;
}
interface Thenable<T> extends PromiseLike<T> {}

interface Table {
  name: string;
  schema: string;
}

export async function activate(context: { globalState: Memento }): Promise<string | undefined> {
  const replica = await Replica.openInMemory({ snapshot: context.globalState.get<string>('tether') });
  const scope = replica.scope('org-1');
  try {
    await scope.sync({ remote: { url: 'https://sync.example.com', token: async () => 'token' } });
  } catch (e) {
    if (isTetherError(e) && e.code === 'InvalidInput') return e.message;
  }
  const rec: TetherRecord<Table> | null = await scope.get<Table>('objects', 'obj_1');
  await scope.put<Table>('objects', 'obj_2', { name: 'orders', schema: 'sales' });
  await context.globalState.update('tether', replica.exportSnapshot());
  // Queries, events and live queries, without the DOM lib.
  const file = await Replica.open('/tmp/replica.db', { indexes: { objects: ['name'] } });
  const page = await file.scope('org-1').query<Table>('objects', { index: 'name', prefix: 'ord' });
  const off = file.subscribe((e) => console.log(e.origin, e.changes.length));
  off();
  const live = scope.live<Table>('objects', { index: 'name', gte: 'a' });
  for await (const r of live) {
    console.log(r.records.length, page.records[0]?.data.schema);
    break;
  }
  // The browser entry's types compile here too (no DOM lib), bytes from disk work with init.
  await browser.init(new Uint8Array(8));
  return rec?.data.name;
}
