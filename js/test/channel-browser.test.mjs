// The packed package's replica channel in headless Chromium: a Worker (and a SharedWorker) owns
// an IndexedDB replica and serves it (tether-sync/worker); the page imports tether-sync/channel
// only, and loads no WebAssembly.
import test from 'node:test';
import assert from 'node:assert/strict';
import { installPackedPackage, launch, serve, openPage } from './fixtures/harness.mjs';
import { Cloud } from './fixtures/cloud.mjs';

let app;
let browser;
let server;

test.before(async () => {
  app = installPackedPackage();
  browser = await launch();
  server = await serve(app);
});

test.after(async () => {
  await browser?.close();
  await server?.close();
});

const PAGE = '/fixtures/channel-page.html';

test('a page connected to a Worker that owns an IndexedDB replica: query, live updates after a put there and after a sync; no wasm on the page', async () => {
  const cloud = new Cloud();
  for (let i = 0; i < 50; i++) await cloud.put('objects', `obj_${String(i).padStart(2, '0')}`, { name: `t${i % 5}` });
  server.setBackend({ cloud, token: 'secret' });
  const context = await browser.newContext();
  const page = await openPage(context, server, PAGE);
  try {
    // What the page itself imported, before it starts the worker (whose module graph Chromium
    // lists in the page's resource timing too).
    const own = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
    assert.ok(own.some((n) => n.endsWith('/src/channel.js')), own.join('\n'));
    assert.deepEqual(own.filter((n) => /\.wasm$|tether_wasm|src\/(index|core|node|preloaded)\.js$/.test(n)), [], 'the page imports none of the core');
    const first = await page.evaluate(async () => {
      const worker = new Worker('/fixtures/replica-worker.js?name=channel-dedicated&token=secret', { type: 'module' });
      window.worker = worker;
      const replica = await channel.connectReplica(worker);
      window.replica = replica;
      const scope = replica.scope('org-1');
      const phases = new Set();
      const report = await scope.sync({ pageSize: 20, onProgress: (p) => phases.add(p.phase) });
      const page = await scope.query('objects', { index: 'name', eq: 't1' });
      window.results = [];
      scope.live('objects', { index: 'name', eq: 't1' }).subscribe((v) => v && window.results.push(v.records.map((r) => r.id)));
      return { kind: replica.kind, report, phases: [...phases], ids: page.records.map((r) => r.id), count: await scope.count('objects') };
    });
    assert.equal(first.kind, 'indexeddb');
    assert.equal(first.report.run.inserted, 50);
    assert.ok(first.phases.includes('apply'));
    assert.deepEqual(first.ids, ['obj_01', 'obj_06', 'obj_11', 'obj_16', 'obj_21', 'obj_26', 'obj_31', 'obj_36', 'obj_41', 'obj_46']);
    assert.equal(first.count, 50);
    await page.waitForFunction(() => window.results.length === 1);

    // A put made in the worker itself reaches the page's live query.
    await page.evaluate(() => ask(worker, { test: 'put', scope: 'org-1', collection: 'objects', id: 'obj_99', data: { name: 't1' } }));
    await page.waitForFunction(() => window.results.length === 2, null, { timeout: 10_000 });
    // A change in the cloud, brought in by a sync the page asks for (run in the worker).
    await cloud.put('objects', 'obj_00', { name: 't1' });
    await page.evaluate(() => replica.scope('org-1').sync());
    await page.waitForFunction(() => window.results.at(-1).includes('obj_00'), null, { timeout: 10_000 });
    const results = await page.evaluate(() => window.results);
    assert.deepEqual(results[1], [...first.ids, 'obj_99']);
    assert.deepEqual(results.at(-1), ['obj_00', ...first.ids, 'obj_99']);

    // Errors keep their code across; closing leaves nothing running in the worker.
    const err = await page.evaluate(() =>
      replica.scope('org-1').query('objects', { index: 'nope' }).catch((e) => ({ name: e.name, code: e.code, tether: channel.isTetherError(e) })),
    );
    assert.deepEqual(err, { name: 'InvalidInputError', code: 'InvalidInput', tether: true });
    const served = await page.evaluate(async () => {
      const before = await ask(worker, { test: 'served' });
      await replica.close();
      const after = await ask(worker, { test: 'served' });
      return { before, after };
    });
    assert.deepEqual([served.before.connections, served.before.active], [1, 1]);
    assert.deepEqual([served.after.connections, served.after.active], [0, 0]);

    // The wasm was loaded by the worker, never by the page.
    const loaded = await page.evaluate(async () => ({
      page: performance.getEntriesByType('resource').map((e) => e.name),
      worker: (await ask(worker, { test: 'resources' })).names,
    }));
    assert.ok(loaded.worker.some((n) => n.endsWith('/tether_wasm_bg.wasm')), loaded.worker.join('\n'));
    assert.deepEqual(loaded.page.filter((n) => n.endsWith('.wasm')), [], 'the page loads no wasm');
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});

test('two tabs share one SharedWorker replica: an edit in one reaches the other\'s live query; a closed tab leaves nothing behind', async () => {
  const context = await browser.newContext();
  const [a, b] = [await openPage(context, server, PAGE), await openPage(context, server, PAGE)];
  try {
    const connect = async () => {
      const shared = new SharedWorker('/fixtures/replica-worker.js?name=channel-shared&token=secret', { type: 'module' });
      window.port = shared.port;
      window.replica = await channel.connectReplica(shared.port);
      window.results = [];
      window.replica.scope('s').live('objects', { index: 'name', prefix: 'x' }).subscribe((v) => v && window.results.push(v.records.map((r) => r.id)));
      };
    await a.evaluate(connect);
    await b.evaluate(connect);
    await a.waitForFunction(() => window.results.length === 1);
    await b.waitForFunction(() => window.results.length === 1);
    await a.evaluate(() => replica.scope('s').put('objects', 'x1', { name: 'x1' }));
    await b.waitForFunction(() => window.results.at(-1).includes('x1'), null, { timeout: 10_000 });
    const before = await b.evaluate(() => ask(port, { test: 'served' }));
    assert.deepEqual([before.connections, before.active], [2, 2]);
    // Tab a goes away: its pagehide says goodbye, the worker drops its live query.
    await a.close({ runBeforeUnload: true });
    await b.waitForFunction(async () => (await ask(port, { test: 'served' })).connections === 1, null, { timeout: 10_000 });
    const after = await b.evaluate(() => ask(port, { test: 'served' }));
    assert.deepEqual([after.connections, after.active], [1, 1]);
    assert.deepEqual(b.errors, []);
  } finally {
    await context.close();
  }
});
