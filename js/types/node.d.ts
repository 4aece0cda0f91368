// `tether-sync` under Node (the `node` export condition, `require` included) and
// `tether-sync/node`: the same API, except that Node has no IndexedDB: `Replica.open(path)`
// keeps the replica in a SQLite file through `node:sqlite`, and `Replica.openInMemory` keeps
// it in memory, persisted by the host through snapshots. Compiles without the DOM lib
// (`lib: ["ES2022"]` and @types/node, as in an extension's tsconfig).
import type { ChangeEvent, IndexDeclarations, OpenOptions, Scope } from './index.js';

export * from './index.js';

/**
 * A local replica in Node: a SQLite file ({@link Replica.open}), or in memory, persisted by the
 * host with `exportSnapshot()`.
 */
export declare class Replica {
  private constructor();
  /**
   * Opens (creating if needed) the SQLite replica file at `path` through `node:sqlite` (Node
   * >= 22.13, or 22.5 with `--experimental-sqlite`): one SQLite transaction per store
   * operation, WAL, the same file format as the native `tether` CLI, so `tether status --db
   * FILE` reads it. On a Node without `node:sqlite` it rejects with a `StorageError` naming the
   * Node version; `Replica.openInMemory` still works there. `indexes` declares the replica's
   * indexes, as in the browser.
   *
   * ```ts
   * const replica = await Replica.open('/path/to/replica.db', { indexes: { columns: ['object_id'] } });
   * replica.kind; // 'sqlite'
   * ```
   */
  static open(path: string | URL, options?: OpenOptions): Promise<Replica>;
  /**
   * An in-memory replica, optionally from a snapshot that `exportSnapshot()` made (`null` or
   * `undefined` opens an empty one), with `indexes` declared and built over its records.
   */
  static openInMemory(options?: { name?: string; snapshot?: string | null; indexes?: IndexDeclarations }): Promise<Replica>;
  readonly name: string;
  readonly kind: 'memory' | 'sqlite';
  /** The scope `id` (the same object for the same id). */
  scope(id: string): Scope;
  /** Ids of the scopes with stored state. */
  scopes(): Promise<string[]>;
  /** The whole replica as JSON, for the host to persist (e.g. in `context.globalState`). */
  exportSnapshot(): string;
  /**
   * Calls `listener` after each committed change of any scope made through this replica
   * object (Node has no other tabs). Returns the function that unsubscribes.
   */
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  /** Stops background syncs, cancels syncs started here. */
  close(): Promise<void>;
}
