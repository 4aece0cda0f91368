// Node entry (VS Code extension hosts, scripts): `Replica.open(path)` keeps the replica in a
// SQLite file through `node:sqlite` (Node >= 22.5), in the native replica's format; without
// it, `Replica.openInMemory({snapshot})` and persist `exportSnapshot()` wherever the host likes.
import { init, setDefaultSource, tetherError, Replica as CoreReplica } from './core.js';
import { WasmReplica } from '../pkg/tether_wasm.js';

const loadWasm = async () => {
  const { readFile } = await import('node:fs/promises');
  return readFile(new URL('../pkg/tether_wasm_bg.wasm', import.meta.url));
};
setDefaultSource(loadWasm);

/** A local replica; in Node, `open(path)` is a SQLite file. */
export class Replica extends CoreReplica {
  /**
   * Opens (creating if needed) the replica file at `path` (a path or `file:` URL) through
   * `node:sqlite`: one SQLite transaction per store operation, WAL, the same file format as
   * the native `tether` CLI. Throws a `StorageError` on a Node without `node:sqlite`.
   */
  static async open(path) {
    const file = path instanceof URL ? path : String(path);
    const DatabaseSync = await nodeSqlite();
    await init(loadWasm());
    let db;
    try {
      db = new DatabaseSync(file);
    } catch (e) {
      throw tetherError('Storage', `cannot open replica file ${file}: ${e?.message ?? e}`);
    }
    return new Replica(WasmReplica.openSqlite(String(file), db));
  }
}

async function nodeSqlite() {
  try {
    return (await import('node:sqlite')).DatabaseSync;
  } catch (e) {
    throw tetherError(
      'Storage',
      `Replica.open needs node:sqlite, which this Node (${process.version}) does not have ` +
        `(${e?.code ?? e?.message ?? e}): use Node 22.13 or later (22.5 to 22.12 with ` +
        '--experimental-sqlite), or keep the replica in memory with Replica.openInMemory() ' +
        'and persist exportSnapshot() yourself',
    );
  }
}

export { init, Scope, BackgroundSync, isTetherError, ERROR_CODES } from './core.js';
