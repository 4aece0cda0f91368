// Initial sync of N generated records (default 100,000; TETHER_BENCH_RECORDS=N), not a timed
// test, in two parts:
//
// 1. over HTTP from one `tether serve` on loopback into a replica file: through the Node entry
//    (`Replica.open`, the engine as wasm over node:sqlite) and through the native CLI
//    (`tether sync`, rusqlite), alternately, twice each; the best rate of each and their ratio.
//    Both sides pay the same server and HTTP costs.
// 2. the store path alone: pages generated beforehand, served by a function remote, into a
//    node:sqlite replica file and into the in-memory store, against the ceiling of raw
//    node:sqlite upserts of the same pages (one transaction per page, a table of the same
//    shape): the Node counterpart of `cargo bench -p tether-native --bench sync`.
//
// Needs a Node with node:sqlite and a release build of the CLI
// (cargo build --release -p tether-cli --bin tether), or TETHER_BIN; TETHER_BENCH_PARTS=store
// runs the second part alone (no CLI needed), ROUNDS times (default 2; the best of each side).
//   "$TETHER_NODE24" js/bench/node-sqlite-bench.mjs
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { Replica } from '../src/node.js';
import { generatePages } from '../test/fixtures/cloud.mjs';
import { startServe } from '../test/fixtures/serve-process.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.TETHER_BIN ?? path.join(REPO, 'target/release/tether');
const HTTP = process.env.TETHER_BENCH_PARTS !== 'store';
const ROUNDS = Number(process.env.ROUNDS ?? 2);
if (HTTP && !existsSync(BIN)) throw new Error(`no ${BIN}: cargo build --release -p tether-cli --bin tether`);
const N = Number(process.env.TETHER_BENCH_RECORDS ?? 100_000);
const PAGE = 1000;
const TOKEN = 'bench';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-node-bench-'));

if (HTTP) await overHttp();

async function overHttp() {
  const { url, child: server } = await startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN]);

  try {
    execFileSync(BIN, ['seed', '--remote', url, '--token', TOKEN, '--scope', 'bench', '--records', String(N)], { stdio: 'ignore' });
    const best = { node: 0, native: 0 };
    for (let round = 0; round < 2; round++) {
      const nativeFile = path.join(dir, `native-${round}.db`);
      let t = performance.now();
      execFileSync(BIN, ['sync', '--remote', url, '--token', TOKEN, '--db', nativeFile, '--scope', 'bench',
        '--page-size', String(PAGE)], { stdio: 'ignore' });
      const native = N / ((performance.now() - t) / 1000);

      const replica = await Replica.open(path.join(dir, `node-${round}.db`));
      t = performance.now();
      const report = await replica.scope('bench').sync({ remote: { url, token: TOKEN }, pageSize: PAGE });
      const node = N / ((performance.now() - t) / 1000);
      await replica.close();
      if (report.run.inserted !== N) throw new Error(`node sync inserted ${report.run.inserted}, expected ${N}`);
      console.log(`round ${round + 1}: native ${Math.round(native)} rec/s, node:sqlite ${Math.round(node)} rec/s`);
      best.node = Math.max(best.node, node);
      best.native = Math.max(best.native, native);
    }
    console.log(`initial sync of ${N} records over HTTP (${process.version}, ${os.cpus().length} cores): ` +
      `native ${Math.round(best.native)} rec/s, node:sqlite ${Math.round(best.node)} rec/s ` +
      `(native / node = ${(best.native / best.node).toFixed(2)})`);
  } finally {
    server.kill('SIGINT');
}
}

try {
  const { pages } = await generatePages(N, PAGE);
  // Rates per second of wall time and per CPU-second of this process: on a loaded machine the
  // wall-time ratio swings with the scheduler, the CPU one much less.
  const best = { raw: [0, 0], sqlite: [0, 0], memory: [0, 0] };
  const keep = (name, rates) => (best[name] = best[name].map((b, i) => Math.max(b, rates[i])));
  for (let round = 0; round < ROUNDS; round++) {
    keep('raw', rawUpserts(path.join(dir, `raw-${round}.db`), pages));
    keep('sqlite', await engine(await Replica.open(path.join(dir, `engine-${round}.db`)), pages));
    keep('memory', await engine(await Replica.openInMemory(), pages));
  }
  const line = (i) => `raw node:sqlite upsert ${Math.round(best.raw[i])} rec/s, ` +
    `engine over node:sqlite ${Math.round(best.sqlite[i])} rec/s (ratio ${(best.sqlite[i] / best.raw[i]).toFixed(2)}), ` +
    `engine in memory ${Math.round(best.memory[i])} rec/s`;
  console.log(`store path, ${N} records in pages of ${PAGE}: ${line(0)}`);
  console.log(`  per CPU-second of this process: ${line(1)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** Records per second of wall time and per CPU-second of this process, since `start`. */
function rates(n, start) {
  const cpu = process.cpuUsage(start.cpu);
  return [n / ((performance.now() - start.wall) / 1000), n / ((cpu.user + cpu.system) / 1e6)];
}

function started() {
  return { wall: performance.now(), cpu: process.cpuUsage() };
}

/** The ceiling: the pages' records upserted as they came, one transaction per page. */
function rawUpserts(file, pages) {
  const db = new DatabaseSync(file);
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
    CREATE TABLE records (collection TEXT NOT NULL, id TEXT NOT NULL, data TEXT, version INTEGER NOT NULL,
      updated_at TEXT NOT NULL, hash BLOB, PRIMARY KEY (collection, id)) WITHOUT ROWID;`);
  const put = db.prepare(`INSERT INTO records (collection, id, data, version, updated_at, hash)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,
    version = excluded.version, updated_at = excluded.updated_at, hash = excluded.hash`);
  const t = started();
  let n = 0;
  for (const page of pages) {
    db.exec('BEGIN');
    for (const c of page.changes) {
      put.run(c.collection, c.id, JSON.stringify(c.data), BigInt(c.version), c.updated_at, Buffer.from(c.hash, 'hex'));
    }
    db.exec('COMMIT');
    n += page.changes.length;
  }
  const rate = rates(n, t);
  db.close();
  return rate;
}

/** The whole engine path from a function remote serving the pages. */
async function engine(replica, pages) {
  const next = new Map([[null, pages[0]]]);
  pages.forEach((p, i) => next.set(p.checkpoint, pages[i + 1]));
  const t = started();
  const report = await replica.scope('bench').sync({ remote: { pull: async ({ checkpoint }) => next.get(checkpoint) }, pageSize: PAGE });
  const rate = rates(report.run.inserted, t);
  await replica.close();
  if (report.run.inserted !== N) throw new Error(`engine sync inserted ${report.run.inserted}, expected ${N}`);
  return rate;
}
