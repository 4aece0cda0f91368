// `tether-sync/react` in a real React render (React 19, StrictMode) in headless Chromium, in the
// packed package built by esbuild (its documented file-loader recipe), Vite 8 and webpack 5
// (production), and React 18 by esbuild: a list on `useLiveQuery` over an IndexedDB replica
// renders the query's records (a query on an undeclared index renders its error);
// a sync started by `useSync` from a real `tether serve` that changes a matching record
// re-renders it; another tab's edit (a second page of the same origin and replica name)
// re-renders it too, and `useSyncStatus` follows; renders stay within a small bound and stop
// once the data settles (no render loop); unmounting removes every subscription and stops
// re-reading. Run from js/: node --test test/bundlers/
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, serve, JS_DIR, REPO } from '../fixtures/harness.mjs';
import { startServe } from '../fixtures/serve-process.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const APP = path.join(HERE, 'react-app');
const MODULES = path.join(HERE, 'node_modules');
/** React 18 in a folder of its own (npm ci in js/test/bundlers/react18). */
const REACT18 = path.join(HERE, 'react18');
const BUILDS = path.join(MODULES, '.tether-react-builds'); // gitignored with node_modules
const BIN = process.env.TETHER_BIN ?? path.join(REPO, 'target/debug/tether');
const TOKEN = 'secret';
/** Records per group; the page lists group `a`. */
const PER_GROUP = 5;
/**
 * Most renders of the list one change of its result may cost: one render, doubled by
 * StrictMode in development builds, and one spare for React batching the two differently.
 */
const RENDERS_PER_CHANGE = 3;

let tmp;
let cloud; // {url, child}
let web; // /apps/ static, /v1 proxied to tether serve
let browser;

test.before(async () => {
  assert.ok(existsSync(BIN), `the tether CLI is missing at ${BIN} (cargo build -p tether-cli --bin tether)`);
  assert.ok(existsSync(path.join(MODULES, 'react-dom')), 'React not installed: npm ci in js/test/bundlers');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'tether-react-'));
  // The packed package, unpacked as npm would install it (bundlers.test.mjs does the same).
  execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: JS_DIR, stdio: 'pipe' });
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  const pkg = path.join(MODULES, 'tether-sync');
  rmSync(pkg, { recursive: true, force: true });
  mkdirSync(pkg);
  execFileSync('tar', ['-xzf', path.join(tmp, tarball), '-C', pkg, '--strip-components=1']);
  rmSync(BUILDS, { recursive: true, force: true });
  mkdirSync(BUILDS, { recursive: true });

  cloud = await startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(tmp, 'cloud.db'), '--dev-token', TOKEN]);
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

/** Writes `items` into the scope on the server (`tether serve`'s admin API). */
async function upsert(scope, items) {
  const res = await fetch(`${cloud.url}/v1/admin/scopes/${scope}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upserts: items.map(({ id, data }) => ({ collection: 'items', id, data })) }),
  });
  assert.ok(res.ok, `admin upsert: ${res.status} ${await res.text()}`);
}

// ---- builds ------------------------------------------------------------------------------

function page(out) {
  writeFileSync(path.join(out, 'index.html'),
    '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><div id="root"></div>' +
    '<script type="module" src="./main.js"></script>\n');
}

// `react` and `react-dom` (and their subpaths) from `dir` for every importer, the package's too.
function reactFrom(dir) {
  return {
    name: 'react-from',
    setup(build) {
      build.onResolve({ filter: /^react(-dom)?(\/.*)?$/ }, (args) =>
        args.pluginData === 'react-from' ? undefined
          : build.resolve(args.path, { kind: args.kind, resolveDir: dir, pluginData: 'react-from' }));
    },
  };
}

async function esbuild(name, plugins = []) {
  const { build } = await import('esbuild');
  const out = path.join(BUILDS, name);
  // Development: React's checks run (a getSnapshot that is not cached is logged).
  await build({
    entryPoints: { main: path.join(APP, 'main-esbuild.js') }, bundle: true, outdir: out, format: 'esm',
    platform: 'browser', loader: { '.wasm': 'file' }, define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'error', plugins,
  });
  page(out);
}

async function vite(name) {
  const { build } = await import('vite8');
  await build({
    configFile: false, root: APP, base: './', logLevel: 'warn',
    build: { outDir: path.join(BUILDS, name), emptyOutDir: true },
  });
}

async function webpack(name) {
  const { default: webpack } = await import('webpack');
  const out = path.join(BUILDS, name);
  const stats = await new Promise((resolve, reject) =>
    webpack({ mode: 'production', context: APP, entry: './main.js', output: { path: out, filename: 'main.js' }, performance: { hints: false } },
      (err, s) => (err ? reject(err) : resolve(s))));
  assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
  writeFileSync(path.join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><div id="root"></div>' +
    '<script src="./main.js"></script>\n');
}

// ---- the scenario ------------------------------------------------------------------------

const items = (p) => p.$$eval('#items li', (lis) => lis.map((li) => li.textContent));
const text = (p, sel) => p.$eval(sel, (e) => e.textContent);
const stats = (p) => p.evaluate(() => window.app.stats());

/** Waits until the list shows `expected`. */
async function showsItems(p, expected) {
  await p.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#items li')].map((li) => li.textContent);
    return JSON.stringify(got) === JSON.stringify(want);
  }, expected, { timeout: 20_000 }).catch(async (e) => {
    throw new Error(`the list shows ${JSON.stringify(await items(p))}, expected ${JSON.stringify(expected)}: ${e.message}`);
  });
}

/** Clicks the page's sync button and waits for the new report; returns its text. */
async function sync(p) {
  const before = await text(p, '#report');
  await p.click('#sync');
  await p.waitForFunction((prev) => {
    const now = document.querySelector('#report').textContent;
    return now !== prev && !document.querySelector('#sync').disabled;
  }, before, { timeout: 20_000 });
  return text(p, '#report');
}

/** Waits for the renders to stop (none for 400 ms); returns the settled stats. */
async function settled(p) {
  let last = await stats(p);
  for (;;) {
    await new Promise((r) => setTimeout(r, 400));
    const now = await stats(p);
    if (now.renders === last.renders && now.queries === last.queries) return now;
    last = now;
  }
}

async function scenario(t, name) {
  const context = await browser.newContext();
  try {
    const a = await context.newPage();
    const errors = [];
    a.on('pageerror', (e) => errors.push(e));
    // React logs a getSnapshot that returns a new object each call, and update loops, here.
    a.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await a.goto(`${web.url}/apps/${name}/index.html`);
    await a.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
    // A scope of its own on the server, and a replica of its own, per build.
    const scope = `react-${name}`;
    const seed = [];
    for (const g of ['a', 'b']) {
      for (let i = 0; i < PER_GROUP; i++) seed.push({ id: `${g}_${i}`, data: { group: g, label: `${g}${i}` } });
    }
    await upsert(scope, seed);
    await a.evaluate(([s, t]) => window.app.mount(s, t), [scope, TOKEN]);

    // An empty replica: the query answers, with nothing.
    await a.waitForFunction(() => document.querySelector('#state')?.textContent === 'ready');
    assert.deepEqual(await items(a), []);
    await a.waitForFunction(() => document.querySelector('#detail')?.textContent === 'none');
    await a.waitForFunction(() => document.querySelector('#undeclared')?.textContent === 'InvalidInputError');

    // A sync through useSync: progress, report, and the list re-rendered with the records.
    const group = Array.from({ length: PER_GROUP }, (_, i) => `a_${i}=a${i}`);
    assert.match(await sync(a), /^run=\d+ updated=0$/);
    await showsItems(a, group);
    assert.match(await text(a, '#progress'), /^(apply|verify|sweep) 100$/);
    await a.waitForFunction((n) => document.querySelector('#status').textContent === `visible=${n} pending=0`, PER_GROUP * 2);
    await a.waitForFunction(() => document.querySelector('#detail').textContent === 'a3 pending=false');
    const first = await settled(a);
    assert.ok(first.renders <= 3 * RENDERS_PER_CHANGE, `renders to the first records: ${first.renders}`);

    // A change on the server, synced: the changed record re-renders, nothing else does.
    await upsert(scope, [{ id: 'a_2', data: { group: 'a', label: 'changed on the server' } }]);
    assert.match(await sync(a), /updated=1$/);
    group[2] = 'a_2=changed on the server';
    await showsItems(a, group);
    const synced = await settled(a);
    assert.ok(synced.renders - first.renders <= RENDERS_PER_CHANGE, `renders for one synced change: ${synced.renders - first.renders}`);
    // A change of group `b` re-reads the query but renders nothing.
    await upsert(scope, [{ id: 'b_1', data: { group: 'b', label: 'not listed' } }]);
    assert.match(await sync(a), /updated=1$/);
    const other = await settled(a);
    assert.equal(other.renders, synced.renders, 'a change outside the query renders nothing');

    // Another tab edits a listed record: this tab's list and status follow.
    const b = await context.newPage();
    await b.goto(`${web.url}/apps/${name}/index.html`);
    await b.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
    await b.evaluate((n) => window.app.edit(n, 'a_3', { group: 'a', label: 'edited in tab B' }), scope);
    group[3] = 'a_3=edited in tab B';
    await showsItems(a, group);
    await a.waitForFunction(() => document.querySelector('#status').textContent.endsWith('pending=1'));
    await a.waitForFunction(() => document.querySelector('#detail').textContent === 'edited in tab B pending=true');
    const edited = await settled(a);
    assert.ok(edited.renders - other.renders <= RENDERS_PER_CHANGE, `renders for another tab's edit: ${edited.renders - other.renders}`);
    // One live query per mounted hook, two hooks (StrictMode makes two each in development,
    // keeps one): not one per render.
    assert.ok(edited.live <= 4, `live queries made: ${edited.live}`);
    assert.ok(edited.active > 0);

    // The edit pushed, and a sync that changes nothing: no change event, yet the status (its
    // last sync) and the record's pending flag follow, on the end of the sync run.
    await sync(a);
    await a.waitForFunction(() => document.querySelector('#detail').textContent === 'edited in tab B pending=false');
    await a.waitForFunction(() => document.querySelector('#status').textContent.endsWith('pending=0'));
    const before = await text(a, '#synced');
    await sync(a);
    await a.waitForFunction((t) => document.querySelector('#synced').textContent !== t, before);
    await settled(a);

    // Unmounted: no subscription left, and another tab's edit makes no re-read or render.
    await a.evaluate(() => window.app.unmount());
    const gone = await stats(a);
    assert.equal(gone.active, 0, 'subscriptions left after unmount');
    await b.evaluate((n) => window.app.edit(n, 'a_4', { group: 'a', label: 'after unmount' }), scope);
    await new Promise((r) => setTimeout(r, 500));
    const after = await stats(a);
    assert.equal(after.queries, gone.queries, 're-reads after unmount');
    assert.equal(after.renders, gone.renders, 'renders after unmount');
    assert.deepEqual(errors, []);
    t.diagnostic(`list renders: ${first.renders} to the first records, ${synced.renders - first.renders} for a ` +
      `synced change, ${other.renders - synced.renders} for a change outside the query, ` +
      `${edited.renders - other.renders} for another tab's edit; live queries made: ${edited.live}`);
  } finally {
    await context.close();
  }
}

test('React: esbuild (development, its file-loader recipe)', async (t) => {
  await esbuild('esbuild');
  await scenario(t, 'esbuild');
});

test('React 18: esbuild (development)', async (t) => {
  assert.ok(existsSync(path.join(REACT18, 'node_modules/react-dom')), 'React 18 not installed: npm ci in js/test/bundlers/react18');
  await esbuild('esbuild-react18', [reactFrom(REACT18)]);
  const version = await (await fetch(`${web.url}/apps/esbuild-react18/main.js`)).text();
  assert.match(version, /"18\.3\.1"/, 'the page bundles React 18');
  await scenario(t, 'esbuild-react18');
});

test('React: Vite 8 (vite build)', async (t) => {
  await vite('vite8');
  await scenario(t, 'vite8');
});

test('React: webpack 5 (production)', async (t) => {
  await webpack('webpack');
  await scenario(t, 'webpack');
});

test('server rendering: the loading state, and nothing subscribed or read', async () => {
  const { createElement: h } = await import('react');
  const { renderToString } = await import('react-dom/server');
  // The entry as the packed package ships it: it imports React and nothing else.
  const { useLiveQuery, useSyncStatus } = await import('tether-sync/react');
  const calls = [];
  const live = { subscribe: () => calls.push('subscribe'), getSnapshot: () => calls.push('getSnapshot') };
  const scope = {
    live: () => live,
    status: () => calls.push('status'),
    subscribe: () => calls.push('events'),
  };
  function View() {
    const { loading, records } = useLiveQuery(scope, 'items', { index: 'group', eq: 'a' });
    const { status } = useSyncStatus(scope);
    return h('p', null, `${loading ? 'loading' : 'ready'} ${records.length} ${status === null}`);
  }
  assert.equal(renderToString(h(View)), '<p>loading 0 true</p>');
  assert.deepEqual(calls, []);
});
