// `tether-sync/react`: React hooks (React 18 or later, an optional peer dependency). The hooks
// take a `Scope`, or any object with the methods each one calls (typed structurally below), so
// a scope connected over a message channel works the same. Nothing here needs React's types.
import type {
  JsonObject,
  Progress,
  Query,
  QueryResult,
  Scope,
  ScopeStatus,
  SyncOptions,
  SyncReport,
  TetherError,
  TetherRecord,
} from './index.js';

/** What {@link useLiveQuery} calls: a {@link Scope}'s `live`. */
export type LiveQueryScope = Pick<Scope, 'live'>;
/**
 * What {@link useRecord} and {@link useSyncStatus} call: `get` or `status`, `subscribe`, and
 * `onSyncEnd` where the object has it (without it, a sync that only pushed shows at the next
 * change event).
 */
export type RecordScope = Pick<Scope, 'get' | 'subscribe'> & Partial<Pick<Scope, 'onSyncEnd'>>;
export type StatusScope = Pick<Scope, 'status' | 'subscribe'> & Partial<Pick<Scope, 'onSyncEnd'>>;
/** What {@link useSync} calls: `sync`. */
export type SyncScope = Pick<Scope, 'sync'>;

/** The state of a live query, the same object until the result or the error changes. */
export interface LiveQueryState<T extends object = JsonObject> {
  /** The records of the latest result; empty before the first one. */
  records: TetherRecord<T>[];
  /** The latest result's cursor (see {@link QueryResult.cursor}). */
  cursor: QueryResult<T>['cursor'];
  /** No result yet, and no error: the query is being read (or the scope is not there yet). */
  loading: boolean;
  /**
   * The error of the latest evaluation (an undeclared index, a closed database); `null` once a
   * new result arrives. The records of the last result stay meanwhile.
   */
  error: TetherError | null;
}

export interface HookOptions {
  /** Throw the error in render (for an error boundary) instead of returning it. Default false. */
  throwOnError?: boolean;
}

/**
 * The records `query` selects on `collection`, kept current with `useSyncExternalStore` over
 * `scope.live(collection, query)`: the component renders again when a change (a local edit, a
 * sync, another tab's edit) changes the result, and only then. The query is compared by value
 * (its JSON), so an object literal written in the component does not subscribe again on each
 * render; another scope, collection or query does. Unmounting unsubscribes, and the live
 * query stops when nothing subscribes.
 *
 * A `null` or `undefined` scope (a replica still opening) gives `loading: true`; a `null` or
 * `undefined` query (nothing selected yet) gives no records, not loading. On the server (SSR)
 * the state is `loading`.
 *
 * ```ts
 * import { createElement as h } from 'react';
 * import { useLiveQuery } from 'tether-sync/react';
 *
 * interface Column { object_id: string; name: string; position: number }
 *
 * function Columns({ scope, objectId }: { scope: Scope; objectId: string }) {
 *   const { records, loading, error } = useLiveQuery<Column>(scope, 'columns', {
 *     index: ['object_id', 'position'],
 *     eq: objectId,
 *   });
 *   if (error) return h('p', null, error.message);
 *   if (loading) return h('p', null, 'Loading…');
 *   return h('ul', null, records.map((c) => h('li', { key: c.id }, c.data.name)));
 * }
 * ```
 */
export declare function useLiveQuery<T extends object = JsonObject>(
  scope: LiveQueryScope | null | undefined,
  collection: string,
  query: Query | null | undefined,
  options?: HookOptions,
): LiveQueryState<T>;

/** The state of one record. */
export interface RecordState<T extends object = JsonObject> {
  /** The record; `null` when there is none (and while loading). */
  record: TetherRecord<T> | null;
  loading: boolean;
  /** The error of the latest read, `null` once one succeeds; the last record stays meanwhile. */
  error: TetherError | null;
}

/**
 * One record (`scope.get(collection, id)`), read again after each change event of that key
 * (local, a sync, another tab) and after each sync run of the scope (its `pending` flag clears
 * without an event). No index needed. A `null` id gives no record, not loading.
 *
 * ```ts
 * const { record } = useRecord<{ name: string }>(scope, 'objects', 'obj_1');
 * const title = record?.data.name ?? '(deleted)';
 * ```
 */
export declare function useRecord<T extends object = JsonObject>(
  scope: RecordScope | null | undefined,
  collection: string,
  id: string | null | undefined,
  options?: HookOptions,
): RecordState<T>;

/** The state of a scope's status. */
export interface SyncStatusState {
  /** `scope.status()`; `null` before the first read. */
  status: ScopeStatus | null;
  loading: boolean;
  /** The error of the latest read, `null` once one succeeds. */
  error: TetherError | null;
}

/**
 * The scope's status, read again after each change event of the scope, after the end of each
 * sync or verify run (here or, for IndexedDB, in another tab: {@link Scope.onSyncEnd}), and
 * every `intervalMs` if given, since `syncRecommended` turns true with time alone.
 *
 * ```ts
 * const { status } = useSyncStatus(scope, { intervalMs: 60_000 });
 * const label = status ? `${status.pendingEdits} unsynced edits` : '…';
 * ```
 */
export declare function useSyncStatus(
  scope: StatusScope | null | undefined,
  options?: { maxAgeMs?: number; intervalMs?: number },
): SyncStatusState;

/** Syncs run through {@link useSync}, and how the latest went. */
export interface SyncState {
  /**
   * Runs `scope.sync(options)` and returns its promise (which rejects as `scope.sync` does,
   * and with `InvalidInput` while the scope is `null`; the error of a sync is also in
   * `error`). `options.onProgress`, if given, is still called.
   */
  sync(options: SyncOptions): Promise<SyncReport>;
  /** A sync started here is running. */
  syncing: boolean;
  /**
   * The latest progress event of a sync started here (`null` until its first one). The
   * engine reports progress to the sync that runs, so syncs started elsewhere (another tab,
   * a background sync) have none here: {@link useSyncStatus} shows their outcome.
   */
  progress: Progress | null;
  /** The report of the latest sync that completed. */
  report: SyncReport | null;
  /** The error of the latest sync, `null` again when the next one starts. */
  error: TetherError | null;
}

/**
 * Runs syncs of `scope` and follows their progress.
 *
 * ```ts
 * const { sync, syncing, progress, error } = useSync(scope);
 * const onClick = () => sync({ remote: { url, token } }).catch(() => {}); // `error` shows it
 * const percent = progress?.percent ?? 0;
 * ```
 */
export declare function useSync(scope: SyncScope | null | undefined): SyncState;
