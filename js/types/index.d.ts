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
  | 'Corrupt';

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
export type Phase = 'push' | 'pull' | 'apply' | 'verify' | 'sweep';

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
   * Why the cloud can never accept the edit (`'too_large'`, `'invalid_data'`); absent for an
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

/** A pull page (wire format, DESIGN.md "Sync protocol"). */
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
 */
export interface FunctionRemote {
  pull(args: {
    scope: string;
    checkpoint: string | null;
    limit: number;
    signal?: AbortSignal;
  }): WirePage | { reset: true } | Promise<WirePage | { reset: true }>;
  push?(args: {
    scope: string;
    mutations: WireMutation[];
    signal?: AbortSignal;
  }): Promise<{ results: WireMutationResult[] }>;
  status?(args: { scope: string; signal?: AbortSignal }): Promise<{
    count: number;
    digest: string;
    version: number;
    updated_at?: string | null;
  }>;
}

export type Remote = HttpRemote | FunctionRemote;

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
   * held meanwhile, so syncs of the same scope in other tabs wait for it to stop.
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
  /** Whether it has not been stopped. */
  readonly running: boolean;
  /** Consecutive network failures (0 after a success). */
  readonly failures: number;
  /** Stops the timer and cancels a sync in flight. */
  stop(): Promise<void>;
}

export declare class Replica {
  private constructor();
  /** Opens (creating if needed) the IndexedDB replica `name`. */
  static open(name: string): Promise<Replica>;
  /**
   * An in-memory replica (Node, VS Code extension hosts), optionally from a snapshot that
   * `exportSnapshot()` made; `null` or `undefined` opens an empty one.
   */
  static openInMemory(options?: { name?: string; snapshot?: string | null }): Promise<Replica>;
  readonly name: string;
  /** `'sqlite'`: a file opened with the Node entry's `Replica.open(path)`. */
  readonly kind: 'indexeddb' | 'sqlite' | 'memory';
  /** The scope `id` (the same object for the same id). */
  scope(id: string): Scope;
  /** Ids of the scopes with stored state. */
  scopes(): Promise<string[]>;
  /** In-memory replicas only: the whole replica as JSON. */
  exportSnapshot(): string;
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
