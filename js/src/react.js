// `tether-sync/react`: React hooks over a scope's live queries, change events and status, on
// `useSyncExternalStore` (React 18 or later, an optional peer dependency of the package).
//
// The hooks take a `Scope`, or any object with the methods they call (a scope connected over a
// message channel has them too), and import nothing but React: no wasm, no other module of the
// package. Each snapshot is one object that stays the same until the data changes, as
// `useSyncExternalStore` requires (a new object per call makes React render forever).
import { useCallback, useDebugValue, useMemo, useRef, useState, useSyncExternalStore } from 'react';

const NO_RECORDS = Object.freeze([]);
/** A query waiting for its first result (and what a server renders). */
const LOADING = Object.freeze({ records: NO_RECORDS, cursor: null, loading: true, error: null });
/** A query not asked: no scope or no query (yet). */
const IDLE = Object.freeze({ records: NO_RECORDS, cursor: null, loading: false, error: null });

/**
 * The records `query` selects on `collection`, kept current: `{records, cursor, loading,
 * error}`. Re-renders when a change (a local edit, a sync, another tab) changes the result.
 */
export function useLiveQuery(scope, collection, query, options = {}) {
  // By value: an object literal written inline in the component is the same query each render.
  const key = query == null ? null : JSON.stringify(query);
  // `query` is read only when `key` changed, so the first object of equal ones is the one used.
  const store = useMemo(
    () => (scope == null ? constant(LOADING) : key === null ? constant(IDLE) : queryStore(scope, collection, query)),
    [scope, collection, key],
  );
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getServerSnapshot);
  useDebugValue(state, debugQuery);
  if (state.error && options.throwOnError) throw state.error;
  return state;
}

/**
 * One record, kept current: `{record, loading, error}` (`record` is `null` when there is no
 * such record). Read again after a change of that key and after each sync run of the scope.
 */
export function useRecord(scope, collection, id, options = {}) {
  const store = useMemo(() => {
    if (scope == null) return constant(Object.freeze({ record: null, loading: true, error: null }));
    if (id == null) return constant(Object.freeze({ record: null, loading: false, error: null }));
    const touches = (e) => e.changes.some((c) => c.collection === collection && c.id === id);
    return readStore('record', () => scope.get(collection, id), (poke) => listen(scope, poke, touches), sameRecord);
  }, [scope, collection, id]);
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getServerSnapshot);
  if (state.error && options.throwOnError) throw state.error;
  return state;
}

/**
 * The scope's status (`scope.status()`), kept current: `{status, loading, error}`. Read again
 * after each change event of the scope, after each sync run's end (here or in another tab),
 * and every `intervalMs` if given (`syncRecommended` turns true with time alone).
 */
export function useSyncStatus(scope, options = {}) {
  const { maxAgeMs, intervalMs } = options;
  const store = useMemo(() => {
    if (scope == null) return constant(Object.freeze({ status: null, loading: true, error: null }));
    const read = () => scope.status(maxAgeMs === undefined ? undefined : { maxAgeMs });
    return readStore('status', read, (poke) => listen(scope, poke, null, intervalMs), sameJson);
  }, [scope, maxAgeMs, intervalMs]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getServerSnapshot);
}

const NOT_SYNCING = Object.freeze({ syncing: false, progress: null, report: null, error: null });

/**
 * Runs syncs of `scope` and follows them: `{sync, syncing, progress, report, error}`. `sync`
 * takes `scope.sync`'s options and returns its promise (an `InvalidInput` rejection while
 * `scope` is null); `progress` is the latest progress event of a sync started through it,
 * `report` and `error` the outcome of the latest one.
 */
export function useSync(scope) {
  const [state, setState] = useState(NOT_SYNCING);
  const running = useRef(0);
  const sync = useCallback(
    async (options = {}) => {
      if (scope == null) throw invalidInput('useSync: no scope to sync yet (the replica is still opening)');
      running.current += 1;
      setState((s) => ({ ...s, syncing: true, progress: null, error: null }));
      const onProgress = (p) => {
        setState((s) => ({ ...s, progress: p }));
        options.onProgress?.(p);
      };
      try {
        const report = await scope.sync({ ...options, onProgress });
        setState((s) => ({ ...s, report }));
        return report;
      } catch (e) {
        setState((s) => ({ ...s, error: e }));
        throw e;
      } finally {
        running.current -= 1;
        if (running.current === 0) setState((s) => ({ ...s, syncing: false }));
      }
    },
    [scope],
  );
  return useMemo(() => ({ ...state, sync }), [state, sync]);
}

// ---- stores --------------------------------------------------------------------------------

function constant(snapshot) {
  return { subscribe: () => () => {}, getSnapshot: () => snapshot, getServerSnapshot: () => snapshot };
}

// A live query of the scope as an external store: its result and its last error.
function queryStore(scope, collection, query) {
  let result; // the LiveQuery's latest value
  let error = null;
  let shown; // the value `snapshot` was made of
  let snapshot = LOADING;
  const changed = new Set();
  const tell = () => {
    for (const f of [...changed]) f();
  };
  const live = scope.live(collection, query, {
    onError: (e) => {
      // The same failure again (each change re-reads the query) renders nothing new.
      if (error && error.name === e?.name && error.message === e?.message) return;
      error = e;
      tell();
    },
  });
  return {
    subscribe(onChange) {
      changed.add(onChange);
      // The Svelte contract: called at once with the current value, then with each new one.
      const off = live.subscribe((value) => {
        if (value === undefined || value === result) return;
        result = value;
        error = null; // a result after an error: the query works again
        tell();
      });
      return () => {
        changed.delete(onChange);
        off();
      };
    },
    getSnapshot() {
      if (result !== shown || error !== snapshot.error) {
        shown = result;
        snapshot = Object.freeze({
          records: result?.records ?? NO_RECORDS,
          cursor: result?.cursor ?? null,
          loading: result === undefined && error === null,
          error,
        });
      }
      return snapshot;
    },
    getServerSnapshot: () => LOADING,
  };
}

// A value read with `read()` and read again when `listen`'s poke says so: one read at a time,
// and a poke during a read makes exactly one more after it (a sync's burst of pages: two reads).
function readStore(name, read, listen, same) {
  const loading = Object.freeze({ [name]: null, loading: true, error: null });
  let snapshot = loading;
  let running = false;
  let again = false;
  let stop = null;
  const changed = new Set();
  const run = async () => {
    running = true;
    try {
      do {
        again = false;
        let next;
        try {
          const value = await read();
          next = !snapshot.loading && !snapshot.error && same(snapshot[name], value)
            ? snapshot
            : Object.freeze({ [name]: value, loading: false, error: null });
        } catch (e) {
          next = Object.freeze({ [name]: snapshot[name], loading: false, error: e });
        }
        if (changed.size === 0) return;
        if (next !== snapshot) {
          snapshot = next;
          for (const f of [...changed]) f();
        }
      } while (again && changed.size > 0);
    } finally {
      running = false;
    }
  };
  const poke = () => {
    if (running) again = true;
    else run();
  };
  return {
    subscribe(onChange) {
      changed.add(onChange);
      if (!stop) {
        stop = listen(poke);
        poke();
      }
      return () => {
        changed.delete(onChange);
        if (changed.size === 0 && stop) {
          stop();
          stop = null;
        }
      };
    },
    getSnapshot: () => snapshot,
    getServerSnapshot: () => loading,
  };
}

// Pokes on the scope's change events (those `touches` accepts; all without it), on the end of
// each of its sync runs where the scope tells them (`onSyncEnd`), and every `intervalMs`.
function listen(scope, poke, touches, intervalMs) {
  const offs = [scope.subscribe((e) => (!touches || touches(e)) && poke())];
  if (typeof scope.onSyncEnd === 'function') offs.push(scope.onSyncEnd(poke));
  if (intervalMs > 0) {
    const timer = setInterval(poke, intervalMs);
    offs.push(() => clearInterval(timer));
  }
  return () => offs.forEach((off) => off());
}

// The package's error shape (`isTetherError` holds), without importing its core.
function invalidInput(message) {
  return Object.assign(new Error(message), { name: 'InvalidInputError', code: 'InvalidInput' });
}

function sameRecord(a, b) {
  if (a === null || b === null) return a === b;
  return a.id === b.id && a.hash === b.hash && a.pending === b.pending && a.version === b.version;
}

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function debugQuery(state) {
  if (state.error) return `error: ${state.error.message}`;
  return state.loading ? 'loading' : `${state.records.length} records`;
}
