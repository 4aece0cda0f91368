// Types of `tether-sync/channel`: one replica behind a message channel. The owner serves its
// replica on a port (`serveReplica`); the other side (a VS Code webview, a page whose replica
// lives in a Worker or SharedWorker) gets the Replica / Scope API with `connectReplica`, and
// loads no WebAssembly. Compiles with or without the DOM lib.
import type {
  ChangeEvent,
  Conflict,
  HeldSubscription,
  JsonObject,
  LiveQuery,
  Preview,
  Query,
  QueryResult,
  Remote,
  Run,
  Scope,
  ScopeStatus,
  Stats,
  SubscriptionSpec,
  SyncOptions,
  SyncReport,
  TetherError,
  TetherRecord,
  VerifyReport,
  WatchOptions,
} from './index.js';

export type { TetherError } from './index.js';

/** Whether `e` is a Tether error (errors from the owner arrive as such, `code` and `detail` kept). */
export declare function isTetherError(e: unknown): e is TetherError;

/** The `tether` field of every message of the channel, which tells them from the app's own. */
export declare const MARK: 'tether-replica';
/** The protocol version every message carries as `v`. */
export declare const VERSION: 1;

/**
 * Anything with `postMessage` and a message event: a `MessagePort` (`MessageChannel`), a
 * `Worker` or a worker's `self`, a `SharedWorker`'s `port`, a Node `worker_threads`
 * `MessagePort` or `Worker`, a VS Code `Webview` (`postMessage` + `onDidReceiveMessage`).
 */
export type ChannelPort =
  | {
      postMessage(message: any): unknown;
      onDidReceiveMessage(listener: (message: any) => any): { dispose(): any };
    }
  | {
      postMessage(message: any): unknown;
      on(event: 'message', listener: (message: any) => void): unknown;
      off(event: 'message', listener: (message: any) => void): unknown;
    }
  | {
      postMessage(message: any): unknown;
      addEventListener(type: 'message', listener: (event: { data: any }) => void): void;
      removeEventListener(type: 'message', listener: (event: { data: any }) => void): void;
      start?(): void;
    };

/** What `serveReplica` needs of a replica: the browser's or Node's `Replica`. */
export interface ServableReplica {
  readonly name: string;
  readonly kind: string;
  scope(id: string): Scope;
  scopes(): Promise<string[]>;
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  storage?(): Promise<{ persisted: boolean; usage: number | null; quota: number | null }>;
}

/** What the owner allows a connection. */
export interface ServeOptions {
  /**
   * Reads only: `put`, `delete`, `dismissConflict`, `setSubscriptions`, `addSubscription`,
   * `removeSubscription`, `sync`, `verify` and `preview` reject with an `InvalidInput` error
   * whose `detail` is `'ReadOnly'`.
   */
  readOnly?: boolean;
  /**
   * The only scopes the connections may use; others reject with `InvalidInput` /
   * `'ScopeNotAllowed'`, and `scopes()` and replica-wide events leave them out.
   */
  scopes?: string[];
  /**
   * The remote every sync, verify and preview of a connection uses (an object, or a function
   * of the scope id; a `FunctionRemote` and token functions work here, since they stay on the
   * owner). Given, a connection calls `scope.sync()` without credentials, and one that passes a
   * `remote` of its own is refused. Left out, a connection must pass an HTTP remote as plain
   * data (`{url, token}`, the token a string).
   */
  remote?: Remote | ((scope: string) => Remote | Promise<Remote>);
  /**
   * One connection at a time: a new one ends the earlier ones (what `serveWebview` sets: a
   * reloaded webview says no goodbye).
   */
  single?: boolean;
}

/** Serving a replica on a port. */
export interface ServeHandle {
  /** Stops serving: every connection is ended (its watches and subscriptions removed, its calls cancelled) and told. */
  close(): void;
  /** `close()`, so the handle is a VS Code `Disposable`. */
  dispose(): void;
  /** Open connections. */
  readonly connections: number;
  /** Watched queries, subscriptions and calls in flight that connections have on the owner. */
  readonly active: number;
}

/**
 * Serves `replica` (or the replica a promise resolves to) to the connections on `port`. Each
 * connection's watched queries run here and their results are posted to it; everything a
 * connection had is removed when it closes, its port closes, or the handle is closed.
 *
 * ```ts
 * // Node (an extension host): the replica in a file, a connection on a MessageChannel.
 * import { Replica } from 'tether-sync/node';
 * import { serveReplica } from 'tether-sync/channel';
 * const replica = await Replica.open('replica.db');
 * const { port1, port2 } = new MessageChannel();
 * const served = serveReplica(port1, replica, { readOnly: true, remote: { url, token } });
 * // ... hand port2 to the other side, later:
 * served.close();
 * ```
 */
export declare function serveReplica(
  port: ChannelPort,
  replica: ServableReplica | Promise<ServableReplica>,
  options?: ServeOptions,
): ServeHandle;

/** Options of a connection. */
export interface ConnectOptions {
  /**
   * Rejects a request (connecting included) the owner has not answered within this many
   * milliseconds with a `Network` error whose `detail` is `'Timeout'`. Syncs, verifies and
   * previews are left to their own time. Default: no limit; a request still rejects with a
   * `Storage` / `'Closed'` error once the port closes or the owner stops serving.
   */
  timeoutMs?: number;
}

/** An HTTP remote given as plain data, as it crosses the channel (no functions). */
export interface ChannelRemote {
  url: string;
  token?: string;
  retries?: number;
  timeoutMs?: number;
}

/** A sync through the channel: the options of {@link Scope.sync}, with a plain-data remote, or none when the owner has its own. */
export interface ChannelSyncOptions extends Omit<SyncOptions, 'remote'> {
  remote?: ChannelRemote;
}

/**
 * Connects to the replica an owner serves on `port`; resolves once the owner answered (with
 * the owner's error when its replica failed to open).
 *
 * ```ts
 * // A page whose replica lives in a Worker (see `tether-sync/worker`):
 * import { connectReplica } from 'tether-sync/channel';
 * const replica = await connectReplica(new Worker(new URL('./replica-worker.js', import.meta.url), { type: 'module' }));
 * const scope = replica.scope('org-1');
 * const stop = scope.watch('columns', { index: 'object_id', eq: 'obj_1' }, (page) => render(page.records));
 * await scope.sync(); // with the owner's remote
 * ```
 */
export declare function connectReplica(port: ChannelPort, options?: ConnectOptions): Promise<ConnectedReplica>;

/** A replica used through a channel: the Replica API, answered by its owner. */
export declare class ConnectedReplica {
  private constructor();
  readonly name: string;
  readonly kind: 'indexeddb' | 'sqlite' | 'memory';
  /** Whether the owner refuses writes and syncs from this connection. */
  readonly readOnly: boolean;
  /** Whether the owner syncs with its own remote (call `sync()` without one). */
  readonly ownRemote: boolean;
  /** Whether the connection is closed (by `close()`, its port, or the owner). */
  readonly closed: boolean;
  /** The scope `id` (the same object for the same id). */
  scope(id: string): ConnectedScope;
  /** Ids of the scopes with stored state that this connection may use. */
  scopes(): Promise<string[]>;
  /** The owner's persistent-storage status and quota estimate. */
  storage(): Promise<{ persisted: boolean; usage: number | null; quota: number | null }>;
  /** Calls `listener` after each committed change of any scope on the owner. Returns the unsubscribe. */
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  /** Not available through a channel: throws `InvalidInput`. */
  exportSnapshot(): never;
  /**
   * Ends the connection: the owner removes its watched queries and subscriptions and cancels
   * its calls; pending requests reject with `Storage` / `'Closed'`.
   */
  close(): Promise<void>;
}

/** One scope of a connected replica: the {@link Scope} API, run by the owner. */
export declare class ConnectedScope {
  private constructor();
  readonly id: string;
  readonly replica: ConnectedReplica;
  readonly lockName: string;
  get<T extends object = JsonObject>(collection: string, id: string): Promise<TetherRecord<T> | null>;
  list<T extends object = JsonObject>(
    collection: string,
    options?: { after?: string; limit?: number },
  ): Promise<TetherRecord<T>[]>;
  count(collection?: string): Promise<number>;
  count(collection: string, query: Query): Promise<number>;
  /**
   * One page of a query. `signal` rejects it with `Cancelled` at once (the owner's read
   * finishes and its answer is dropped).
   */
  query<T extends object = JsonObject>(
    collection: string,
    query: Query,
    options?: { signal?: AbortSignal },
  ): Promise<QueryResult<T>>;
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  /**
   * Calls `listener` each time a sync, verify or repair run of this scope ends on the owner,
   * whatever its outcome (a push the cloud accepted changes pending flags without a change
   * event). Returns the function that stops it.
   */
  onSyncEnd(listener: () => void): () => void;
  /**
   * A query the owner watches: it runs it again after each change of `collection` (an edit,
   * a sync) and posts each new result, which `callback` gets. Returns the stop.
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
  /** The watched query as a {@link LiveQuery} (Svelte store, React external store, async iterable). */
  live<T extends object = JsonObject>(collection: string, query: Query, options?: WatchOptions): LiveQuery<T>;
  put<T extends object = JsonObject>(collection: string, id: string, data: T): Promise<void>;
  delete(collection: string, id: string): Promise<void>;
  status(options?: { maxAgeMs?: number }): Promise<ScopeStatus>;
  history(options?: { limit?: number }): Promise<Run[]>;
  stats(options?: { days?: number }): Promise<Stats>;
  conflicts(): Promise<Conflict[]>;
  dismissConflict(id: number): Promise<void>;
  /** The owner's {@link Scope.setSubscriptions} (a write: refused on a read-only connection). */
  setSubscriptions(list: SubscriptionSpec[]): Promise<number>;
  addSubscription(sub: SubscriptionSpec): Promise<void>;
  removeSubscription(sub: SubscriptionSpec): Promise<number>;
  subscriptions(): Promise<HeldSubscription[]>;
  isReady(priority?: number): Promise<boolean>;
  /** Waits on the owner; `signal` stops the wait there and rejects with `Cancelled`. */
  whenReady(priority?: number, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * A sync run on the owner; `onProgress` gets its progress, `signal` cancels it there.
   *
   * ```ts
   * const stop = new AbortController();
   * const report = await scope.sync({ onProgress: (p) => show(p.percent), signal: stop.signal });
   * ```
   */
  sync(options?: ChannelSyncOptions): Promise<SyncReport>;
  /**
   * The {@link Scope.sync} signature, so that code written for a `Scope` (the React hooks)
   * takes a connected one: a remote with functions (a token function, a `FunctionRemote`)
   * rejects with `InvalidInput`, since functions do not cross the channel.
   */
  sync(options: SyncOptions): Promise<SyncReport>;
  verify(options?: { remote?: ChannelRemote; repair?: boolean; signal?: AbortSignal }): Promise<VerifyReport>;
  preview(options?: { remote?: ChannelRemote; full?: boolean; pageSize?: number; signal?: AbortSignal }): Promise<Preview>;
  /** Not available through a channel (start it on the owner): throws `InvalidInput`. */
  startBackgroundSync(options?: unknown): never;
  /** Nothing runs on this side: resolves at once. */
  stop(): Promise<void>;
}
