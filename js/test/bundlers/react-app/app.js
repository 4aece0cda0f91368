// A React page on tether-sync/react, driven by react.test.mjs through `window.app`: a list from
// `useLiveQuery` (its query an inline literal), the status from `useSyncStatus`, one record from
// `useRecord`, a sync button on `useSync`. No JSX, so every bundler builds it as it is. The scope handed to the hooks is
// wrapped to count the subscriptions they hold, and its `query` to count re-reads.
import { createElement as h, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { useLiveQuery, useRecord, useSync, useSyncStatus } from 'tether-sync/react';

const stats = { renders: 0, live: 0, active: 0, queries: 0 };

function List({ scope }) {
  stats.renders += 1;
  const { records, loading, error } = useLiveQuery(scope, 'items', { index: 'group', eq: 'a' });
  const state = error ? `error: ${error.code}` : loading ? 'loading' : 'ready';
  return h('div', null,
    h('p', { id: 'state' }, state),
    h('ul', { id: 'items' }, records.map((r) => h('li', { key: r.id, 'data-id': r.id }, `${r.id}=${r.data.label}`))));
}

// A query on an index the replica does not declare: an error in the state, not a throw.
function Undeclared({ scope }) {
  const { error, loading } = useLiveQuery(scope, 'items', { index: 'undeclared' });
  return h('p', { id: 'undeclared' }, error ? `${error.name}` : loading ? 'loading' : 'no error');
}

function Status({ scope }) {
  const { status } = useSyncStatus(scope);
  return h('div', null,
    h('p', { id: 'status' }, status ? `visible=${status.visible} pending=${status.pendingEdits}` : ''),
    h('p', { id: 'synced' }, String(status?.lastSyncedAt ?? '')));
}

function Detail({ scope }) {
  const { record, loading } = useRecord(scope, 'items', 'a_3');
  return h('p', { id: 'detail' }, loading ? 'loading' : record ? `${record.data.label} pending=${record.pending}` : 'none');
}

function Sync({ scope, token }) {
  const { sync, syncing, progress, report, error } = useSync(scope);
  const onClick = () => sync({ remote: { url: location.origin, token }, pageSize: 4 }).catch(() => {});
  return h('div', null,
    h('button', { id: 'sync', onClick, disabled: syncing }, 'Sync'),
    h('p', { id: 'progress' }, progress ? `${progress.phase} ${progress.percent}` : ''),
    h('p', { id: 'report' }, report ? `run=${report.run.id} updated=${report.run.updated}` : error ? error.code : ''));
}

// The scope as the hooks see it: its methods, with subscriptions counted.
function counted(scope) {
  const track = (off) => {
    stats.active += 1;
    let on = true;
    return () => {
      if (on) stats.active -= 1;
      on = false;
      off();
    };
  };
  const query = scope.query.bind(scope);
  scope.query = (...args) => {
    stats.queries += 1;
    return query(...args);
  };
  return {
    live(collection, q, options) {
      stats.live += 1;
      const live = scope.live(collection, q, options);
      return { subscribe: (fn) => track(live.subscribe(fn)), getSnapshot: live.getSnapshot };
    },
    get: (c, id) => scope.get(c, id),
    status: (o) => scope.status(o),
    subscribe: (fn) => track(scope.subscribe(fn)),
    onSyncEnd: (fn) => track(scope.onSyncEnd(fn)),
    sync: (o) => scope.sync(o),
  };
}

export function install({ Replica }) {
  const open = (name) => Replica.open(name, { indexes: { items: ['group'] } });
  let root = null;
  window.app = {
    // The replica is named after the scope: one of each per build.
    async mount(id, token) {
      const scope = counted((await open(id)).scope(id));
      root = createRoot(document.getElementById('root'));
      root.render(h(StrictMode, null, h(List, { scope }), h(Undeclared, { scope }), h(Detail, { scope }), h(Status, { scope }), h(Sync, { scope, token })));
    },
    unmount() {
      root.unmount();
      root = null;
    },
    // What another tab does: its own Replica object on the same database.
    async edit(scope, id, data) {
      await (await open(scope)).scope(scope).put('items', id, data);
    },
    stats: () => ({ ...stats }),
  };
  window.ready = true;
}
