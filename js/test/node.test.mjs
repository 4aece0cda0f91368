// The package's Node entry over the in-memory store: what a VS Code extension host uses.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Replica, isTetherError } from '../src/node.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cloud } from './fixtures/cloud.mjs';

async function seeded(n = 25) {
  const cloud = new Cloud();
  for (let i = 0; i < n; i++) await cloud.put('objects', `obj_${String(i).padStart(3, '0')}`, { name: `o${i}`, i });
  return cloud;
}

test('syncs from a function remote, reads, edits, and round-trips a snapshot', async () => {
  const cloud = await seeded();
  const replica = await Replica.openInMemory({ name: 'ext' });
  assert.equal(replica.kind, 'memory');
  const scope = replica.scope('org-1');
  assert.equal(replica.scope('org-1'), scope);
  const events = [];
  const report = await scope.sync({ remote: cloud.remote(), pageSize: 10, onProgress: (p) => events.push(p) });
  assert.equal(report.run.kind, 'initial');
  assert.equal(report.run.inserted, 25);
  assert.equal(report.run.pages, 3);
  assert.deepEqual(report.snapshot, cloud.snapshot());
  assert.ok(events.some((e) => e.phase === 'apply' && e.percent === 100));
  assert.equal(await scope.count('objects'), 25);
  const rec = await scope.get('objects', 'obj_003');
  assert.deepEqual(rec.data, { name: 'o3', i: 3 });
  assert.equal(rec.pending, false);
  assert.equal(typeof rec.updatedAt, 'string');
  const page = await scope.list('objects', { after: 'obj_010', limit: 3 });
  assert.deepEqual(page.map((r) => r.id), ['obj_011', 'obj_012', 'obj_013']);

  // A local edit is pushed by the next sync; a stale one loses to the cloud and is journaled.
  await scope.put('objects', 'obj_001', { name: 'mine' });
  await cloud.put('objects', 'obj_001', { name: 'theirs' });
  await scope.put('objects', 'new_1', { name: 'created here' });
  assert.equal((await scope.status()).pendingEdits, 2);
  const second = await scope.sync({ remote: cloud.remote() });
  assert.equal(second.run.kind, 'incremental');
  assert.equal(second.run.conflicts, 1);
  assert.deepEqual((await scope.get('objects', 'obj_001')).data, { name: 'theirs' });
  assert.equal((await scope.get('objects', 'new_1')).pending, false);
  const [conflict] = await scope.conflicts();
  assert.equal(conflict.recordId, 'obj_001');
  assert.deepEqual(conflict.localData, { name: 'mine' });
  await scope.dismissConflict(conflict.id);
  assert.equal((await scope.conflicts()).length, 0);
  const status = await scope.status();
  assert.equal(status.count, 26);
  assert.equal(status.digest, cloud.snapshot().digest);
  assert.equal(status.syncRecommended, false);

  const copy = await Replica.openInMemory({ snapshot: replica.exportSnapshot() });
  assert.deepEqual(await copy.scope('org-1').status(), status);
  assert.deepEqual(await copy.scopes(), ['org-1']);
  const history = await scope.history();
  assert.deepEqual(history.map((r) => r.kind), ['incremental', 'initial']);
  const stats = await scope.stats({ days: 1 });
  assert.equal(stats.completed, 2);
});

test('errors are Error objects with a stable name and code', async () => {
  const replica = await Replica.openInMemory();
  const scope = replica.scope('s');
  await assert.rejects(scope.put('c', 'x', [1, 2]), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'InvalidInputError');
    assert.equal(e.code, 'InvalidInput');
    assert.ok(isTetherError(e));
    return true;
  });
  assert.throws(() => replica.scope(''), { name: 'InvalidInputError' });
  const offline = { pull: async () => { throw new TypeError('fetch failed'); } };
  await assert.rejects(scope.sync({ remote: offline }), { name: 'NetworkError', code: 'Network' });
  const denied = { pull: async () => { throw Object.assign(new Error('no'), { code: 'Auth', status: 401 }); } };
  await assert.rejects(scope.sync({ remote: denied }), { name: 'AuthError', status: 401 });
  const bad = { pull: async () => ({ changes: [{ collection: 'c', id: '1', version: 1, updated_at: '', data: { a: 1 }, hash: '00'.repeat(32) }], checkpoint: '1', has_more: false, snapshot: { count: 1, digest: '00'.repeat(32) } }) };
  await assert.rejects(scope.sync({ remote: bad }), { name: 'ProtocolError' });
  assert.equal(await scope.count(), 0);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(scope.sync({ remote: offline, signal: ac.signal }), { name: 'CancelledError' });
  // A directory is no replica file (and Node 20 has no node:sqlite at all): a StorageError.
  await assert.rejects(Replica.open(os.tmpdir()), { name: 'StorageError' });
  const [last] = await scope.history({ limit: 1 });
  assert.equal(last.status, 'failed');
  assert.equal(last.error.kind, 'Protocol');
});

test('overlapping calls on one object neither panic nor run two syncs at once', async () => {
  const cloud = await seeded(200);
  const replica = await Replica.openInMemory();
  const scope = replica.scope('s');
  let active = 0;
  let maxActive = 0;
  const remote = {
    pull: async (args) => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      await new Promise((r) => setTimeout(r, 2));
      try {
        return await cloud.pull(args.checkpoint, args.limit);
      } finally {
        active -= 1;
      }
    },
  };
  const results = await Promise.all([
    scope.sync({ remote, pageSize: 20 }),
    scope.sync({ remote, pageSize: 20 }),
    scope.count(),
    scope.list('objects'),
    scope.status(),
    scope.put('objects', 'local', { a: 1 }),
  ]);
  assert.equal(maxActive, 1);
  assert.equal(results[0].run.inserted + results[1].run.inserted, 200);
  assert.equal(await scope.count(), 201);
});

test('background sync runs, backs off on network errors, and stops', async () => {
  const cloud = await seeded(5);
  const replica = await Replica.openInMemory();
  const scope = replica.scope('s');
  const synced = [];
  const errors = [];
  cloud.offline = true;
  const bg = scope.startBackgroundSync({
    remote: cloud.remote(),
    intervalMs: 20,
    onSync: (r) => synced.push(r),
    onError: (e) => errors.push(e),
  });
  while (errors.length < 1) await new Promise((r) => setTimeout(r, 5));
  assert.equal(errors[0].code, 'Network');
  assert.equal(bg.failures, 1);
  cloud.offline = false;
  await bg.stop();
  assert.equal(bg.running, false);
  const bg2 = scope.startBackgroundSync({ remote: cloud.remote(), intervalMs: 20, onSync: (r) => synced.push(r) });
  while (synced.length < 2) await new Promise((r) => setTimeout(r, 5));
  await scope.stop();
  assert.equal(bg2.running, false);
  assert.equal(synced[0].run.trigger, 'background');
  assert.equal(await scope.count(), 5);
});

// The decision after each round is the engine's (Schedule::after), the same as the native
// driver's (crates/native/tests/background.rs, each_error_kind_gets_the_engines_decision):
// Auth and InvalidInput stop it after one attempt; Network backs off, counting failures; the
// other kinds wait the interval without counting.
test('background sync makes the engine decision for each error kind', async () => {
  const replica = await Replica.openInMemory();
  const scope = replica.scope('s');
  const cases = [
    ['InvalidInput', true],
    ['Auth', true],
    ['Protocol', false],
    ['Storage', false],
    ['Network', false],
  ];
  for (const [code, stops] of cases) {
    let pulls = 0;
    const errors = [];
    const remote = {
      pull: async () => {
        pulls += 1;
        throw Object.assign(new Error(`failing with ${code}`), { code });
      },
    };
    const bg = scope.startBackgroundSync({ remote, intervalMs: 20, onError: (e) => errors.push(e.code) });
    const until = async (done) => {
      for (const deadline = Date.now() + 5000; !done() && Date.now() < deadline; ) {
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    if (stops) {
      await until(() => !bg.running);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(bg.running, false, `${code} stops it`);
      assert.equal(pulls, 1, `${code} is not retried`);
    } else {
      await until(() => errors.length >= (code === 'Network' ? 1 : 3));
      assert.equal(bg.running, true, code);
      // A network failure backs off from 5 s: one attempt so far; the others wait 20 ms.
      assert.equal(bg.failures, code === 'Network' ? 1 : 0, code);
    }
    await bg.stop();
    assert.ok(errors.every((c) => c === code), `${code}: ${errors}`);
  }
  // The defaults are the engine's: every 15 minutes, ±10 %.
  const idle = scope.startBackgroundSync({ remote: { pull: async () => ({}) }, runNow: false });
  assert.equal(idle.intervalMs, 15 * 60_000);
  assert.equal(idle.jitter, 0.1);
  await idle.stop();
  await replica.close();
});

// setTimeout keeps its delay as a signed 32-bit integer and fires at once above 2^31 - 1 ms: a
// huge intervalMs or Retry-After must not become a tight loop.
test('background sync clamps huge intervals and Retry-After to what setTimeout keeps', async () => {
  const { MAX_TIMEOUT_MS } = await import('../src/core.js');
  assert.equal(MAX_TIMEOUT_MS, 2 ** 31 - 1);
  const replica = await Replica.openInMemory();
  const scope = replica.scope('s');
  const delays = [];
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = (f, ms, ...args) => {
    delays.push(ms);
    return realSetTimeout(f, ms, ...args);
  };
  let pulls = 0;
  const errors = [];
  const slowDown = {
    pull: async () => {
      pulls += 1;
      throw Object.assign(new Error('slow down'), { code: 'Network', retryAfterMs: 2 ** 40 });
    },
  };
  try {
    // intervalMs far above the limit, no run now: one timer, clamped.
    const idle = scope.startBackgroundSync({ remote: slowDown, intervalMs: 2 ** 40, runNow: false });
    await idle.stop();
    // A run that fails with a huge Retry-After: the next timer is clamped too.
    const bg = scope.startBackgroundSync({ remote: slowDown, onError: (e) => errors.push(e) });
    while (errors.length < 1) await new Promise((r) => realSetTimeout(r, 5));
    await new Promise((r) => realSetTimeout(r, 50));
    await bg.stop();
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  assert.equal(pulls, 1, 'no tight loop');
  const long = delays.filter((d) => d > 1000);
  assert.ok(long.length >= 2, `timers: ${delays}`);
  assert.ok(long.every((d) => d === MAX_TIMEOUT_MS), `timers: ${delays}`);
});

// CI runs this file with the system Node 20 and sets TETHER_EXPECT_NODE_SQLITE=0: the error
// branch must be the one taken there. (test/node24/ covers the store itself under Node 24.)
test('Replica.open(path) needs node:sqlite, and says so clearly where it is missing', async () => {
  const hasSqlite = await import('node:sqlite').then(() => true, () => false);
  const expected = process.env.TETHER_EXPECT_NODE_SQLITE;
  if (expected !== undefined) assert.equal(hasSqlite, expected === '1', `node:sqlite in ${process.version}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-node-open-'));
  try {
    if (hasSqlite) {
      const replica = await Replica.open(path.join(dir, 'replica.db'));
      assert.equal(replica.kind, 'sqlite');
      await replica.close();
    } else {
      await assert.rejects(Replica.open(path.join(dir, 'replica.db')), (e) => {
        assert.ok(isTetherError(e));
        assert.equal(e.name, 'StorageError');
        assert.equal(e.code, 'Storage');
        assert.ok(e.message.includes(process.version), e.message);
        assert.match(e.message, /node:sqlite/);
        assert.match(e.message, /openInMemory/);
        return true;
      });
      // The in-memory replica still works on this Node.
      assert.equal((await Replica.openInMemory()).kind, 'memory');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('preview tells what a sync would do and writes nothing', async () => {
  const cloud = await seeded(12);
  const replica = await Replica.openInMemory({ name: 'preview' });
  const scope = replica.scope('org-1');
  const first = await scope.preview({ remote: cloud.remote(), pageSize: 5 });
  assert.equal(first.full, true);
  assert.equal(first.counts.inserted, 12);
  assert.equal(first.pages, 3);
  assert.equal(await scope.count('objects'), 0, 'nothing written');
  assert.deepEqual(await scope.history(), [], 'no run recorded');
  await scope.sync({ remote: cloud.remote() });
  await cloud.put('objects', 'obj_000', { name: 'changed' });
  await scope.put('objects', 'obj_000', { name: 'mine' });
  const next = await scope.preview({ remote: cloud.remote() });
  assert.equal(next.full, false);
  assert.equal(next.pushes, 1);
  assert.equal(next.counts.conflicts, 1);
  assert.deepEqual(next.conflicts, [{ collection: 'objects', id: 'obj_000' }]);
  assert.equal((await scope.get('objects', 'obj_000')).data.name, 'mine', 'still the local edit');
  await replica.close();
});

test('a function remote answers reset and pages as objects, JSON text, or objects with toJSON', async () => {
  const forms = {
    object: (answer) => answer,
    text: (answer) => JSON.stringify(answer),
    toJSON: (answer) => ({ toJSON: () => answer }),
    // `reset: false` beside a page's members: still a page.
    'reset: false': (answer) => (answer.reset ? answer : { ...answer, reset: false }),
  };
  for (const [form, wrap] of Object.entries(forms)) {
    const cloud = await seeded(12);
    const remote = { pull: async ({ checkpoint, limit }) => wrap(await cloud.pull(checkpoint, limit)) };
    const scope = (await Replica.openInMemory()).scope('s');
    assert.equal((await scope.sync({ remote, pageSize: 5 })).run.inserted, 12, form);
    // The tombstone is purged, so only a reset (a full download, then a sweep) removes the row.
    await cloud.delete('objects', 'obj_004');
    cloud.purge();
    const report = await scope.sync({ remote, pageSize: 5 });
    assert.equal(report.run.kind, 'full-resync', form);
    assert.equal(await scope.get('objects', 'obj_004'), null, form);
    assert.deepEqual(report.snapshot, cloud.snapshot(), form);
  }
});
