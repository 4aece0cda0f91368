// Browser benchmark (not a timed test): initial sync of generated records into IndexedDB
// through the whole engine path, against raw IndexedDB puts of the same pages (one transaction
// per page) in the same Chromium run. Prints records/s and the ratio, and the gzipped wasm size.
// Each size also runs in worker mode (the replica and its sync in a dedicated Worker, the page
// connected through `tether-sync/channel`), and for both modes the page's long tasks during the
// sync are reported (count over 50 ms, longest). On the largest size, a delta (1,000 updates and
// 200 deletes, as the peer harness's) through the engine, against blind raw puts and raw
// compare-then-put (reads every key first, as an engine must), then a full re-download of the
// base over the rows (the remote answers reset) against compare-then-put of the same pages.
// With the tether CLI built (target/release/tether, or TETHER_BIN), also the sync of the same
// number of records over fetch from a `tether serve` on loopback (default options, gzip).
//
//   node bench/idb-bench.mjs [sizes...]     (default: 10000 100000; needs js/pkg built)
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServe } from '../test/fixtures/serve-process.mjs';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { installPackedPackage, JS_DIR, REPO } from '../test/fixtures/harness.mjs';
import { startServer } from '../test/fixtures/server.mjs';
import { generatePages } from '../test/fixtures/cloud.mjs';

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const SIZES = sizes.length ? sizes : [10_000, 100_000];
const PAGE = 1000;
const DELTA = { updates: 1000, deletes: 200 };
const TOKEN = 'bench';

const app = installPackedPackage();
const pagesDir = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-'));
const DELTA_BASE = Math.max(...SIZES);
for (const n of SIZES) {
  const { pages, cloud } = await generatePages(n, PAGE);
  writeFileSync(path.join(pagesDir, `${n}.json`), JSON.stringify(pages));
  if (n === DELTA_BASE) writeFileSync(path.join(pagesDir, `delta-${n}.json`), JSON.stringify(await deltaPages(cloud, pages, n)));
}
const server = await startServer({
  '/node_modules/': path.join(app, 'node_modules'),
  '/pages/': pagesDir,
  '/bench/': path.join(JS_DIR, 'bench'),
});
const rate = (r) => Math.round(r.records / (r.ms / 1000));
// A persistent context, so that IndexedDB is on disk as in a user's browser (a fresh context is
// off the record: IndexedDB in memory, which makes the raw puts cheaper than any real one).
const profile = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-profile-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROME_BIN || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-gpu'],
});
const results = [];
let delta = null;
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/bench/bench.html`);
  await page.waitForFunction(() => window.loaded === true);
  for (const n of SIZES) {
    const r = await page.evaluate(([n, p, d]) => window.runBench(n, p, d), [n, PAGE, n === DELTA_BASE]);
    results.push({
      n,
      rawPerSec: rate(r.raw),
      enginePerSec: rate(r.engine),
      ratio: +(rate(r.engine) / rate(r.raw)).toFixed(2),
      workerPerSec: rate(r.worker),
      workerRatio: +(rate(r.worker) / rate(r.raw)).toFixed(2),
      rawMs: Math.round(r.raw.ms),
      engineMs: Math.round(r.engine.ms),
      workerMs: Math.round(r.worker.ms),
      pageLongTasks: r.engine.longTasks,
      pageLongestMs: r.engine.longestTaskMs,
      workerLongTasks: r.worker.longTasks,
      workerLongestMs: r.worker.longestTaskMs,
    });
    if (r.delta) {
      const d = r.delta;
      delta = {
        base: n,
        ...DELTA,
        rawPutMs: Math.round(d.raw.ms),
        compareMs: Math.round(d.compare.ms),
        engineMs: Math.round(d.engine.ms),
        engineOverCompare: +(d.engine.ms / d.compare.ms).toFixed(2),
        engineOverRawPut: +(d.engine.ms / d.raw.ms).toFixed(2),
        resyncCompareMs: Math.round(r.resync.compare.ms),
        resyncEngineMs: Math.round(r.resync.engine.ms),
        resyncOverCompare: +(r.resync.engine.ms / r.resync.compare.ms).toFixed(2),
      };
    }
  }
  const bin = process.env.TETHER_BIN ?? path.join(REPO, 'target/release/tether');
  if (existsSync(bin)) {
    const cloud = await startCloud(bin, server.url);
    try {
      for (const row of results) {
        const scope = `bench-${row.n}`;
        execFileSync(bin, ['seed', '--remote', cloud.url, '--token', TOKEN, '--scope', scope, '--records', String(row.n)], { stdio: 'ignore' });
        const s = await page.evaluate(([u, t, sc, n]) => window.runServe(u, t, sc, n), [cloud.url, TOKEN, scope, row.n]);
        row.servePerSec = Math.round(s.records / (s.ms / 1000));
        row.serveRatio = +(row.servePerSec / row.rawPerSec).toFixed(2);
      }
    } finally {
      cloud.child.kill('SIGINT');
    }
  } else {
    console.log(`no ${bin}: the sync over fetch from tether serve is not measured (cargo build --release -p tether-cli --bin tether)`);
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
}
const wasm = readFileSync(path.join(JS_DIR, 'pkg/tether_wasm_bg.wasm'));
const summary = { results, delta, wasmBytes: wasm.length, wasmGzipBytes: gzipSync(wasm, { level: 9 }).length };
console.table(results.map(({ servePerSec, serveRatio, ...r }) => r));
if (results.some((r) => r.servePerSec)) console.table(results.map(({ n, rawPerSec, servePerSec, serveRatio }) => ({ n, rawPerSec, servePerSec, serveRatio })));
for (const r of results) {
  console.log(`longest page task during ${r.n}: ${r.pageLongestMs} ms on the main-thread path (${r.pageLongTasks} over 50 ms), ` +
    `${r.workerLongestMs} ms in worker mode (${r.workerLongTasks} over 50 ms)`);
}
if (delta) console.table([delta]);
console.log(`wasm: ${summary.wasmBytes} bytes, ${summary.wasmGzipBytes} bytes gzipped`);
mkdirSync(path.join(REPO, 'target'), { recursive: true });
writeFileSync(path.join(REPO, 'target/browser-bench.json'), JSON.stringify(summary, null, 2));

/**
 * The pages of a delta on the `n` records of `cloud` (whose initial pages are `pages`):
 * `DELTA.updates` records get new data and `DELTA.deletes` others are deleted, spread over the
 * whole key range (every k-th record), pulled from the base's last checkpoint.
 */
async function deltaPages(cloud, pages, n) {
  const touched = DELTA.updates + DELTA.deletes;
  const step = Math.max(1, Math.floor(n / touched));
  const records = pages.flatMap((p) => p.changes);
  for (let j = 0; j < touched; j++) {
    const r = records[(j * step) % n];
    if (j < DELTA.updates) await cloud.put(r.collection, r.id, { ...r.data, rows: r.data.rows + 1, owner: 'team-delta' });
    else await cloud.delete(r.collection, r.id);
  }
  const out = [];
  let checkpoint = pages[pages.length - 1].checkpoint;
  for (;;) {
    const page = await cloud.pull(checkpoint, PAGE);
    out.push(page);
    if (!page.has_more) return out;
    checkpoint = page.checkpoint;
  }
}

/** `tether serve` on loopback for the page's origin. */
async function startCloud(bin, origin) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-cloud-'));
  return startServe(bin, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN,
    '--cors-origin', origin]);
}
