// Browser query benchmark (not a timed test), one Chromium run: initial sync of N column
// records (default 100,000) into IndexedDB without and with two indexes, and Dexie's bulkPut
// of the same records with the same two indexes; then each query against Tether
// (`scope.query`) and Dexie (`where(index)…toArray()`) in turn, p50 and p99: equality on the
// compound index (the 4 columns of one object), equality on `name` and a prefix of `name` in
// pages of 20 and 200; then a full scan of the collection, reads per record and the delay
// from a local edit's commit to a live query's callback. Prints a table and writes
// target/browser-query-bench.json. QUICK=1 stops after the queries (one sync, no scans).
//
//   node bench/query-bench.mjs [N] [queries]     (needs js/pkg built: ./build.sh)
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installPackedPackage, launch, JS_DIR, REPO } from '../test/fixtures/harness.mjs';
import { startServer } from '../test/fixtures/server.mjs';
import { Cloud } from '../test/fixtures/cloud.mjs';

const N = Number(process.argv[2]) || 100_000;
const QUERIES = Number(process.argv[3]) || 300;
const QUICK = process.env.QUICK === '1';
const PAGE = 1000;
const WORDS = ['id', 'customer_id', 'order_id', 'amount', 'created_at', 'status', 'name', 'email', 'order_items', 'updated_at'];

const cloud = new Cloud();
for (let i = 0; i < N; i++) {
  await cloud.put('columns', `col_${String(i).padStart(8, '0')}`, {
    object: `obj_${String(Math.floor(i / 4)).padStart(7, '0')}`,
    position: i % 4,
    // 250 names: 400 records each at 100,000, so an equality on `name` fills pages of 200.
    name: `${WORDS[(i * 7) % WORDS.length]}_${i % 250}`,
    data_type: ['int', 'text', 'timestamp'][i % 3],
  });
}
const pages = [];
for (let checkpoint = null; ;) {
  const page = await cloud.pull(checkpoint, PAGE);
  pages.push(page);
  if (!page.has_more) break;
  checkpoint = page.checkpoint;
}
const app = installPackedPackage();
const pagesDir = mkdtempSync(path.join(os.tmpdir(), 'tether-qbench-'));
writeFileSync(path.join(pagesDir, `columns-${N}.json`), JSON.stringify(pages));
const server = await startServer({
  '/node_modules/': path.join(app, 'node_modules'),
  '/dexie/': path.join(JS_DIR, 'node_modules/dexie'),
  '/pages/': pagesDir,
  '/bench/': path.join(JS_DIR, 'bench'),
});
const browser = await launch();
let result;
try {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.url}/bench/query-bench.html`);
  await page.waitForFunction(() => window.loaded === true);
  result = await page.evaluate(([n, p, q, quick]) => window.runBench(n, p, q, quick), [N, PAGE, QUERIES, QUICK]);
} finally {
  await browser.close();
  await server.close();
}
const f = (x) => x.toFixed(2);
const lines = [
  `browser queries, ${N} records in IndexedDB (Chromium), ${QUERIES} queries each`,
  `initial sync with 2 indexes: ${result.sync_indexed_per_s} rec/s` +
    (QUICK ? '' : ` (${f(result.sync_indexed_per_s / result.sync_plain_per_s)}x of without)`) +
    `; Dexie bulkPut, same indexes: ${result.dexie_bulkput_per_s} rec/s`,
  '',
  '| query | found | Tether p50 | p99 | Dexie p50 | p99 | Tether ÷ Dexie p50 | p99 | JSON.parse p50 |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...result.cases.map((c) => `| ${c.name} | ${c.found_each.toFixed(0)} | ${f(c.tether_p50)} ms | ${f(c.tether_p99)} ms | ` +
    `${f(c.dexie_p50)} ms | ${f(c.dexie_p99)} ms | ${f(c.tether_p50 / c.dexie_p50)} | ${f(c.tether_p99 / c.dexie_p99)} | ${f(c.parse_p50)} ms |`),
];
if (!QUICK) {
  const eq = result.cases[0].tether_p50;
  lines.push(
    '',
    `full scan for one object: p50 ${f(result.scan_p50)} ms (${f(result.scan_p50 / eq)}x the indexed p50)`,
    `reads per record: get ${f(result.get_us_per_record)} µs, query (pages of 1000) ${f(result.query_us_per_record)} µs`,
    `live query, commit -> callback: p50 ${f(result.live_p50)} ms, p99 ${f(result.live_p99)} ms`,
  );
}
console.log(lines.join('\n'));
mkdirSync(path.join(REPO, 'target'), { recursive: true });
writeFileSync(path.join(REPO, 'target/browser-query-bench.json'), JSON.stringify(result, null, 2));
writeFileSync(path.join(REPO, 'target/browser-query-bench.md'), lines.join('\n') + '\n');
