// Node entry (VS Code extension hosts, scripts): `Replica.open(path)` keeps the replica in a
// SQLite file through `node:sqlite` (Node >= 22.5), in the native replica's format; without
// it, `Replica.openInMemory({snapshot})` and persist `exportSnapshot()` wherever the host likes.
//
// It drives the Node build of the wasm (`tether_wasm_node_bg.wasm`: the browser build plus the
// node:sqlite store, which the browser build leaves out), read from disk: beside this file as
// published (`../pkg/`), or, when this module was bundled into CommonJS (esbuild
// `--platform=node --format=cjs`, where `import.meta` is empty), next to the bundle, then
// through the `tether-sync` package a `require` from the bundle's folder finds.
// docs/browser.md, "Bundlers", says where the file goes.
import * as glue from '../pkg/tether_wasm_node.js';
import { init, setGlue, setDefaultSource, tetherError, adopt, Replica as CoreReplica } from './core.js';

const WASM = 'tether_wasm_node_bg.wasm';

const loadWasm = async () => {
  const { readFile } = await import('node:fs/promises');
  const tried = [];
  for (const place of await wasmPlaces()) {
    tried.push(String(place));
    try {
      return await readFile(place);
    } catch (e) {
      if (e?.code !== 'ENOENT') throw tetherError('Storage', `could not read the Tether wasm at ${place}: ${e.message}`);
    }
  }
  throw tetherError(
    'InvalidInput',
    `the Tether wasm was not found (looked at: ${tried.join(', ') || 'nowhere: no import.meta.url and no __dirname'}). ` +
      `In a bundle, copy node_modules/tether-sync/pkg/${WASM} next to it, or call init(bytes) first`,
    'WasmNotFound',
  );
};
setGlue(glue);
setDefaultSource(loadWasm);

async function wasmPlaces() {
  const places = [];
  const here = import.meta.url;
  if (typeof here === 'string' && here) places.push(new URL(`../pkg/${WASM}`, here));
  const dir = typeof __dirname === 'string' ? __dirname : null;
  if (dir) {
    const path = await import('node:path');
    places.push(path.join(dir, WASM));
    const { createRequire } = await import('node:module');
    try {
      places.push(createRequire(path.join(dir, 'index.js')).resolve(`tether-sync/${WASM}`));
    } catch {
      // no tether-sync package reachable from the bundle's folder
    }
  }
  return places;
}

/** A local replica; in Node, `open(path)` is a SQLite file. */
export class Replica extends CoreReplica {
  /**
   * Opens (creating if needed) the replica file at `path` (a path or `file:` URL) through
   * `node:sqlite`: one SQLite transaction per store operation, WAL, the same file format as
   * the native `tether` CLI. Throws a `StorageError` on a Node without `node:sqlite`.
   * `indexes` declares the replica's indexes, as in the browser.
   */
  static async open(path, options = {}) {
    const file = path instanceof URL ? path : String(path);
    const DatabaseSync = await nodeSqlite();
    await init(loadWasm());
    let db;
    try {
      db = new DatabaseSync(file);
    } catch (e) {
      throw tetherError('Storage', `cannot open replica file ${file}: ${e?.message ?? e}`);
    }
    const identity = await fileIdentity(file);
    return adopt(Replica, glue.WasmReplica.openSqlite(String(file), db, identity), options);
  }
}

/**
 * The file's device and inode (`"dev:ino"`, as the native replica writes it), by which a copied
 * replica file is told from the original; undefined where the file system has none.
 */
async function fileIdentity(file) {
  try {
    const { statSync } = await import('node:fs');
    const s = statSync(file, { bigint: true });
    return s.ino ? `${s.dev}:${s.ino}` : undefined;
  } catch {
    return undefined;
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
