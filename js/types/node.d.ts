// `tether-sync/node` (and `tether-sync` under the `node` condition): the same API, and
// `Replica.open(path)` keeps the replica in a SQLite file through `node:sqlite`.
import type { Replica as BaseReplica } from './index.js';

export * from './index.js';

/**
 * A local replica. In Node, {@link Replica.open} opens (creating if needed) a SQLite replica
 * file through `node:sqlite` (Node >= 22.13, or 22.5 with `--experimental-sqlite`): one SQLite
 * transaction per store operation, WAL, the same file format as the native `tether` CLI, so
 * `tether status --db FILE` reads it. On a Node without `node:sqlite` it rejects with a
 * `StorageError` naming the Node version; `Replica.openInMemory` still works there.
 *
 * ```ts
 * const replica = await Replica.open('/path/to/replica.db');
 * replica.kind; // 'sqlite'
 * ```
 */
export declare const Replica: Omit<typeof BaseReplica, 'open' | 'prototype'> & {
  readonly prototype: BaseReplica;
  /** Opens (creating if needed) the SQLite replica file at `path`. */
  open(path: string | URL): Promise<BaseReplica>;
};
export type Replica = BaseReplica;
