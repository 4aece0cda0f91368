// Compiles against the hand-written types of `tether-sync/react` (tsc --noEmit): the hooks as a
// component calls them, without React's own types (the hooks' types need none). A runtime
// render in Chromium is js/test/bundlers/react.test.mjs.
import { Replica, type LiveQuery, type Scope, type TetherRecord } from 'tether-sync';
import {
  useLiveQuery,
  useRecord,
  useSync,
  useSyncStatus,
  type LiveQueryScope,
  type LiveQueryState,
} from 'tether-sync/react';

interface Column {
  object_id: string;
  name: string;
  position: number;
}

export function Columns(scope: Scope | null, objectId: string | null): string[] {
  // Generic: the records' data is typed.
  const { records, cursor, loading, error } = useLiveQuery<Column>(
    scope,
    'columns',
    objectId === null ? null : { index: ['object_id', 'position'], eq: objectId, gte: 0 },
    { throwOnError: false },
  );
  const typed: TetherRecord<Column>[] = records;
  const next: string | null = cursor;
  if (error) return [error.code, error.detail ?? '', String(loading), String(next)];
  // @ts-expect-error: `prefix` and a range on the same path are one condition or the other
  useLiveQuery(scope, 'columns', { index: 'name', prefix: 'a', gt: 'b' });
  // @ts-expect-error: the collection is a string
  useLiveQuery(scope, 1, { index: 'name' });
  return typed.map((c) => `${c.data.position}: ${c.data.name}`);
}

// Anything with the scope's methods works (e.g. a scope connected over a message channel).
export function structural(live: LiveQuery<Column>): LiveQueryState<Column> {
  const source: LiveQueryScope = { live: <T extends object>() => live as unknown as LiveQuery<T> };
  return useLiveQuery<Column>(source, 'columns', { index: 'object_id', eq: 'obj_1' });
}

export async function others(): Promise<string> {
  const scope = (await Replica.open('catalog')).scope('org-1');
  const { record, loading } = useRecord<Column>(scope, 'columns', 'col_1');
  const name: string | undefined = record?.data.name;
  useRecord(scope, 'columns', null);
  const { status, error } = useSyncStatus(scope, { intervalMs: 60_000 });
  const pending: number | undefined = status?.pendingEdits;
  const s = useSync(scope);
  useSync(null);
  const report = await s.sync({ remote: { url: 'https://sync.example.com', token: 't' }, onProgress: (p) => p.percent });
  const percent: number | null | undefined = s.progress?.percent;
  // @ts-expect-error: sync needs a remote
  s.sync({});
  // @ts-expect-error: the status hook takes no query
  useSyncStatus(scope, { index: 'name' });
  return `${name} ${loading} ${pending} ${error?.code} ${report.run.id} ${percent} ${s.syncing} ${s.error?.code}`;
}
