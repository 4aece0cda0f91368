// One replica behind a message channel (tether-sync/channel): the owner's replica is a SQLite
// file (node:sqlite), the connection is on a worker_threads MessageChannel, the cloud is a real
// `tether serve`. Needs a Node with node:sqlite (CI: the pinned Node 24).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Replica } from '../../src/node.js';
import { serveReplica, connectReplica, isTetherError } from '../../src/channel.js';
import { startServe } from '../fixtures/serve-process.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = process.env.TETHER_BIN ?? [
  path.join(REPO, 'target/debug/tether'),
  path.join(REPO, 'target/release/tether'),
].find(existsSync);
if (!BIN) throw new Error('the tether CLI is not built: cargo build -p tether-cli --bin tether, or set TETHER_BIN');
const TOKEN = 'secret';
const INDEXES = { columns: [['object', 'position']], objects: ['name'] };
const COLUMNS = { index: ['object', 'position'] };

let dir;
let cloud; // {url, child}
let remote;
const open = new Set(); // the pairs a test has not closed (it failed): closed after it

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, ms = 10_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

function seed(scope, records) {
  execFileSync(BIN, ['seed', '--remote', cloud.url, '--token', TOKEN, '--scope', scope, '--records', String(records)], {
    stdio: 'pipe',
  });
}

/** Upserts records in the cloud, as another writer would (the server's admin endpoint). */
async function cloudUpsert(scope, upserts) {
  const res = await fetch(`${cloud.url}/v1/admin/scopes/${scope}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upserts }),
  });
  assert.ok(res.ok, `admin upsert: ${res.status}`);
}

/** An owner on a replica file and a connection to it over a MessageChannel. */
async function pair(name, serveOptions = {}) {
  const owner = await Replica.open(path.join(dir, `${name}.db`), { indexes: INDEXES });
  const { port1, port2 } = new MessageChannel();
  const served = serveReplica(port1, owner, serveOptions);
  const connected = await connectReplica(port2);
  const done = async () => {
    open.delete(done);
    await connected.close();
    served.close();
    port1.close();
    await owner.close();
  };
  open.add(done);
  return { owner, served, connected, port1, port2, done };
}

// What a Tether error says, to compare one thrown directly with one that crossed the channel.
const said = (e) => ({ name: e.name, code: e.code, detail: e.detail, message: e.message, status: e.status });

test.before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tether-channel-'));
  cloud = await startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN]);
  remote = { url: cloud.url, token: TOKEN };
});

test.afterEach(async () => {
  for (const done of [...open]) await done();
});

test.after(async () => {
  if (cloud?.child.exitCode === null) {
    const exited = new Promise((r) => cloud.child.once('exit', r));
    cloud.child.kill('SIGINT');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('reads through the channel equal the owner\'s; a live query is pushed after an owner put and after a sync', async () => {
  const scopeId = 'channel-reads';
  seed(scopeId, 300);
  const { owner, served, connected, done } = await pair('reads', { remote });
  assert.equal(connected.name, owner.name);
  assert.equal(connected.kind, 'sqlite');
  assert.equal(connected.ownRemote, true);
  const scope = connected.scope(scopeId);
  const direct = owner.scope(scopeId);

  // The sync runs on the owner, with the owner's remote; its progress comes over the channel.
  const progress = [];
  const report = await scope.sync({ pageSize: 100, onProgress: (p) => progress.push(p.phase) });
  assert.equal(report.run.inserted, 300);
  assert.ok(progress.includes('apply'), `progress: ${progress}`);
  assert.deepEqual(await connected.scopes(), [scopeId]);
  assert.equal((await scope.verify()).matched, true);
  assert.equal((await scope.preview()).pages, 1);

  const [first] = await direct.list('objects', { limit: 1 });
  assert.deepEqual(await scope.get('objects', first.id), first);
  assert.equal(await scope.get('objects', 'missing'), null);
  assert.deepEqual(await scope.list('objects', { limit: 5 }), await direct.list('objects', { limit: 5 }));
  assert.equal(await scope.count(), await direct.count());
  assert.equal(await scope.count('columns'), await direct.count('columns'));
  const [column] = await direct.list('columns', { limit: 1 });
  const query = { ...COLUMNS, eq: column.data.object };
  assert.deepEqual(await scope.query('columns', query), await direct.query('columns', query));
  assert.equal(await scope.count('columns', query), await direct.count('columns', query));
  assert.deepEqual(await scope.status(), await direct.status());
  assert.deepEqual(await scope.history(), await direct.history());

  // A live query: its first result, then one pushed after a put on the owner, then one after a
  // cloud change the owner's sync brought in. The owner runs it; nothing is polled here.
  const live = scope.live('columns', query);
  const results = [];
  const off = live.subscribe((page) => page && results.push(page.records.map((r) => r.id)));
  const events = [];
  const unsubscribe = connected.subscribe((e) => events.push(`${e.source} ${e.changes.map((c) => c.id)}`));
  await until('the first result', () => results.length === 1);
  const before = results[0];
  await direct.put('columns', 'col_local', { object: column.data.object, position: 1000 });
  await until('the result after the put', () => results.length === 2);
  assert.deepEqual(results[1], [...before, 'col_local']);
  await cloudUpsert(scopeId, [{ collection: 'columns', id: 'col_cloud', data: { object: column.data.object, position: -1 } }]);
  await direct.sync({ remote });
  // The push of col_local (its pending flag) and the pull of col_cloud each change the result.
  await until('the result after the sync', () => results.at(-1).includes('col_cloud'));
  assert.deepEqual(results.at(-1), ['col_cloud', ...before, 'col_local']);
  assert.deepEqual(live.value.records, (await direct.query('columns', query)).records);
  await until('the change events', () => events.length >= 2);
  assert.equal(events[0], 'local col_local');
  assert.ok(events.includes('pull col_cloud'), `events: ${events}`);
  // Writes through the channel land on the owner.
  await scope.put('objects', 'obj_new', { name: 'from the channel' });
  assert.deepEqual((await direct.get('objects', 'obj_new')).data, { name: 'from the channel' });
  await scope.delete('objects', 'obj_new');
  assert.equal(await direct.get('objects', 'obj_new'), null);

  off();
  unsubscribe();
  await until('the owner to drop the live query', () => served.active === 0);
  await done();
});

test('errors cross with their code, detail and message; readOnly and scopes are enforced', async () => {
  const scopeId = 'channel-errors';
  const { owner, connected, done } = await pair('errors', { readOnly: true, scopes: [scopeId] });
  const scope = connected.scope(scopeId);
  const direct = owner.scope(scopeId);
  await direct.put('objects', 'a', { name: 'a' });

  // The owner's error, as thrown there, arrives whole.
  const badQuery = { index: 'nope', eq: 1 };
  const there = await direct.query('objects', badQuery).catch((e) => e);
  const here = await scope.query('objects', badQuery).catch((e) => e);
  assert.ok(isTetherError(here), String(here));
  assert.ok(here instanceof Error);
  assert.deepEqual(said(here), said(there));
  assert.equal(here.code, 'InvalidInput');

  // A watch that cannot run reports to onError.
  const failures = [];
  const stop = scope.watch('objects', badQuery, () => {}, { onError: (e) => failures.push(said(e)) });
  await until('the watch error', () => failures.length === 1);
  assert.deepEqual(failures[0], said(there));
  stop();

  // Read-only: writes and syncs are refused, with a typed error, and change nothing.
  for (const attempt of [
    () => scope.put('objects', 'b', { name: 'b' }),
    () => scope.delete('objects', 'a'),
    () => scope.dismissConflict(1),
    () => scope.sync({ remote }),
    () => scope.verify({ remote }),
  ]) {
    await assert.rejects(attempt(), (e) => isTetherError(e) && e.code === 'InvalidInput' && e.detail === 'ReadOnly');
  }
  assert.equal(await direct.count('objects'), 1);
  // Other scopes are refused, and left out of scopes() and of replica-wide events.
  await owner.scope('other').put('objects', 'x', { name: 'x' });
  assert.deepEqual(await connected.scopes(), [scopeId]);
  await assert.rejects(connected.scope('other').get('objects', 'x'), (e) => e.code === 'InvalidInput' && e.detail === 'ScopeNotAllowed');
  const seen = [];
  const off = connected.subscribe((e) => seen.push(e.scope));
  const refused = [];
  connected.scope('other').watch('objects', { index: 'name' }, () => refused.push('page'), {
    onError: (e) => refused.push(e.detail),
  });
  await tick(20);
  await owner.scope('other').put('objects', 'y', { name: 'y' });
  await direct.put('objects', 'c', { name: 'c' });
  await until('the allowed scope\'s event', () => seen.length === 1);
  await tick(20);
  assert.deepEqual(seen, [scopeId]);
  assert.deepEqual(refused, ['ScopeNotAllowed']);
  off();
  await done();
});

test('a remote: functions do not cross, an owner remote excludes another, an HTTP remote carries its auth error', async () => {
  const scopeId = 'channel-remote';
  const withOwn = await pair('remote-own', { remote });
  await assert.rejects(withOwn.connected.scope(scopeId).sync({ remote }), (e) => e.code === 'InvalidInput' && /leave `remote` out/.test(e.message));
  await withOwn.done();

  const without = await pair('remote-none');
  const scope = without.connected.scope(scopeId);
  await assert.rejects(scope.sync(), (e) => e.code === 'InvalidInput' && /HTTP remote/.test(e.message));
  await assert.rejects(scope.sync({ remote: { url: cloud.url, token: () => TOKEN } }), (e) => e.code === 'InvalidInput' && /functions do not cross/.test(e.message));
  const there = await without.owner.scope(scopeId).sync({ remote: { url: cloud.url, token: 'wrong' } }).catch((e) => e);
  const here = await scope.sync({ remote: { url: cloud.url, token: 'wrong' } }).catch((e) => e);
  assert.equal(here.code, 'Auth');
  assert.equal(here.status, 401);
  assert.deepEqual(said(here), said(there));
  seed(scopeId, 50);
  assert.equal((await scope.sync({ remote })).run.inserted, 50);
  await without.done();
});

test('an AbortSignal cancels a sync on the owner', async () => {
  const scopeId = 'channel-abort';
  seed(scopeId, 3000);
  const { owner, served, connected, done } = await pair('abort', { remote });
  const scope = connected.scope(scopeId);
  const abort = new AbortController();
  let pages = 0;
  const run = scope.sync({
    pageSize: 50,
    signal: abort.signal,
    onProgress: (p) => {
      if (p.phase === 'apply' && ++pages === 2) abort.abort();
    },
  });
  await assert.rejects(run, (e) => isTetherError(e) && e.code === 'Cancelled');
  const [last] = await owner.scope(scopeId).history({ limit: 1 });
  assert.equal(last.status, 'cancelled');
  assert.ok(last.inserted < 3000, `inserted ${last.inserted}`);
  assert.equal(served.active, 0);
  // A signal already aborted sends nothing.
  await assert.rejects(scope.sync({ signal: AbortSignal.abort() }), (e) => e.code === 'Cancelled');
  // A query's signal rejects at once here.
  const q = new AbortController();
  const pending = scope.query('objects', { index: 'name' }, { signal: q.signal });
  q.abort();
  await assert.rejects(pending, (e) => e.code === 'Cancelled');
  await done();
});

test('closing the connection, its port, or the serving handle leaves no watcher on the owner', async () => {
  const scopeId = 'channel-close';
  for (const how of ['connection.close()', 'port.close()', 'served.close()']) {
    const { owner, served, connected, port1, port2, done } = await pair(`close-${how.split('.')[0]}`);
    const direct = owner.scope(scopeId);
    await direct.put('objects', 'a', { name: 'a' });
    const scope = connected.scope(scopeId);
    const pages = [];
    scope.watch('objects', { index: 'name' }, (p) => pages.push(p));
    scope.live('objects', { index: 'name', prefix: 'a' }).subscribe(() => {});
    scope.subscribe(() => {});
    connected.subscribe(() => {});
    await until('the watch', () => pages.length === 1 && served.active === 4);
    assert.equal(served.connections, 1);
    // Count what the owner does for this connection from now on: its queries and its posts.
    let queries = 0;
    const query = direct.query.bind(direct);
    direct.query = (...args) => {
      queries += 1;
      return query(...args);
    };
    let posts = 0;
    const post = port1.postMessage.bind(port1);
    port1.postMessage = (m) => {
      posts += 1;
      post(m);
    };
    if (how === 'connection.close()') await connected.close();
    else if (how === 'port.close()') port2.close();
    else served.close();
    await until('the owner to drop the connection', () => served.connections === 0);
    assert.equal(served.active, 0);
    await until('the connection to close', () => connected.closed);
    posts = 0;
    await direct.put('objects', 'b', { name: 'b' });
    await direct.put('objects', 'a2', { name: 'a2' });
    await tick(50);
    assert.equal(queries, 0, `${how}: the owner still re-runs a watched query`);
    assert.equal(posts, 0, `${how}: the owner still posts to the connection`);
    // A request after the close rejects with a clear error.
    await assert.rejects(scope.get('objects', 'a'), (e) => isTetherError(e) && e.code === 'Storage' && e.detail === 'Closed');
    delete direct.query;
    await done();
  }
});

test('an owner that never answers: a timeout; one whose replica failed to open: its error; unknown messages are ignored', async () => {
  const { port1, port2 } = new MessageChannel();
  port1.on('message', () => {}); // a port with no owner behind it
  await assert.rejects(connectReplica(port2, { timeoutMs: 100 }), (e) => e.code === 'Network' && e.detail === 'Timeout');
  port1.close();

  // An owner whose replica failed to open answers with that error.
  const failed = new MessageChannel();
  const opening = Replica.open(path.join(dir, 'no-such-dir', 'x.db'));
  const refused = serveReplica(failed.port1, opening);
  const there = await opening.catch((e) => e);
  const here = await connectReplica(failed.port2).catch((e) => e);
  assert.equal(here.code, 'Storage');
  assert.deepEqual(said(here), said(there));
  assert.equal(refused.connections, 0);
  failed.port1.close();

  const { owner, served, connected, port1: ownerPort, port2: connPort, done } = await pair('unknown');
  // Noise on both ports: other messages of the app, another version, garbage.
  for (const m of [null, 42, 'hi', { tether: 'tether-replica' }, { tether: 'tether-replica', v: 2, t: 'call', c: 'x' }, { type: 'app' }]) {
    connPort.postMessage(m);
    ownerPort.postMessage(m);
  }
  await owner.scope('s').put('objects', 'a', { name: 'a' });
  assert.equal((await connected.scope('s').get('objects', 'a')).data.name, 'a');
  assert.equal(served.connections, 1);
  await done();
});

// The channel's cost per query against a direct call (printed, and written in docs/browser.md;
// nothing asserted on time).
test('overhead of a query through the channel against a direct call', async (t) => {
  const scopeId = 'channel-bench';
  seed(scopeId, 10_000);
  const { owner, connected, done } = await pair('bench', { remote });
  await owner.scope(scopeId).sync({ remote });
  const names = [...new Set((await owner.scope(scopeId).list('objects', { limit: 1000 })).map((r) => r.data.name))];
  const N = 1000;
  const queries = Array.from({ length: N }, (_, i) => ({ index: 'name', eq: names[i % names.length], limit: 20 }));
  // Interleaved, so that the machine's noise falls on both alike.
  const direct = [];
  const channel = [];
  const time = async (scope, q, into) => {
    const start = performance.now();
    const page = await scope.query('objects', q);
    into?.push(performance.now() - start);
    assert.ok(page.records.length > 0);
  };
  const [d, c] = [owner.scope(scopeId), connected.scope(scopeId)];
  for (const q of queries.slice(0, 50)) await Promise.all([time(d, q), time(c, q)]); // warm-up
  for (const q of queries) {
    await time(d, q, direct);
    await time(c, q, channel);
  }
  const pick = (ms) => {
    ms.sort((a, b) => a - b);
    return { p50: ms[Math.floor(N * 0.5)], p99: ms[Math.floor(N * 0.99)] };
  };
  const [dp, cp] = [pick(direct), pick(channel)];
  const f = (x) => x.toFixed(3);
  const line =
    `${N} queries (index name, eq, limit 20) on ${await owner.scope(scopeId).count()} records: ` +
    `direct p50 ${f(dp.p50)} ms p99 ${f(dp.p99)} ms; channel p50 ${f(cp.p50)} ms p99 ${f(cp.p99)} ms; ` +
    `overhead p50 ${f(cp.p50 - dp.p50)} ms`;
  t.diagnostic(line);
  console.log(line);
  await done();
});
