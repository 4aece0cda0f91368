// `tether-sync` under Node (the `node` export condition, `require` included) and
// `tether-sync/node`: the same API, except that Node has no IndexedDB, so a replica is opened
// in memory and persisted by the host through snapshots. Compiles without the DOM lib
// (`lib: ["ES2022"]` and @types/node, as in an extension's tsconfig).
import type { Scope } from './index.js';

export * from './index.js';

/** A local replica in Node: in memory, persisted by the host with `exportSnapshot()`. */
export declare class Replica {
  private constructor();
  /**
   * An in-memory replica, optionally from a snapshot that `exportSnapshot()` made; `null` or
   * `undefined` opens an empty one.
   */
  static openInMemory(options?: { name?: string; snapshot?: string | null }): Promise<Replica>;
  // File-backed `Replica.open(path)` (node:sqlite) is declared with the Node store.
  readonly name: string;
  readonly kind: 'memory';
  /** The scope `id` (the same object for the same id). */
  scope(id: string): Scope;
  /** Ids of the scopes with stored state. */
  scopes(): Promise<string[]>;
  /** The whole replica as JSON, for the host to persist (e.g. in `context.globalState`). */
  exportSnapshot(): string;
  /** Stops background syncs, cancels syncs started here. */
  close(): Promise<void>;
}
