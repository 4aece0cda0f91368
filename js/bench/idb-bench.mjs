// Browser benchmark (not a timed test): initial sync of generated records into IndexedDB
// through the whole engine path, against raw IndexedDB puts of the same pages (one transaction
// per page) in the same Chromium run. Prints records/s and the ratio, and the gzipped wasm size.
// With the tether CLI built (target/release/tether, or TETHER_BIN), also the sync of the same
// number of records over fetch from a `tether serve` on loopback (default options, gzip).
//
//   node bench/idb-bench.mjs [sizes...]     (default: 10000 100000; needs js/pkg built)
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServe } from '../test/fixtures/serve-process.mjs';
import { existsSync } from 'node:fs';
import { installPackedPackage, launch, JS_DIR, REPO } from '../test/fixtures/harness.mjs';
import { startServer } from '../test/fixtures/server.mjs';
import { generatePages } from '../test/fixtures/cloud.mjs';

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const SIZES = sizes.length ? sizes : [10_000, 100_000];
const PAGE = 1000;
const TOKEN = 'bench';

const app = installPackedPackage();
const pagesDir = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-'));
for (const n of SIZES) {
  const { pages } = await generatePages(n, PAGE);
  writeFileSync(path.join(pagesDir, `${n}.json`), JSON.stringify(pages));
}
const server = await startServer({
  '/node_modules/': path.join(app, 'node_modules'),
  '/pages/': pagesDir,
  '/bench/': path.join(JS_DIR, 'bench'),
});
const browser = await launch();
const results = [];
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${server.url}/bench/bench.html`);
  await page.waitForFunction(() => window.loaded === true);
  for (const n of SIZES) {
    const r = await page.evaluate(([n, p]) => window.runBench(n, p), [n, PAGE]);
    const rawRate = r.raw.records / (r.raw.ms / 1000);
    const engRate = r.engine.records / (r.engine.ms / 1000);
    results.push({ n, rawPerSec: Math.round(rawRate), enginePerSec: Math.round(engRate), ratio: +(engRate / rawRate).toFixed(2), rawMs: Math.round(r.raw.ms), engineMs: Math.round(r.engine.ms) });
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
}
const wasm = readFileSync(path.join(JS_DIR, 'pkg/tether_wasm_bg.wasm'));
const summary = { results, wasmBytes: wasm.length, wasmGzipBytes: gzipSync(wasm, { level: 9 }).length };
console.table(results);
console.log(`wasm: ${summary.wasmBytes} bytes, ${summary.wasmGzipBytes} bytes gzipped`);
mkdirSync(path.join(REPO, 'target'), { recursive: true });
writeFileSync(path.join(REPO, 'target/browser-bench.json'), JSON.stringify(summary, null, 2));

/** `tether serve` on loopback for the page's origin. */
async function startCloud(bin, origin) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-cloud-'));
  return startServe(bin, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN,
    '--cors-origin', origin]);
}
