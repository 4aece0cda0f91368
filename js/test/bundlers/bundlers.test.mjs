// The packed package in every build, unmodified: a tiny app (app/) built from the `npm pack`
// tarball with Vite 6, Vite 8, webpack 5 (production and development) and esbuild, and served
// by Vite 6's and Vite 8's dev servers, run in headless Chromium against a real `tether serve` (initial sync, list, reload, incremental sync
// after a server-side change); and in Node 20: ES `import`, CommonJS `require`, and an
// extension bundled by esbuild into CommonJS. Run from js/: node --test test/bundlers/
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, serve, JS_DIR, REPO } from '../fixtures/harness.mjs';
import { startServe } from '../fixtures/serve-process.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const APP = path.join(HERE, 'app');
const MODULES = path.join(HERE, 'node_modules');
const BUILDS = path.join(MODULES, '.tether-builds'); // gitignored, like the bundlers themselves
const BIN = process.env.TETHER_BIN ?? path.join(REPO, 'target/debug/tether');
const TOKEN = 'secret';
const SCOPE = 'org-1';
const RECORDS = 500;
/** The goal for the connecting side of a replica channel (issue 21), minified and gzipped. */
const CONNECT_GZIP_BUDGET = 20 * 1024;

let tmp;
let cloud; // {url, child}
let web; // the harness server: /apps/ static, /v1 proxied to tether serve
let browser;

test.before(async () => {
  assert.ok(existsSync(BIN), `the tether CLI is missing at ${BIN} (cargo build -p tether-cli --bin tether)`);
  assert.ok(existsSync(path.join(MODULES, 'webpack')), 'bundlers not installed: npm ci in js/test/bundlers');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'tether-bundlers-'));
  // Unpack the tarball as npm would install it (the package has no dependencies).
  execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: JS_DIR, stdio: 'pipe' });
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  const pkg = path.join(MODULES, 'tether-sync');
  rmSync(pkg, { recursive: true, force: true });
  mkdirSync(pkg);
  execFileSync('tar', ['-xzf', path.join(tmp, tarball), '-C', pkg, '--strip-components=1']);
  rmSync(BUILDS, { recursive: true, force: true });
  mkdirSync(BUILDS, { recursive: true });

  cloud = await startCloud();
  execFileSync(BIN, ['seed', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--records', String(RECORDS)], { stdio: 'pipe' });
  web = await serve(tmp, { '/apps/': BUILDS });
  web.setBackend({ proxy: cloud.url });
  browser = await launch();
});

test.after(async () => {
  await browser?.close();
  await web?.close();
  if (cloud?.child.exitCode === null) {
    const exited = new Promise((r) => cloud.child.once('exit', r));
    cloud.child.kill('SIGINT');
    await exited;
  }
});

// ---- builds ------------------------------------------------------------------------------

async function vite(pkg, name) {
  const { build } = await import(pkg);
  await build({
    configFile: false,
    root: APP,
    base: './',
    logLevel: 'warn',
    build: { outDir: path.join(BUILDS, name), emptyOutDir: true },
  });
}

async function webpack(mode, name) {
  const { default: webpack } = await import('webpack');
  const out = path.join(BUILDS, name);
  const stats = await new Promise((resolve, reject) =>
    webpack({ mode, context: APP, entry: './main.js', output: { path: out, filename: 'main.js' }, performance: { hints: false } },
      (err, s) => (err ? reject(err) : resolve(s))));
  assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
  writeFileSync(path.join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><script src="./main.js"></script>\n');
}

async function esbuild(entry, name, extra = {}) {
  const { build } = await import('esbuild');
  const out = path.join(BUILDS, name);
  await build({ entryPoints: { main: path.join(APP, entry) }, bundle: true, outdir: out, logLevel: 'error', ...extra });
  return out;
}

async function esbuildWeb(entry, name, extra) {
  const out = await esbuild(entry, name, { format: 'esm', platform: 'browser', ...extra });
  writeFileSync(path.join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="./main.js"></script>\n');
}

// ---- the browser scenario ----------------------------------------------------------------

let changes = 0;

/** Changes one record on the server; returns its id and new data. */
async function changeOnServer() {
  const res = await fetch(`${cloud.url}/v1/scopes/${SCOPE}/changes?limit=1`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const { changes: [first] } = await res.json();
  const data = { ...first.data, description: `changed on the server ${++changes}` };
  const put = await fetch(`${cloud.url}/v1/admin/scopes/${SCOPE}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upserts: [{ collection: first.collection, id: first.id, data }] }),
  });
  assert.ok(put.ok, `admin upsert: ${put.status}`);
  return { collection: first.collection, id: first.id, data };
}

async function scenario(name, pageUrl = `${web.url}/apps/${name}/index.html`) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    const open = async () => {
      await page.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
    };
    await page.goto(pageUrl);
    await open();
    const first = await page.evaluate(([n, t]) => window.app.sync(n, t), [name, TOKEN]);
    assert.equal(first.ok, true, `first sync failed: ${JSON.stringify(first)}`);
    assert.equal(first.kind, 'initial');
    assert.equal(first.inserted, RECORDS);
    assert.equal(first.count, RECORDS);
    assert.equal(first.last.percent, 100, `last progress event: ${JSON.stringify(first.last)}`);
    const listed = await page.evaluate((n) => window.app.list(n, 'objects', 3), name);
    assert.equal(listed.length, 3);
    assert.equal(await page.evaluate((n) => window.app.channelCount(n), name), RECORDS);

    // Reload: the replica is still in IndexedDB, the package loads again.
    await page.reload();
    await open();
    assert.deepEqual(await page.evaluate((n) => window.app.list(n, 'objects', 3), name), listed);

    const changed = await changeOnServer();
    const second = await page.evaluate(([n, t]) => window.app.sync(n, t), [name, TOKEN]);
    assert.equal(second.ok, true, `second sync failed: ${JSON.stringify(second)}`);
    assert.equal(second.kind, 'incremental');
    assert.equal(second.updated, 1);
    assert.equal(second.count, RECORDS);
    assert.deepEqual(await page.evaluate(([n, c, i]) => window.app.get(n, c, i), [name, changed.collection, changed.id]), changed.data);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
}

test('Vite 6 (vite build)', async () => {
  await vite('vite6', 'vite6');
  await scenario('vite6');
});

test('Vite 8 (vite build)', async () => {
  await vite('vite8', 'vite8');
  await scenario('vite8');
});

/** Vite's dev server on the app, /v1 proxied to `tether serve`; returns it. */
async function viteDev(pkg, optimizeDeps = {}) {
  const { createServer } = await import(pkg);
  const server = await createServer({
    configFile: false,
    root: APP,
    logLevel: 'error',
    cacheDir: path.join(BUILDS, `${pkg}-dev-cache`),
    optimizeDeps,
    server: { host: '127.0.0.1', port: 0, strictPort: false, proxy: { '/v1': cloud.url } },
  });
  await server.listen();
  return server;
}

test('Vite 8 dev server, as is', async () => {
  const dev = await viteDev('vite8');
  try {
    await scenario('vite8-dev', `${dev.resolvedUrls.local[0]}index.html`);
  } finally {
    await dev.close();
  }
});

test("Vite 6 dev server with optimizeDeps.exclude, and without: a coded error that says so", async () => {
  const dev = await viteDev('vite6', { exclude: ['tether-sync'] });
  try {
    await scenario('vite6-dev', `${dev.resolvedUrls.local[0]}index.html`);
  } finally {
    await dev.close();
  }
  const bare = await viteDev('vite6');
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${bare.resolvedUrls.local[0]}index.html`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
    const r = await page.evaluate((t) => window.app.sync('vite6-dev-bare', t), TOKEN);
    assert.equal(r.ok, false);
    assert.equal(r.code, 'InvalidInput', JSON.stringify(r));
    assert.equal(r.detail, 'WasmNotFound');
    assert.match(r.message, /optimizeDeps: \{ exclude: \['tether-sync'\] \}/);
  } finally {
    await context.close();
    await bare.close();
  }
});

test('webpack 5, production', async () => {
  await webpack('production', 'webpack-prod');
  await scenario('webpack-prod');
});

test('webpack 5, development', async () => {
  await webpack('development', 'webpack-dev');
  await scenario('webpack-dev');
});

test('esbuild with the file loader and init(url), as documented', async () => {
  await esbuildWeb('main-esbuild.js', 'esbuild-file', { loader: { '.wasm': 'file' } });
  await scenario('esbuild-file');
});

test('esbuild without the recipe: a coded InvalidInput error that says where the wasm goes', async () => {
  await esbuildWeb('main.js', 'esbuild-plain');
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${web.url}/apps/esbuild-plain/index.html`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
    const r = await page.evaluate((t) => window.app.sync('esbuild-plain', t), TOKEN);
    assert.equal(r.ok, false);
    assert.equal(r.tether, true);
    assert.equal(r.code, 'InvalidInput');
    assert.equal(r.detail, 'WasmNotFound');
    assert.match(r.message, /\/apps\/pkg\/tether_wasm_bg\.wasm \(HTTP 404\)/);
    assert.match(r.message, /esbuild/);
    assert.match(r.message, /init\(/);
  } finally {
    await context.close();
  }
});

// ---- Node --------------------------------------------------------------------------------

function node(args, { cwd = HERE, snapshot } = {}) {
  const out = execFileSync(process.execPath, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, TETHER_URL: cloud.url, TETHER_TOKEN: TOKEN, TETHER_SNAPSHOT: snapshot ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.trim().split('\n').at(-1));
}

function assertNodeSync(args, opts) {
  const snapshot = path.join(mkdtempSync(path.join(tmp, 'snap-')), 'snapshot.json');
  const first = node(args, { ...opts, snapshot });
  assert.equal(first.ok, true, JSON.stringify(first));
  assert.equal(first.kind, 'initial');
  assert.equal(first.count, RECORDS);
  assert.equal(first.viaChannel, RECORDS);
  // From the snapshot, after a change on the server: incremental.
  return changeOnServer().then(() => {
    const second = node(args, { ...opts, snapshot });
    assert.equal(second.ok, true, JSON.stringify(second));
    assert.equal(second.kind, 'incremental');
    assert.equal(second.updated, 1);
    assert.equal(second.count, RECORDS);
  });
}

test('Node 20: ES module import', async () => {
  await assertNodeSync([path.join(APP, 'node-esm.mjs')]);
});

test('Node 20: CommonJS require', async () => {
  await assertNodeSync([path.join(APP, 'node-cjs.cjs')]);
});

test('Node 20: an extension bundled by esbuild (--platform=node --format=cjs)', async () => {
  const out = await esbuild('extension.js', 'extension', { platform: 'node', format: 'cjs', outExtension: { '.js': '.cjs' } });
  const bundle = path.join(out, 'main.cjs');
  // In place (node_modules/tether-sync reachable from the bundle's folder).
  await assertNodeSync([bundle]);
  // Shipped alone with the wasm copied next to it, as docs/browser.md says.
  const shipped = mkdtempSync(path.join(tmp, 'ext-'));
  cpSync(bundle, path.join(shipped, 'extension.cjs'));
  cpSync(path.join(MODULES, 'tether-sync/pkg/tether_wasm_node_bg.wasm'), path.join(shipped, 'tether_wasm_node_bg.wasm'));
  await assertNodeSync([path.join(shipped, 'extension.cjs')], { cwd: shipped });
  // Shipped alone without it: a coded error that names the places looked at.
  const bare = mkdtempSync(path.join(tmp, 'ext-bare-'));
  cpSync(bundle, path.join(bare, 'extension.cjs'));
  const r = node([path.join(bare, 'extension.cjs')], { cwd: bare });
  assert.equal(r.ok, false);
  assert.equal(r.code, 'InvalidInput');
  assert.equal(r.detail, 'WasmNotFound');
  assert.ok(r.message.includes(path.join(bare, 'tether_wasm_node_bg.wasm')), r.message);
});

test('the connecting side of a replica channel, bundled alone by esbuild: no wasm, fetch or eval, under 20 KB gzipped', async () => {
  const { build } = await import('esbuild');
  const { gzipSync } = await import('node:zlib');
  for (const [entry, name] of [['tether-sync/channel', 'connectReplica'], ['tether-sync/webview', 'connectVsCodeWebview']]) {
    const out = await build({
      stdin: { contents: `import { ${name} } from '${entry}'; globalThis.connect = ${name};`, resolveDir: HERE },
      bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, logLevel: 'error',
    });
    const code = out.outputFiles[0].text;
    const gzipped = gzipSync(code, { level: 9 }).length;
    console.log(`${entry} (${name}): ${code.length} bytes minified, ${gzipped} bytes gzipped`);
    assert.ok(gzipped < CONNECT_GZIP_BUDGET, `${entry}: ${gzipped} bytes gzipped`);
    assert.doesNotMatch(code, /WebAssembly|\.wasm|fetch\(|eval\(|Function\(/, `${entry} loads or evaluates code`);
  }
});

async function startCloud() {
  return startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(tmp, 'cloud.db'), '--dev-token', TOKEN]);
}
