// Hand-written types of the public API of tether-sync. Names are camelCase; records' `data`
// is the user's JSON object, untouched. Wire-format objects (pages and push results a remote
// function returns) keep the protocol's snake_case.

/** Stable error codes; `error.name` is the code followed by `Error` (e.g. `"NetworkError"`). */
export type ErrorCode =
  | 'Network'
  | 'Auth'
  | 'Protocol'
  | 'Integrity'
  | 'Storage'
  | 'Cancelled'
  | 'InvalidInput';

/**
 * Finer, stable reasons below the code, where one is known: Network `Timeout`, `Unreachable`,
 * `RateLimited`, `ServerError`; Protocol `Malformed`, `HashMismatch`, `VersionBackwards`,
 * `CheckpointMissing`, `SnapshotMissing`, `NoProgress`, `BodyTooLarge`, `UnexpectedStatus`,
 * `NotSupported`; Storage `Quota`, `Busy`, `Corrupt`; InvalidInput `WasmNotFound` (the wasm is
 * not where the entry point looked: a bundler did not copy it, docs/browser.md "Bundlers").
 * Through a replica channel (`tether-sync/channel`): InvalidInput `ReadOnly` and
 * `ScopeNotAllowed` (what the owner refuses this connection), Storage `Closed` (the channel
 * closed), Network `Timeout` (the owner did not answer within `timeoutMs`).
 */
export type ErrorDetail =
  | 'Timeout'
  | 'Unreachable'
  | 'RateLimited'
  | 'ServerError'
  | 'Malformed'
  | 'HashMismatch'
  | 'VersionBackwards'
  | 'CheckpointMissing'
  | 'SnapshotMissing'
  | 'NoProgress'
  | 'BodyTooLarge'
  | 'UnexpectedStatus'
  | 'NotSupported'
  | 'WasmNotFound'
  | 'Quota'
  | 'Busy'
  | 'Corrupt'
  | 'ReadOnly'
  | 'ScopeNotAllowed'
  | 'Closed';

/**
 * Every error Tether throws or rejects with. Narrow on `code` (or `name`), then on `detail`:
 *
 * ```ts
 * try { await scope.sync({ remote }); } catch (e) {
 *   if (isTetherError(e) && e.code === 'Storage' && e.detail === 'Quota') showFreeSpaceHint();
 * }
 * ```
 */
export interface TetherError extends Error {
  name: `${ErrorCode}Error`;
  code: ErrorCode;
  /** The finer reason, when one is known (e.g. `'Quota'` for a full IndexedDB). */
  detail?: ErrorDetail;
  /** Network errors: retrying later may succeed. */
  retryable?: boolean;
  /** HTTP status, when there was a response (Network, Auth). */
  status?: number;
  /** What the server asked for with `Retry-After` (Network). */
  retryAfterMs?: number;
  /** Integrity errors: the cloud's and the replica's count and digest. */
  expected?: Snapshot;
  actual?: Snapshot;
}

export declare const ERROR_CODES: readonly ErrorCode[];

/** Whether `e` is a Tether error. */
export declare function isTetherError(e: unknown): e is TetherError;

// These types compile with or without the DOM lib (an extension host's tsconfig has
// `lib: ["ES2022"]` and @types/node): browser-only globals are looked up on `globalThis`.
type Globals = typeof globalThis;
/** `WebAssembly.Module` where the lib declares it. */
export type WasmModule = Globals extends { WebAssembly: { Module: { prototype: infer M } } } ? M : object;
/** A fetch `Response` where the lib declares it. */
export type WasmResponse = Globals extends { Response: { prototype: infer R } } ? R : never;

/** What `init` loads the module from: a compiled module, its bytes, a `Response`, a URL. */
export type WasmSource = WasmModule | ArrayBuffer | ArrayBufferView | WasmResponse | URL | string;

/**
 * Loads the wasm module (once). Optional with the default entry, which loads the module next
 * to the package; required first with `tether-sync/preloaded`. A URL that does not hold the
 * module rejects with `InvalidInput` / `WasmNotFound`.
 */
export declare function init(source?: WasmSource | Promise<WasmSource>): Promise<void>;

/** A JSON object: the shape of every record's `data`. */
export type JsonObject = { [key: string]: unknown };

/** Count and digest of a scope (the digest is 64 hex digits). */
export interface Snapshot {
  count: number;
  digest: string;
}

/**
 * A record; `T` is the type of its `data`, any object type (an `interface` too: records'
 * data are JSON objects, which Tether does not check against `T`).
 */
export interface TetherRecord<T extends object = JsonObject> {
  collection: string;
  id: string;
  data: T;
  /** Cloud version the record is at (for a local edit, the version it was made on; 0 if new). */
  version: number;
  /** When the cloud wrote it (RFC 3339); empty for a record created locally. */
  updatedAt: string;
  /** SHA-256 of the canonical JSON of `data`, hex. */
  hash: string;
  /** An unpushed local edit is in this state. */
  pending: boolean;
}

export type RunKind = 'initial' | 'incremental' | 'full-resync';
export type Trigger = 'manual' | 'background' | 'startup' | 'live';
export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled';
/** `ready`: every subscription of `priority` is complete (a partial replica). */
export type Phase = 'push' | 'pull' | 'apply' | 'verify' | 'sweep' | 'ready';

/** One sync run as kept in history. */
export interface Run {
  id: number;
  scope: string;
  kind: RunKind;
  trigger: Trigger;
  startedAt: number;
  finishedAt: number | null;
  status: RunStatus;
  pages: number;
  inserted: number;
  updated: number;
  deleted: number;
  unchanged: number;
  conflicts: number;
  repaired: number;
  bytesReceived: number;
  error: { kind: ErrorCode; detail?: ErrorDetail; message: string } | null;
}

export interface SyncReport {
  run: Run;
  /** The verified count and digest (equal on both sides). */
  snapshot: Snapshot;
}

export interface VerifyReport {
  cloud: Snapshot;
  local: Snapshot;
  matched: boolean;
  repaired: number;
  matchesNow: boolean;
  /**
   * A partial replica's subscriptions, each compared on its own (`cloud` and `local` above are
   * their sums); left out for a whole scope.
   */
  subscriptions?: Array<{ subscription: string; cloud: Snapshot; local: Snapshot }>;
}

/** A value a subscription's filter compares with: strings, or numbers (compared as doubles). */
export type FilterValue = string | number;

/**
 * The part of a scope a partial replica holds (docs/partial-sync.md): one collection, and
 * optionally filters on its records' data. A record matches when, for every dotted path of
 * `where`, its value there equals one of the listed values. Limits: at most 4 paths, 100
 * values in all, 8 segments a path, 4 KiB encoded, 64 subscriptions a scope.
 *
 * ```ts
 * const sub: SubscriptionSpec = { collection: 'files', where: { repository: ['repo_1', 'repo_2'] }, priority: 1 };
 * ```
 */
export interface SubscriptionSpec {
  collection: string;
  where?: Record<string, FilterValue[]>;
  /** 0 (the default) is the highest: a sync completes every subscription of a priority before the next. */
  priority?: number;
}

/** A subscription the replica holds ({@link Scope.subscriptions}). */
export interface HeldSubscription {
  collection: string;
  /** Empty for a whole collection. */
  where: Record<string, FilterValue[]>;
  priority: number;
  /** Its download reached the end once: the replica holds what it selects. */
  complete: boolean;
}

/** What a sync would do ({@link Scope.preview}). */
export interface Preview {
  /** Inserted, updated, deleted (in a full download: also the rows the sweep would remove),
   * unchanged, and `conflicts`: local edits that would lose to the cloud. */
  counts: { inserted: number; updated: number; deleted: number; unchanged: number; conflicts: number; repaired: number };
  /** The keys of the local edits that would be journaled. */
  conflicts: Array<{ collection: string; id: string }>;
  /** Local edits the sync would push first. */
  pushes: number;
  /** Pages pulled. */
  pages: number;
  /** Whether the sync would download the scope in full. */
  full: boolean;
}

export interface Progress {
  scope: string;
  phase: Phase;
  /** Records done so far in this run. */
  done: number;
  /** Estimated total, when the remote gave an estimate. */
  total: number | null;
  /** 0..100, when the total is known. */
  percent: number | null;
  /** The subscription (its canonical JSON) the event is about, in a partial replica. */
  subscription?: string;
  /** Its priority, or the priority now complete (`phase: 'ready'`). */
  priority?: number;
}

export interface ScopeStatus {
  scope: string;
  checkpoint: string | null;
  lastSyncedAt: number | null;
  /** Records of the cloud state held, and their digest. */
  count: number;
  digest: string;
  /** Records visible locally (cloud state plus local edits). */
  visible: number;
  pendingEdits: number;
  openConflicts: number;
  lastError: { kind: ErrorCode; detail?: ErrorDetail; message: string } | null;
  fullSyncInProgress: boolean;
  syncRecommended: boolean;
  reason: string | null;
}

export interface Stats {
  days: number;
  runs: number;
  completed: number;
  failed: number;
  cancelled: number;
  successRate: number | null;
  meanDurationMs: number | null;
  inserted: number;
  updated: number;
  deleted: number;
  conflicts: number;
  bytesReceived: number;
}

/** A local edit the cloud overwrote (cloud wins), kept until dismissed. */
export interface Conflict {
  id: number;
  scope: string;
  collection: string;
  recordId: string;
  localOp: 'put' | 'delete';
  localData: JsonObject | null;
  baseVersion: number | null;
  /** The cloud version that won (0 when the cloud has no such record). */
  cloudVersion: number;
  cloudHash: string | null;
  at: number;
  /**
   * Why the cloud can never accept the edit (`'too_large'`, `'key_too_long'`, `'too_deep'`,
   * `'bad_text'`, `'invalid_data'` from older servers); absent for an
   * edit that lost to another writer.
   */
  reason?: string;
}

// ---- remotes -------------------------------------------------------------------------------

/** The Tether HTTP protocol (e.g. `tether serve`). */
export interface HttpRemote {
  /** Base URL, e.g. `https://sync.example.com` (the `/v1/...` paths are appended). */
  url: string;
  /** Bearer token, or a function returning one (called before each request). */
  token?: string | (() => string | Promise<string>);
  /** A `fetch` to use instead of the global one. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Retries per request (default 4) after network errors, 408, 429 and 5xx, pushes included
   * (each mutation carries an id, so a repeat gets its original answer). Other 4xx never. At
   * most 30 s of retrying per request and 120 s per sync. */
  retries?: number;
  /** Time allowed for one attempt, the whole answer included (default 60,000 ms): a server
   * that stalls or trickles fails the attempt as a `Network` error with `detail: 'Timeout'`,
   * retried like the others. */
  timeoutMs?: number;
}

/** One change of a pull page (wire format). */
export interface WireChange {
  collection: string;
  id: string;
  version: number;
  updated_at: string;
  deleted?: boolean;
  data?: JsonObject | null;
  hash?: string | null;
}

/** A pull page (wire format: docs/protocol.md, "Pull"). */
export interface WirePage {
  changes: WireChange[];
  checkpoint: string;
  has_more: boolean;
  remaining?: number;
  snapshot?: Snapshot;
}

export interface WireMutation {
  collection: string;
  id: string;
  op: 'put' | 'delete';
  data: JsonObject | null;
  base_version: number | null;
}

export type WireMutationResult =
  | { status: 'accepted'; version: number; updated_at: string }
  | { status: 'rejected'; current: WireChange | null };

/**
 * A remote made of your own functions (your transport, your auth). Throw an error with
 * `code: 'Auth'` (or another ErrorCode) to report that kind; anything else is a Network error.
 * Any answer may also be given as its JSON text (a string), e.g. `await response.text()`: the
 * engine parses it in wasm, which is faster than a parsed object it has to stringify again.
 *
 * ```ts
 * const remote: FunctionRemote = {
 *   pull: async ({ scope, checkpoint, limit }) =>
 *     (await fetch(`/pull?scope=${scope}&checkpoint=${checkpoint ?? ''}&limit=${limit}`)).text(),
 * };
 * ```
 */
export interface FunctionRemote {
  pull(args: {
    scope: string;
    checkpoint: string | null;
    limit: number;
    signal?: AbortSignal;
  }): WirePage | { reset: true } | string | Promise<WirePage | { reset: true } | string>;
  push?(args: {
    scope: string;
    mutations: WireMutation[];
    signal?: AbortSignal;
  }): Promise<{ results: WireMutationResult[] } | string>;
  status?(args: { scope: string; signal?: AbortSignal }): Promise<{
    count: number;
    digest: string;
    version: number;
    updated_at?: string | null;
  } | string>;
}

export type Remote = HttpRemote | FunctionRemote;

// ---- indexes, queries, change events -------------------------------------------------------

/**
 * A dotted path into a record's `data` (`'name'`, `'owner.team'`). A key that contains a dot
 * cannot be indexed.
 */
export type IndexPath = string;

/**
 * One index of a collection: a path, a list of paths (a compound index, named after its
 * paths joined by `+`: `'object_id+position'`), or a named index.
 */
export type IndexDeclaration = IndexPath | IndexPath[] | { name: string; paths: IndexPath | IndexPath[] };

/**
 * The indexes of a replica, per collection, declared when it is opened. Opening with another
 * set drops the indexes no longer declared and builds the new ones (before `open` resolves);
 * every write keeps them, in its own transaction.
 *
 * ```ts
 * const replica = await Replica.open('catalog', {
 *   indexes: {
 *     columns: ['object_id', ['object_id', 'position']],
 *     objects: ['name', { name: 'by_schema', paths: ['schema', 'name'] }],
 *   },
 * });
 * ```
 */
export type IndexDeclarations = { [collection: string]: IndexDeclaration[] };

/** Options of opening a replica. */
export interface OpenOptions {
  /**
   * The replica's indexes. Left out, the replica keeps the set declared earlier (so a tool
   * opening a shared file does not drop an app's indexes); `{}` drops them all.
   */
  indexes?: IndexDeclarations;
}

/**
 * A value an index compares: JSON values order as null (and a missing path) < false < true <
 * numbers < strings (by UTF-8 bytes) < arrays and objects, the same on every store.
 */
export type IndexValue = null | boolean | number | string;

/** What every query says: the index, equality on its leading paths, order and paging. */
interface QueryBase {
  /** A declared index of the collection: its name, or its paths. */
  index: string | string[];
  /**
   * Equality on the index's first paths, in order: one value for the first path, or a list
   * for the first ones (`eq: 'obj_1'` is `eq: ['obj_1']`).
   */
  eq?: IndexValue | IndexValue[];
  /** Index order (ties by record id); default `'asc'`. */
  order?: 'asc' | 'desc';
  /** At most this many records (a whole number, at least 1); all when left out. */
  limit?: number;
  /** The `cursor` of the previous page of the same query. */
  after?: string | null;
}

/** A range on the path after those of `eq`: at most one lower and one upper bound. */
type RangeCondition = ({ gt?: IndexValue; gte?: never } | { gte?: IndexValue; gt?: never }) &
  ({ lt?: IndexValue; lte?: never } | { lte?: IndexValue; lt?: never }) & { prefix?: never; in?: never };
/** Strings starting with `prefix` (case-sensitive), on the path after those of `eq`. */
type PrefixCondition = { prefix: string; in?: never; gt?: never; gte?: never; lt?: never; lte?: never };
/** Any of the values, on the path after those of `eq`. */
type InCondition = { in: IndexValue[]; prefix?: never; gt?: never; gte?: never; lt?: never; lte?: never };

/**
 * A query on one declared index of a collection (the collection is passed beside it):
 * equality on the index's leading paths (`eq`), then one of a range (`gt`/`gte`, `lt`/`lte`),
 * a `prefix` or `in` on the next path. A query on an index that is not declared rejects with
 * `InvalidInput` naming it, never a silent full scan.
 *
 * ```ts
 * // The columns of one object, in position order:
 * await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_1' });
 * // Positions 10 to 19 of that object:
 * await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_1', gte: 10, lt: 20 });
 * // Objects whose name starts with "ord", 20 at a time:
 * const page = await scope.query('objects', { index: 'name', prefix: 'ord', limit: 20 });
 * const next = await scope.query('objects', { index: 'name', prefix: 'ord', limit: 20, after: page.cursor });
 * ```
 */
export type Query = QueryBase & (RangeCondition | PrefixCondition | InCondition);

/** A page of query results. */
export interface QueryResult<T extends object = JsonObject> {
  /** The visible records (pending local edits included, pending deletes not), in index order. */
  records: TetherRecord<T>[];
  /**
   * Pass as `after` for the next page; `null` when this page holds the last result (a page
   * that filled its `limit` always has one, even if nothing follows).
   */
  cursor: string | null;
}

/** What made a change. */
/** `subscriptions`: a partial replica's subscriptions narrowed and records left it. */
export type ChangeSource = 'local' | 'pull' | 'push' | 'sweep' | 'repair' | 'subscriptions';

/** One changed record: `insert` (became visible), `update` (its data changed), `delete`. */
export interface KeyChange {
  collection: string;
  id: string;
  op: 'insert' | 'update' | 'delete';
  /**
   * On a `delete` of a partial replica: the record still exists in the cloud but no
   * subscription selects it any more ("no longer synced", not "deleted").
   */
  evicted?: boolean;
}

/**
 * The visible changes of one committed transaction (a local edit, a page of a sync, the
 * answers of a push, the sweep of a full download, a repair), delivered after the commit. A
 * write that keeps the visible data (a push the cloud accepted) is no change.
 */
export interface ChangeEvent {
  scope: string;
  source: ChangeSource;
  /** The sync run that made the change; `null` for local edits. */
  run: number | null;
  changes: KeyChange[];
  /**
   * `'local'`: made through this replica object; `'other-tab'`: through another replica
   * object on the same IndexedDB database (another tab, a worker), received over
   * `BroadcastChannel` `tether:<database name>`.
   */
  origin: 'local' | 'other-tab';
}

/** Options of a watched or live query. */
export interface WatchOptions {
  /**
   * Called when evaluating the query fails (an undeclared index, a closed database); the
   * watch goes on and tries again on the next change. Default: `reportError` / `console.error`.
   */
  onError?: (error: TetherError) => void;
}

/**
 * A query's current result as a value frameworks subscribe to. It evaluates the query while
 * something subscribes, and again after each change of its collection (local, a sync, another
 * tab) that changes the result; between changes the value is the same object.
 *
 * ```ts
 * const columns = scope.live<Column>('columns', { index: ['object_id', 'position'], eq: 'obj_1' });
 * // Svelte: {#each $columns?.records ?? [] as c} ... {/each}
 * // React: const page = useSyncExternalStore(columns.subscribe, columns.getSnapshot);
 * for await (const page of columns) render(page.records); // each new result
 * ```
 */
export interface LiveQuery<T extends object = JsonObject> {
  /**
   * Calls `observer` at once with the current value (`undefined` before the first result),
   * then with each new result (the Svelte store contract; React's `subscribe` too). Returns
   * the function that unsubscribes. Bound: it may be passed around unbound.
   */
  readonly subscribe: (observer: (value: QueryResult<T> | undefined) => void) => () => void;
  /** The current result, the same object until it changes (React's `getSnapshot`). Bound. */
  readonly getSnapshot: () => QueryResult<T> | undefined;
  /** The current result, as `getSnapshot()`. */
  readonly value: QueryResult<T> | undefined;
  /** The error of the last evaluation, `null` once one succeeds. */
  readonly error: TetherError | null;
  /**
   * Each new result, the current one first; a reader slower than the changes gets the
   * latest. An evaluation error rejects `next()` and ends it; `return()` (`break` in a
   * `for await`) ends it.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<QueryResult<T>>;
}

// ---- replica and scopes --------------------------------------------------------------------

export interface SyncOptions {
  remote: Remote;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  trigger?: Trigger;
  /** Changes asked for per page (default 1000). */
  pageSize?: number;
  /** Local edits pushed per request (default 500). */
  pushBatch?: number;
  /**
   * Most bytes of a push request's body (default 4 MiB); an edit larger than that alone is
   * journaled as `'too_large'`, never sent.
   */
  pushBytes?: number;
  /** Download the scope in full under a new generation. */
  full?: boolean;
  /**
   * Live sync: after catching up, the sync does not resolve but long-polls the server
   * (`wait=S`, protocol v1.1) and applies each change as it commits, pushing local edits
   * between waits, until `signal` aborts it; it then resolves with the session's one run
   * (trigger `'live'`). `true` waits 25 s per long-poll, a number sets the seconds (at most
   * 60). Needs an HTTP remote of a server with live pulls (`tether serve`); the scope's lock is
   * held meanwhile, so syncs of the same scope in other tabs wait for it to stop. A session
   * that fails with a retryable error (the server went away) is reported to `onError` and
   * started again after a backoff (5 s doubling, `Retry-After` honoured), each attempt a run of
   * its own, until `signal` aborts; a non-retryable error rejects. Aborted while waiting to
   * reconnect, it rejects with a `Cancelled` error whose `cause` is the failure.
   *
   * ```ts
   * const stop = new AbortController();
   * const session = replica.scope('org-1').sync({ remote, live: true, signal: stop.signal });
   * // ... later
   * stop.abort();
   * const report = await session;
   * ```
   */
  live?: boolean | number;
  /** Live sync only: called with each retryable failure before the session reconnects. */
  onError?: (error: TetherError) => void;
}

export interface BackgroundSyncOptions extends Omit<SyncOptions, 'trigger' | 'signal' | 'live'> {
  /** Time between syncs (default 15 minutes). */
  intervalMs?: number;
  /** Fraction of the interval added or removed at random (default 0.1). */
  jitter?: number;
  /** Sync right away (default true). */
  runNow?: boolean;
  onSync?: (report: SyncReport) => void;
  onError?: (error: TetherError) => void;
}

export declare class BackgroundSync {
  private constructor();
  readonly intervalMs: number;
  readonly jitter: number;
  /**
   * Whether it has not been stopped: by `stop()`, or by an `Auth` or `InvalidInput` error,
   * which every later round would repeat (reported to `onError` first). Network errors back
   * off (5 s doubling to 10 minutes, `Retry-After` honoured); other errors wait the interval.
   */
  readonly running: boolean;
  /** Consecutive network failures (0 after a success). */
  readonly failures: number;
  /** Stops the timer and cancels a sync in flight. */
  stop(): Promise<void>;
}

export declare class Replica {
  private constructor();
  /**
   * Opens (creating if needed) the IndexedDB replica `name`, with `indexes` declared and
   * built (see {@link IndexDeclarations}); a bad declaration rejects with `InvalidInput`.
   */
  static open(name: string, options?: OpenOptions): Promise<Replica>;
  /**
   * An in-memory replica (Node, VS Code extension hosts), optionally from a snapshot that
   * `exportSnapshot()` made (`null` or `undefined` opens an empty one), with `indexes`
   * declared and built over its records.
   */
  static openInMemory(options?: { name?: string; snapshot?: string | null; indexes?: IndexDeclarations }): Promise<Replica>;
  readonly name: string;
  /** `'sqlite'`: a file opened with the Node entry's `Replica.open(path)`. */
  readonly kind: 'indexeddb' | 'sqlite' | 'memory';
  /** The scope `id` (the same object for the same id). */
  scope(id: string): Scope;
  /** Ids of the scopes with stored state. */
  scopes(): Promise<string[]>;
  /** In-memory replicas only: the whole replica as JSON. */
  exportSnapshot(): string;
  /**
   * Calls `listener` after each committed change of any scope of the replica (see
   * {@link Scope.subscribe}). Returns the function that unsubscribes.
   */
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  /** Persistent-storage status and the quota estimate (browsers). */
  storage(): Promise<{ persisted: boolean; usage: number | null; quota: number | null }>;
  /** Stops background syncs, cancels syncs started here, closes the database. */
  close(): Promise<void>;
}

export declare class Scope {
  private constructor();
  readonly id: string;
  readonly replica: Replica;
  /** Name of the Web Lock held while syncing. */
  readonly lockName: string;
  get<T extends object = JsonObject>(collection: string, id: string): Promise<TetherRecord<T> | null>;
  /** Records ordered by id (UTF-8 byte order), after `after`, at most `limit` (default 1000). */
  list<T extends object = JsonObject>(
    collection: string,
    options?: { after?: string; limit?: number },
  ): Promise<TetherRecord<T>[]>;
  /** Visible records of a collection, or of the whole scope. */
  count(collection?: string): Promise<number>;
  /**
   * The number of records a query selects (its `limit` and `after` ignored).
   *
   * ```ts
   * const n = await scope.count('columns', { index: 'object_id', eq: 'obj_1' });
   * ```
   */
  count(collection: string, query: Query): Promise<number>;
  /**
   * One page of the records of `collection` a query selects on a declared index, in index
   * order; `cursor` continues it (see {@link Query}).
   */
  query<T extends object = JsonObject>(collection: string, query: Query): Promise<QueryResult<T>>;
  /**
   * Calls `listener` after each committed change of this scope: local edits, sync pages,
   * push answers, sweeps, repairs, and (IndexedDB) those made in other tabs. A listener runs
   * after the commit, so a read inside it sees the change. Returns the function that
   * unsubscribes; no call happens after it returned.
   *
   * ```ts
   * const off = scope.subscribe((e) => {
   *   for (const c of e.changes) console.log(e.origin, e.source, c.op, c.collection, c.id);
   * });
   * ```
   */
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  /**
   * Calls `listener` after each sync or verify run of this scope ends, whatever its outcome:
   * runs started from this page and, for IndexedDB, from other tabs on the same database. A
   * push the cloud accepted changes `status()` (pending edits, last sync) without a change
   * event; this is the moment to read it again. Returns the function that unsubscribes.
   *
   * ```ts
   * const off = scope.onSyncEnd(async () => render(await scope.status()));
   * ```
   */
  onSyncEnd(listener: () => void): () => void;
  /**
   * Calls `callback` with the query's first result, then each time a change of `collection`
   * (here, by a sync, or in another tab) changes the result: other records, other data, or
   * other pending flags. Changes are coalesced: a burst of them makes one re-query, a change
   * during a re-query one more after it. Returns the function that stops it; no callback
   * happens after it returned.
   *
   * ```ts
   * const stop = scope.watch('columns', { index: ['object_id', 'position'], eq: 'obj_1' }, (page) => {
   *   render(page.records);
   * });
   * ```
   */
  watch<T extends object = JsonObject>(
    collection: string,
    query: Query,
    callback: (result: QueryResult<T>) => void,
    options?: WatchOptions,
  ): () => void;
  /** The query as a {@link LiveQuery}: a Svelte store, a React external store, an async iterable. */
  live<T extends object = JsonObject>(collection: string, query: Query, options?: WatchOptions): LiveQuery<T>;
  /** Creates or replaces a record locally; the next sync pushes it. */
  put<T extends object = JsonObject>(collection: string, id: string, data: T): Promise<void>;
  /** Deletes a record locally; the next sync pushes it. */
  delete(collection: string, id: string): Promise<void>;
  status(options?: { maxAgeMs?: number }): Promise<ScopeStatus>;
  /** Latest runs, newest first (default 20). */
  history(options?: { limit?: number }): Promise<Run[]>;
  /** Aggregates over the runs of the last `days` (default 7). */
  stats(options?: { days?: number }): Promise<Stats>;
  conflicts(): Promise<Conflict[]>;
  dismissConflict(id: number): Promise<void>;
  /**
   * Makes the replica partial: it holds only what `list` selects (an empty list makes it
   * whole again). Waits for a sync of the scope to end, evicts what no subscription selects
   * any more (change events with `evicted: true`; records with pending edits stay until
   * pushed) and resolves to the number of records evicted; the next sync downloads what is
   * new, highest priority first. A bad subscription rejects with `InvalidInput` and changes
   * nothing. The subscriptions are stored: later syncs keep them.
   *
   * ```ts
   * await scope.setSubscriptions([
   *   { collection: 'repositories' },
   *   { collection: 'files', where: { repository: ['repo_1'] }, priority: 1 },
   * ]);
   * const sync = scope.sync({ remote });
   * await scope.whenReady(0); // the repositories are in: show them
   * await sync;
   * ```
   */
  setSubscriptions(list: SubscriptionSpec[]): Promise<number>;
  /** Adds a subscription (or changes its priority); the next sync downloads it. */
  addSubscription(sub: SubscriptionSpec): Promise<void>;
  /** Removes a subscription, evicting what no other selects; resolves to the number evicted. */
  removeSubscription(sub: SubscriptionSpec): Promise<number>;
  /** The held subscriptions in the order declared; empty for a whole scope. */
  subscriptions(): Promise<HeldSubscription[]>;
  /**
   * Whether every subscription of `priority` (default 0) or higher (a lower number) has been
   * downloaded to its end; for a whole scope, whether it has been synced.
   */
  isReady(priority?: number): Promise<boolean>;
  /**
   * Resolves when {@link Scope.isReady} is true: at once if it is, else when a sync (from here,
   * or another tab) reports the priority `ready` or ends with it ready. `signal` rejects it
   * with `Cancelled`.
   */
  whenReady(priority?: number, options?: { signal?: AbortSignal }): Promise<void>;
  /** One sync run, holding the scope's Web Lock (waits for another tab's run to end). */
  sync(options: SyncOptions): Promise<SyncReport>;
  /** Compares with the cloud's digest; `repair` fixes differing ranges in place. */
  verify(options: { remote: Remote; repair?: boolean; signal?: AbortSignal }): Promise<VerifyReport>;
  /**
   * What a sync would do now: pulls the pages and plans them against the replica, writing
   * nothing (no row, checkpoint or run). Local edits are counted, not pushed.
   *
   * ```ts
   * const p = await scope.preview({ remote });
   * console.log(`${p.counts.inserted} new, ${p.conflicts.length} local edits would lose`);
   * ```
   */
  preview(options: { remote: Remote; full?: boolean; pageSize?: number; signal?: AbortSignal }): Promise<Preview>;
  startBackgroundSync(options: BackgroundSyncOptions): BackgroundSync;
  /** Stops background sync and cancels this scope's syncs started from this page. */
  stop(): Promise<void>;
}
