// End to end against the real reference server (`tether serve`) and the native CLI: the packed
// package syncs in Chromium, edits, meets a conflict and a reset, reads offline while the
// server is down, recovers; a native replica of the same scope ends with the same digest; the
// example app is served at /demo and screenshotted after a sync (target/browser-example.png).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installPackedPackage, launch, serve, openPage, REPO } from './fixtures/harness.mjs';
import { startServe } from './fixtures/serve-process.mjs';

const BIN = process.env.TETHER_BIN ?? [
  path.join(REPO, 'target/release/tether'),
  path.join(REPO, 'target/debug/tether'),
].find(existsSync);
const TOKEN = 'secret';
const SCOPE = 'org-1';
const skip = BIN ? false : 'the tether CLI is not built (cargo build --release -p tether-cli --bin tether)';

let dir;
let app;
let browser;
let proxy;
let cloud; // the running `tether serve`: {url, child}

async function startCloud(bind = '127.0.0.1:0') {
  return startServe(BIN, ['--bind', bind, '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN,
    '--demo-dir', path.join(REPO, 'examples/browser')]);
}

async function stopCloud() {
  const { child } = cloud;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
}

function cli(...args) {
  return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function api(method, p, body) {
  const res = await fetch(cloud.url + p, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${p}: ${res.status} ${await res.clone().text()}`);
  return res.json();
}

test.before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(os.tmpdir(), 'tether-e2e-'));
  app = installPackedPackage();
  cloud = await startCloud();
  cli('seed', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--records', '3000');
  browser = await launch();
  // The page and /v1 share the test server's origin; /v1 is proxied to `tether serve`.
  proxy = await serve(app);
  proxy.setBackend({ proxy: cloud.url });
});

test.after(async () => {
  await browser?.close();
  await proxy?.close();
  if (cloud?.child.exitCode === null) await stopCloud();
});

const inPage = (page, fn, arg) => page.evaluate(fn, arg);

test('browser replica against tether serve: sync, edit, conflict, reset, offline, native digest', { skip }, async () => {
  const context = await browser.newContext();
  const page = await openPage(context, proxy);
  const sync = (opts = {}) =>
    inPage(page, async ([scopeId, token, opts]) => {
      const scope = (await tether.Replica.open('e2e-server')).scope(scopeId);
      const report = await scope.sync({ remote: { url: location.origin, token, ...opts }, pageSize: 500 });
      return { report, status: await scope.status() };
    }, [SCOPE, TOKEN, opts]);

  const first = await sync();
  const status = await api('GET', `/v1/scopes/${SCOPE}/status`);
  assert.equal(first.report.run.kind, 'initial');
  assert.equal(first.report.run.inserted, 3000);
  assert.equal(first.status.count, status.count);
  assert.equal(first.status.digest, status.digest);

  // A local edit that the cloud accepts, and one it overwrote meanwhile (cloud wins, journal).
  const [a, b] = await inPage(page, async (scopeId) => {
    const scope = (await tether.Replica.open('e2e-server')).scope(scopeId);
    const [a, b] = await scope.list('objects', { limit: 2 });
    await scope.put('objects', a.id, { ...a.data, description: 'edited in the browser' });
    await scope.put('objects', b.id, { ...b.data, description: 'mine' });
    return [a, b];
  }, SCOPE);
  await api('POST', `/v1/admin/scopes/${SCOPE}/records`, {
    upserts: [{ collection: 'objects', id: b.id, data: { ...b.data, description: 'theirs' } }],
  });
  const second = await sync();
  assert.equal(second.report.run.conflicts, 1);
  const after = await inPage(page, async ([scopeId, ids]) => {
    const scope = (await tether.Replica.open('e2e-server')).scope(scopeId);
    return {
      a: await scope.get('objects', ids[0]),
      b: await scope.get('objects', ids[1]),
      conflicts: await scope.conflicts(),
    };
  }, [SCOPE, [a.id, b.id]]);
  assert.equal(after.a.data.description, 'edited in the browser');
  assert.equal(after.a.pending, false);
  assert.equal(after.b.data.description, 'theirs');
  assert.equal(after.conflicts.length, 1);
  assert.equal(after.conflicts[0].localData.description, 'mine');

  // Reset: deletes, then the cloud purges its tombstones; the replica gets 410 and resyncs.
  const [c] = await inPage(page, async (scopeId) =>
    (await tether.Replica.open('e2e-server')).scope(scopeId).list('columns', { limit: 1 }), SCOPE);
  await api('POST', `/v1/admin/scopes/${SCOPE}/records`, { deletes: [{ collection: 'columns', id: c.id }] });
  await api('POST', `/v1/admin/scopes/${SCOPE}/purge`, {});
  const third = await sync();
  assert.equal(third.report.run.kind, 'full-resync');
  const cloudStatus = await api('GET', `/v1/scopes/${SCOPE}/status`);
  assert.equal(third.status.digest, cloudStatus.digest);
  assert.equal(third.status.count, 2999);

  // A native replica of the same scope ends with the same digest.
  const replicaDb = path.join(dir, 'native.db');
  cli('sync', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--db', replicaDb);
  const native = JSON.parse(cli('status', '--db', replicaDb, '--scope', SCOPE, '--json'));
  assert.equal(native.digest, third.status.digest);
  assert.equal(native.count, third.status.count);

  // The server stops: reload, read offline; a sync fails with NetworkError.
  await stopCloud();
  await page.reload();
  await page.waitForFunction(() => window.loaded === true);
  const offline = await inPage(page, async ([scopeId, token]) => {
    const scope = (await tether.Replica.open('e2e-server')).scope(scopeId);
    const err = await scope.sync({ remote: { url: location.origin, token, retries: 1 } })
      .then(() => null, (e) => ({ name: e.name, code: e.code }));
    return { err, count: await scope.count(), first: (await scope.list('objects', { limit: 1 }))[0] };
  }, [SCOPE, TOKEN]);
  assert.deepEqual(offline.err, { name: 'NetworkError', code: 'Network' });
  assert.equal(offline.count, 2999);
  assert.ok(offline.first.data);

  // The server is back: the next sync succeeds.
  cloud = await startCloud();
  proxy.setBackend({ proxy: cloud.url });
  await api('POST', `/v1/admin/scopes/${SCOPE}/records`, {
    upserts: [{ collection: 'objects', id: 'obj_new', data: { name: 'added while the replica was offline' } }],
  });
  const back = await sync();
  assert.equal(back.report.run.status, 'completed');
  assert.equal(back.report.run.inserted, 1);
  assert.equal(back.status.lastError, null);
  assert.equal(back.status.digest, (await api('GET', `/v1/scopes/${SCOPE}/status`)).digest);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('example app at /demo syncs and shows the count and status (screenshot)', { skip }, async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${cloud.url}/demo/?autosync&token=${TOKEN}&scope=${SCOPE}`);
  await page.waitForSelector('body[data-synced="true"]', { timeout: 60_000 });
  const status = await api('GET', `/v1/scopes/${SCOPE}/status`);
  assert.equal(await page.textContent('#status-records'), status.count.toLocaleString('en-US'));
  assert.match(await page.textContent('#status-sync-now-'), /up to date/);
  assert.match(await page.textContent('#message'), /verified/);
  assert.ok((await page.$$('#records tbody tr')).length > 0);
  // Offline search over the local replica.
  await page.fill('#search', 'obj_new');
  await page.waitForFunction(() => document.querySelectorAll('#records tbody tr').length === 1);
  await page.fill('#search', '');
  await page.waitForFunction(() => document.querySelectorAll('#records tbody tr').length > 1);
  // Selecting an object shows its columns through a live query on the [object, position] index;
  // a column the cloud adds to it shows up after the next sync without another click.
  const objectId = await page.textContent('#records tbody tr:first-child td:first-child');
  const columns = (await api('GET', `/v1/scopes/${SCOPE}/records`)).records
    .filter((r) => r.collection === 'columns' && r.data.object === objectId);
  await page.click('#records tbody tr:first-child');
  await page.waitForFunction((n) => document.querySelector('#columns').dataset.count === String(n), columns.length);
  const positions = await page.$$eval('#columns li', (lis) => lis.map((li) => Number.parseInt(li.textContent, 10)));
  assert.deepEqual(positions, [...positions].sort((a, b) => a - b), 'in position order');
  await api('POST', `/v1/admin/scopes/${SCOPE}/records`, {
    upserts: [{ collection: 'columns', id: 'col_added_live', data: { object: objectId, position: 0, name: 'added_by_the_cloud' } }],
  });
  await page.click('#sync');
  await page.waitForFunction((n) => document.querySelector('#columns').dataset.count === String(n + 1), columns.length);
  assert.match(await page.textContent('#columns li:first-child'), /added_by_the_cloud/);
  mkdirSync(path.join(REPO, 'target'), { recursive: true });
  await page.screenshot({ path: path.join(REPO, 'target/browser-example.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('a live sync reconnects after its server goes away, keeps the edits made meanwhile, and stops on abort', { skip }, async () => {
  const { Replica } = await import('../src/node.js');
  const replica = await Replica.openInMemory({ name: 'live-reconnect' });
  const scope = replica.scope('live-2');
  proxy.setBackend({ proxy: cloud.url });
  await api('POST', '/v1/admin/scopes/live-2/records', { upserts: [{ collection: 'objects', id: 'a', data: { v: 0 } }] });
  const stop = new AbortController();
  const errors = [];
  let applied = 0;
  const session = scope.sync({
    remote: { url: proxy.url, token: TOKEN, retries: 0 },
    live: 1,
    signal: stop.signal,
    onError: (e) => errors.push(e),
    onProgress: (p) => {
      if (p.phase === 'apply') applied += p.done;
    },
  });
  const until = async (what, ok, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until('the catch-up', async () => (await scope.get('objects', 'a')) != null);
  // The server goes away mid-session: the next long-poll fails, the session says so and waits.
  proxy.setBackend(null);
  await until('the failure report', () => errors.length > 0);
  assert.equal(errors[0].name, 'NetworkError');
  assert.equal(errors[0].retryable, true);
  await scope.put('objects', 'offline', { v: 'made while the server was away' });
  // Back: the session reconnects by itself, pushes the edit, and follows new writes.
  proxy.setBackend({ proxy: cloud.url });
  await api('POST', '/v1/admin/scopes/live-2/records', { upserts: [{ collection: 'objects', id: 'b', data: { v: 1 } }] });
  await until('the reconnect', async () => (await scope.get('objects', 'b')) != null && (await scope.status()).pendingEdits === 0);
  stop.abort();
  const report = await session;
  assert.equal(report.run.trigger, 'live');
  assert.equal(report.run.status, 'completed');
  const runs = await scope.history();
  assert.ok(runs.some((r) => r.status === 'failed' && r.trigger === 'live'), JSON.stringify(runs));
  const server = await api('GET', '/v1/scopes/live-2/records');
  assert.equal(server.records.find((r) => r.id === 'offline')?.data.v, 'made while the server was away');
  assert.equal(report.snapshot.digest, (await api('GET', '/v1/scopes/live-2/status')).digest);
  assert.ok(applied >= 2);
  await replica.close();
});

test('a live sync stopped while it waits to reconnect rejects as cancelled, with the failure as cause', { skip }, async () => {
  const { Replica } = await import('../src/node.js');
  const replica = await Replica.openInMemory({ name: 'live-stopped' });
  const scope = replica.scope('live-3');
  proxy.setBackend(null);
  const stop = new AbortController();
  const session = scope.sync({
    remote: { url: proxy.url, token: TOKEN, retries: 0 },
    live: 1,
    signal: stop.signal,
    onError: () => stop.abort(),
  });
  await assert.rejects(session, (e) => e.name === 'CancelledError' && e.cause?.name === 'NetworkError');
  proxy.setBackend({ proxy: cloud.url });
  await replica.close();
});

test('a live sync in Node applies each change as it commits, until aborted', { skip }, async () => {
  const { Replica } = await import('../src/node.js');
  const replica = await Replica.openInMemory({ name: 'live' });
  const scope = replica.scope('live-1');
  const remote = { url: cloud.url, token: TOKEN };
  await api('POST', '/v1/admin/scopes/live-1/records', { upserts: [{ collection: 'objects', id: 'a', data: { v: 0 } }] });
  const stop = new AbortController();
  let applied = 0;
  let onApply = null;
  const session = scope.sync({
    remote,
    live: 5,
    signal: stop.signal,
    onProgress: (p) => {
      if (p.phase === 'apply' && p.done > 0) {
        applied += p.done;
        onApply?.();
      }
    },
  });
  const appliedReaches = (n) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${applied} applied`)), 20_000);
    onApply = () => { if (applied >= n) { clearTimeout(timer); resolve(); } };
    onApply();
  });
  await appliedReaches(1);
  // A write on the server while the session waits: applied without another sync call.
  await api('POST', '/v1/admin/scopes/live-1/records', { upserts: [{ collection: 'objects', id: 'b', data: { v: 1 } }] });
  await appliedReaches(2);
  assert.equal((await scope.get('objects', 'b')).data.v, 1);
  stop.abort();
  const report = await session;
  assert.equal(report.run.trigger, 'live');
  assert.equal(report.run.status, 'completed');
  assert.equal(report.run.inserted, 2);
  const status = await api('GET', '/v1/scopes/live-1/status');
  assert.equal(report.snapshot.digest, status.digest);
  await replica.close();
});
