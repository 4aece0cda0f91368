// Initial sync of N generated records (default 100,000; TETHER_BENCH_RECORDS=N) from one
// `tether serve` over loopback HTTP, into a replica file: through the Node entry
// (`Replica.open`, the engine as wasm over node:sqlite) and through the native CLI
// (`tether sync`, rusqlite), alternately, twice each; prints the best rate of each and their
// ratio. Both sides pay the same server and HTTP costs. Needs a Node with node:sqlite and a
// release build of the CLI (cargo build --release -p tether-cli --bin tether), or TETHER_BIN.
//   "$TETHER_NODE24" js/bench/node-sqlite-bench.mjs
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Replica } from '../src/node.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.TETHER_BIN ?? path.join(REPO, 'target/release/tether');
if (!existsSync(BIN)) throw new Error(`no ${BIN}: cargo build --release -p tether-cli --bin tether`);
const N = Number(process.env.TETHER_BENCH_RECORDS ?? 100_000);
const PAGE = 1000;
const TOKEN = 'bench';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-node-bench-'));

const server = spawn(BIN, ['serve', '--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN],
  { stdio: ['ignore', 'ignore', 'pipe'] });
const url = await new Promise((resolve, reject) => {
  let err = '';
  server.stderr.on('data', (d) => {
    err += d;
    const m = err.match(/listening on (http:\/\/[\d.:]+)/);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`tether serve exited with ${code}: ${err}`)));
});

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
  rmSync(dir, { recursive: true, force: true });
}
