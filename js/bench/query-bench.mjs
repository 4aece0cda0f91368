// Browser query benchmark (not a timed test), one Chromium run: initial sync of N column
// records (default 100,000) into IndexedDB without and with two indexes; an indexed equality
// query (the columns of one object, in position order) and a prefix query (20 names), p50 and
// p99, against a full scan of the collection, and against Dexie's where().equals() and
// startsWith() on the same records; the delay from a local edit's commit to a live query's
// callback. Writes target/browser-query-bench.json.
//
//   node bench/query-bench.mjs [N] [queries]     (needs js/pkg built: ./build.sh)
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installPackedPackage, launch, JS_DIR, REPO } from '../test/fixtures/harness.mjs';
import { startServer } from '../test/fixtures/server.mjs';
import { Cloud } from '../test/fixtures/cloud.mjs';

const N = Number(process.argv[2]) || 100_000;
const QUERIES = Number(process.argv[3]) || 500;
const PAGE = 1000;
const WORDS = ['id', 'customer_id', 'order_id', 'amount', 'created_at', 'status', 'name', 'email', 'order_items', 'updated_at'];

const cloud = new Cloud();
for (let i = 0; i < N; i++) {
  await cloud.put('columns', `col_${String(i).padStart(8, '0')}`, {
    object: `obj_${String(Math.floor(i / 4)).padStart(7, '0')}`,
    position: i % 4,
    name: `${WORDS[(i * 7) % WORDS.length]}_${i % 1000}`,
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
  result = await page.evaluate(([n, p, q]) => window.runBench(n, p, q), [N, PAGE, QUERIES]);
} finally {
  await browser.close();
  await server.close();
}
const f = (x) => x.toFixed(2);
console.log(`browser queries, ${N} records in IndexedDB (Chromium), ${QUERIES} queries each`);
console.log(`initial sync: ${result.sync_plain_per_s} rec/s without indexes, ${result.sync_indexed_per_s} with 2 (${f(result.sync_indexed_per_s / result.sync_plain_per_s)}x); Dexie bulkPut with 3 indexes ${result.dexie_bulkput_per_s} rec/s`);
console.log(`equality (${f(result.eq_found_each)} each): tether p50 ${f(result.eq_p50)} ms, p99 ${f(result.eq_p99)} ms; Dexie where().equals() p50 ${f(result.dexie_eq_p50)} ms, p99 ${f(result.dexie_eq_p99)} ms`);
console.log(`prefix (20): tether p50 ${f(result.prefix_p50)} ms, p99 ${f(result.prefix_p99)} ms; Dexie startsWith() p50 ${f(result.dexie_prefix_p50)} ms, p99 ${f(result.dexie_prefix_p99)} ms`);
console.log(`full scan for one object: p50 ${f(result.scan_p50)} ms (${f(result.scan_p50 / result.eq_p50)}x the indexed p50)`);
console.log(`reads per record: get ${f(result.get_us_per_record)} µs, query (pages of 1000) ${f(result.query_us_per_record)} µs`);
console.log(`live query, commit -> callback: p50 ${f(result.live_p50)} ms, p99 ${f(result.live_p99)} ms`);
mkdirSync(path.join(REPO, 'target'), { recursive: true });
writeFileSync(path.join(REPO, 'target/browser-query-bench.json'), JSON.stringify(result, null, 2));
