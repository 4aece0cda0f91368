// Change events and watched queries over the Node entry's file replica (node:sqlite). Needs a
// Node with node:sqlite (CI: the pinned Node 24). Indexes of the SQLite store are another
// part's work: these tests use none.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Replica } from '../../src/node.js';
import { Events } from '../../src/live.js';
import { Cloud } from '../fixtures/cloud.mjs';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test('a SQLite file replica publishes its edits and sync pages as change events, locally only', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-events-'));
  try {
    const cloud = new Cloud();
    for (let i = 0; i < 4; i++) await cloud.put('objects', `obj_${i}`, { name: `o${i}` });
    const file = path.join(dir, 'replica.db');
    const replica = await Replica.open(file);
    assert.equal(replica.kind, 'sqlite');
    // Another object on the same file: SQLite replicas share no events (no other tabs here).
    const second = await Replica.open(file);
    const events = [];
    const others = [];
    replica.subscribe((e) => events.push(e));
    second.subscribe((e) => others.push(e));
    const scope = replica.scope('org-1');
    const report = await scope.sync({ remote: cloud.remote(), pageSize: 3 });
    await scope.put('objects', 'mine', { name: 'local' });
    await scope.delete('objects', 'obj_0');
    await tick(20);
    assert.deepEqual(
      events.map((e) => [e.source, e.run, e.origin, e.changes.map((c) => `${c.op} ${c.id}`)]),
      [
        ['pull', report.run.id, 'local', ['insert obj_0', 'insert obj_1', 'insert obj_2']],
        ['pull', report.run.id, 'local', ['insert obj_3']],
        ['local', null, 'local', ['insert mine']],
        ['local', null, 'local', ['delete obj_0']],
      ],
    );
    assert.deepEqual(others, []);
    // The other object reads the committed file.
    assert.deepEqual((await second.scope('org-1').get('objects', 'mine')).data, { name: 'local' });
    await second.close();
    await replica.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a listener gets the writes that commit while it listens, however often listeners come and go', async () => {
  // With no listener (and no other tabs to tell) the wasm's event hook is let go, so a write
  // builds no event; it is taken again with the next listener.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-events-'));
  try {
    const replica = await Replica.open(path.join(dir, 'replica.db'));
    const scope = replica.scope('org-1');
    const got = [];
    const listen = () => replica.subscribe((e) => got.push(...e.changes.map((c) => c.id)));
    await scope.put('objects', 'before', { n: 0 });
    const stop = listen();
    await scope.put('objects', 'first', { n: 1 });
    await tick(20);
    stop();
    stop();
    await scope.put('objects', 'unheard', { n: 2 });
    await tick(20);
    const again = listen();
    await scope.put('objects', 'second', { n: 3 });
    await tick(20);
    again();
    await replica.close();
    assert.deepEqual(got, ['first', 'second']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the wasm change hook is held only while a listener or another tab wants the events', () => {
  let held = 0;
  let taken = 0;
  const raw = {
    onChange() {
      held++;
      taken++;
      return { cancel: () => held-- };
    },
  };
  const events = new Events(raw, null);
  assert.equal(held, 0, 'held with nobody listening');
  const all = events.listen(null, () => {});
  const one = events.listen('org-1', () => {});
  assert.deepEqual([held, taken], [1, 1]);
  all();
  assert.equal(held, 1, 'let go while a listener is left');
  one();
  one();
  assert.equal(held, 0, 'kept after the last listener left');
  events.listen(null, () => {});
  assert.deepEqual([held, taken], [1, 2]);
  events.close();
  assert.equal(held, 0, 'kept after close');
  events.listen(null, () => {});
  assert.equal(held, 0, 'taken again after close');
  // With a channel (an IndexedDB replica's other tabs) it is held from the start to close.
  const shared = new Events(raw, `tether:test-${process.pid}`);
  assert.equal(held, 1);
  shared.close();
  assert.equal(held, 0);
});

test('Replica.open(path, {indexes}) queries and watches a SQLite file; a reopen keeps the indexes', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-indexes-'));
  const indexes = { columns: [['object_id', 'position']] };
  try {
    const file = path.join(dir, 'replica.db');
    const replica = await Replica.open(file, { indexes });
    const scope = replica.scope('org-1');
    for (const [id, p] of [['c3', 3], ['c1', 1], ['c2', 2]]) await scope.put('columns', id, { object_id: 'obj_1', position: p });
    const query = { index: ['object_id', 'position'], eq: 'obj_1' };
    const results = [];
    const stop = scope.watch('columns', query, (page) => results.push(page.records.map((r) => r.id)));
    while (results.length < 1) await tick(2);
    await scope.put('columns', 'c0', { object_id: 'obj_1', position: 0 });
    while (results.length < 2) await tick(2);
    stop();
    assert.deepEqual(results, [['c1', 'c2', 'c3'], ['c0', 'c1', 'c2', 'c3']]);
    assert.equal(await scope.count('columns', query), 4);
    await replica.close();
    const again = await Replica.open(file, { indexes });
    const page = await again.scope('org-1').query('columns', { ...query, order: 'desc', limit: 2 });
    assert.deepEqual(page.records.map((r) => r.id), ['c3', 'c2']);
    assert.notEqual(page.cursor, null);
    await again.close();
    // Reopened without a declaration (as the CLI or another tool sharing the file would): the
    // indexes are kept.
    const plain = await Replica.open(file);
    assert.equal((await plain.scope('org-1').query('columns', query)).records.length, 4);
    await plain.close();
    // Declared empty: dropped, and a query on it says so.
    const none = await Replica.open(file, { indexes: {} });
    await assert.rejects(none.scope('org-1').query('columns', query), { name: 'InvalidInputError' });
    await none.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
