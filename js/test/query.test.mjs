// Indexes, queries, change events, watched and live queries through the package's Node entry,
// over the in-memory store (the reference implementation of indexes in the engine).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Replica, isTetherError } from '../src/node.js';
import { Cloud } from './fixtures/cloud.mjs';

const INDEXES = {
  columns: ['object_id', ['object_id', 'position']],
  objects: ['name', { name: 'by_schema', paths: ['schema', 'name'] }],
  nums: ['n'],
};

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` holds (polling), failing after `ms`. */
async function until(cond, what, ms = 2000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await tick(2);
  }
}

async function columnsReplica() {
  const replica = await Replica.openInMemory({ indexes: INDEXES });
  const scope = replica.scope('org-1');
  for (const [id, object_id, position] of [
    ['c3', 'obj_1', 3], ['c1', 'obj_1', 1], ['c2', 'obj_1', 2], ['c9', 'obj_2', 1], ['c4', 'obj_1', 10],
  ]) {
    await scope.put('columns', id, { object_id, position, name: `col_${id}` });
  }
  return { replica, scope };
}

test('queries: equality, ranges, prefix, in, order, limit and cursor, count', async () => {
  const { scope } = await columnsReplica();
  const ids = (page) => page.records.map((r) => r.id);

  const byObject = await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_1' });
  assert.deepEqual(ids(byObject), ['c1', 'c2', 'c3', 'c4'], 'numbers in numeric order, not text');
  assert.equal(byObject.cursor, null);
  const rec = byObject.records[0];
  assert.deepEqual(rec.data, { object_id: 'obj_1', position: 1, name: 'col_c1' });
  assert.equal(rec.collection, 'columns');
  assert.equal(rec.pending, true);
  assert.equal(typeof rec.updatedAt, 'string', 'records have the same camelCase shape as get()');
  assert.deepEqual(rec, await scope.get('columns', 'c1'));

  const range = await scope.query('columns', { index: 'object_id+position', eq: ['obj_1'], gt: 1, lte: 3 });
  assert.deepEqual(ids(range), ['c2', 'c3']);
  const desc = await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_1', order: 'desc' });
  assert.deepEqual(ids(desc), ['c4', 'c3', 'c2', 'c1']);
  const any = await scope.query('columns', { index: 'object_id', in: ['obj_2', 'nope', 'obj_1'] });
  assert.deepEqual(ids(any), ['c1', 'c2', 'c3', 'c4', 'c9'], 'ties in an index ordered by id');

  // Pages of 2 with a cursor, until the cursor is null.
  const seen = [];
  let after;
  let pages = 0;
  do {
    const page = await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_1', limit: 2, after });
    seen.push(...ids(page));
    after = page.cursor;
    pages += 1;
    assert.ok(pages < 5, 'paging ends');
  } while (after);
  assert.deepEqual(seen, ['c1', 'c2', 'c3', 'c4']);

  assert.equal(await scope.count('columns', { index: 'object_id', eq: 'obj_1', limit: 1 }), 4, 'count ignores limit');
  assert.equal(await scope.count('columns'), 5, 'the plain count is unchanged');

  await scope.put('objects', 'o1', { name: 'orders', schema: 'sales' });
  await scope.put('objects', 'o2', { name: 'order_lines', schema: 'sales' });
  await scope.put('objects', 'o3', { name: 'people', schema: 'hr' });
  await scope.put('objects', 'o4', { name: 'Orders', schema: 'sales' });
  assert.deepEqual(ids(await scope.query('objects', { index: 'name', prefix: 'order' })), ['o2', 'o1'], 'prefix is case-sensitive');
  assert.deepEqual(ids(await scope.query('objects', { index: 'by_schema', eq: 'sales', prefix: 'O' })), ['o4']);

  // Local edits are visible at once; a pending local delete leaves the results.
  await scope.put('columns', 'c2', { object_id: 'obj_2', position: 0 });
  await scope.delete('columns', 'c3');
  assert.deepEqual(ids(await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_1' })), ['c1', 'c4']);
  assert.deepEqual(ids(await scope.query('columns', { index: ['object_id', 'position'], eq: 'obj_2' })), ['c2', 'c9']);
});

test('queries agree with a plain filter over random numbers and strings', async () => {
  const replica = await Replica.openInMemory({ indexes: { nums: ['n', ['n', 's']] } });
  const scope = replica.scope('s');
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const values = [-3, -1.5, 0, 0.25, 1, 2, 2, 10, 1e9, -1e-3];
  const strings = ['', 'a', 'ab', 'b', 'B', 'é', 'z'];
  const rows = new Map();
  for (let i = 0; i < 120; i++) {
    const id = `r${String(Math.floor(rnd() * 80)).padStart(2, '0')}`;
    if (rnd() < 0.15) {
      await scope.delete('nums', id);
      rows.delete(id);
    } else {
      const data = { n: values[Math.floor(rnd() * values.length)], s: strings[Math.floor(rnd() * strings.length)] };
      await scope.put('nums', id, data);
      rows.set(id, data);
    }
  }
  // Ids and these strings are ASCII or one code point: JS order is UTF-8 byte order here.
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const byN = [...rows.entries()].sort(([a, x], [b, y]) => x.n - y.n || cmp(a, b));
  const byNS = [...rows.entries()].sort(([a, x], [b, y]) => x.n - y.n || cmp(x.s, y.s) || cmp(a, b));
  for (let k = 0; k < 40; k++) {
    const lo = values[Math.floor(rnd() * values.length)];
    const hi = values[Math.floor(rnd() * values.length)];
    const desc = rnd() < 0.5;
    const query = { index: 'n', gte: lo, lt: hi, order: desc ? 'desc' : 'asc' };
    let want = byN.filter(([, d]) => d.n >= lo && d.n < hi).map(([id]) => id);
    if (desc) want = want.reverse();
    const got = (await scope.query('nums', query)).records.map((r) => r.id);
    assert.deepEqual(got, want, JSON.stringify(query));
    assert.equal(await scope.count('nums', query), want.length);
    const eq = values[Math.floor(rnd() * values.length)];
    const s = strings[Math.floor(rnd() * strings.length)];
    const wantEq = byNS.filter(([, d]) => d.n === eq && d.s >= s).map(([id]) => id);
    const gotEq = (await scope.query('nums', { index: ['n', 's'], eq, gte: s })).records.map((r) => r.id);
    assert.deepEqual(gotEq, wantEq, `n = ${eq}, s >= ${JSON.stringify(s)}`);
  }
});

test('bad declarations and bad queries are InvalidInput errors that say what is wrong', async () => {
  for (const indexes of [['name'], { objects: 'name' }, { objects: [42] }, { objects: [{ paths: ['x'] }] }, { objects: ['a..b'] }]) {
    await assert.rejects(Replica.openInMemory({ indexes }), (e) => {
      assert.ok(isTetherError(e), String(e));
      assert.equal(e.name, 'InvalidInputError');
      return true;
    }, JSON.stringify(indexes));
  }
  const { scope } = await columnsReplica();
  const rejects = (query, pattern, collection = 'columns') =>
    assert.rejects(scope.query(collection, query), (e) => {
      assert.equal(e.code, 'InvalidInput', e.message);
      assert.match(e.message, pattern);
      return true;
    });
  await rejects({ index: 'position' }, /columns\.position/);
  await rejects({ index: 'name' }, /no index objects\.name|declared/, 'columns_typo');
  await rejects({ index: 'object_id', limt: 3 }, /unknown field "limt"/);
  await rejects({ eq: 'obj_1' }, /names no index/);
  await rejects({ index: 'object_id', eq: { a: 1 } }, /null, booleans, numbers or strings/);
  await rejects({ index: 'object_id', prefix: 'o', gt: 'a' }, /one of a range/);
  await rejects({ index: 'object_id', order: 'up' }, /order must be/);
  await rejects({ index: 'object_id', limit: -1 }, /limit must be a whole number/);
  await rejects({ index: 'object_id', after: 'not a cursor' }, /not a query cursor/);
  await rejects('object_id', /a query is an object/);
  await rejects({ index: 'object_id', collection: 'objects' }, /collection must be left out/);
  assert.equal((await scope.query('columns', { index: 'object_id', collection: 'columns', eq: 'obj_2' })).records.length, 1);
  await assert.rejects(scope.count('columns', { index: 'nope' }), { name: 'InvalidInputError' });
});

test('a snapshot opened with indexes has them built over its records', async () => {
  const { replica } = await columnsReplica();
  const copy = await Replica.openInMemory({ snapshot: replica.exportSnapshot(), indexes: { columns: ['position'] } });
  const page = await copy.scope('org-1').query('columns', { index: 'position', gte: 2 });
  assert.deepEqual(page.records.map((r) => r.id), ['c2', 'c3', 'c4']);
  // The copy declared only `position`: the others are not there.
  await assert.rejects(copy.scope('org-1').query('columns', { index: 'object_id' }), { name: 'InvalidInputError' });
});

test('subscribe: one event per committed change, from edits and syncs, per scope, after commit', async () => {
  const cloud = new Cloud();
  for (let i = 0; i < 5; i++) await cloud.put('objects', `obj_${i}`, { name: `o${i}` });
  const replica = await Replica.openInMemory();
  const scope = replica.scope('org-1');
  const other = replica.scope('org-2');
  const events = [];
  const off = scope.subscribe((e) => events.push(e));
  const report = await scope.sync({ remote: cloud.remote(), pageSize: 2 });
  await tick();
  assert.equal(events.length, 3, 'one event per page');
  assert.ok(events.every((e) => e.source === 'pull' && e.run === report.run.id && e.origin === 'local'));
  assert.deepEqual(events.flatMap((e) => e.changes.map((c) => c.id)), ['obj_0', 'obj_1', 'obj_2', 'obj_3', 'obj_4']);
  assert.ok(events.flatMap((e) => e.changes).every((c) => c.op === 'insert'));
  events.length = 0;

  const all = [];
  const seenInside = [];
  const offReader = scope.subscribe((e) => {
    // A listener that reads sees the committed state.
    if (e.source === 'local') scope.get(e.changes[0].collection, e.changes[0].id).then((r) => seenInside.push(r?.data ?? null));
  });
  const offAll = replica.subscribe((e) => all.push(e));
  const throwing = scope.subscribe(() => {
    throw new Error('a broken listener');
  });
  const errors = [];
  const realError = console.error;
  console.error = (e) => errors.push(e);
  try {
    await scope.put('objects', 'a', { v: 1 });
    await scope.put('objects', 'a', { v: 2 });
    await scope.put('objects', 'a', { v: 2 }); // same data: no visible change, no event
    await scope.delete('objects', 'a');
    await other.put('objects', 'b', { v: 1 });
    await tick();
  } finally {
    console.error = realError;
  }
  throwing();
  assert.ok(errors.some((e) => e?.message === 'a broken listener'), 'a throwing listener is reported');
  assert.deepEqual(
    events.map((e) => [e.scope, e.source, e.run, e.origin, e.changes]),
    [
      ['org-1', 'local', null, 'local', [{ collection: 'objects', id: 'a', op: 'insert' }]],
      ['org-1', 'local', null, 'local', [{ collection: 'objects', id: 'a', op: 'update' }]],
      ['org-1', 'local', null, 'local', [{ collection: 'objects', id: 'a', op: 'delete' }]],
    ],
  );
  assert.deepEqual(all.map((e) => e.scope), ['org-1', 'org-1', 'org-1', 'org-2']);
  await until(() => seenInside.length === 3, 'the reads inside the listener');
  assert.deepEqual(seenInside, [{ v: 1 }, { v: 2 }, null]);

  off();
  offReader();
  offAll();
  await scope.put('objects', 'z', { v: 1 });
  await tick();
  assert.equal(events.length, 3, 'no event after unsubscribe');
  assert.equal(all.length, 4);
  assert.throws(() => scope.subscribe('not a function'), { name: 'InvalidInputError' });
});

test('watch: first result, then only changes of the result; coalesced; stopped by its unsubscribe', async () => {
  const { scope } = await columnsReplica();
  const realQuery = scope.query.bind(scope);
  let queries = 0;
  let delay = 0;
  scope.query = async (...args) => {
    queries += 1;
    if (delay) await tick(delay);
    return realQuery(...args);
  };
  const results = [];
  const stop = scope.watch('columns', { index: ['object_id', 'position'], eq: 'obj_1' }, (r) => results.push(r));
  await until(() => results.length === 1, 'the first result');
  assert.deepEqual(results[0].records.map((r) => r.id), ['c1', 'c2', 'c3', 'c4']);

  // A change in another collection does not re-query; one in the collection but outside the
  // result re-queries and calls back nothing.
  await scope.put('objects', 'o1', { name: 'x' });
  await tick(10);
  assert.equal(queries, 1);
  await scope.put('columns', 'c9', { object_id: 'obj_2', position: 5 });
  await until(() => queries === 2, 'the re-query');
  await tick(10);
  assert.equal(results.length, 1, 'an unchanged result is not called back');

  // A change of a record in the result.
  await scope.put('columns', 'c2', { object_id: 'obj_1', position: 20 });
  await until(() => results.length === 2, 'the changed result');
  assert.deepEqual(results[1].records.map((r) => r.id), ['c1', 'c3', 'c4', 'c2']);

  // A burst of 30 writes: one re-query (perhaps one more if the burst outlasts it), not 30.
  const before = queries;
  await Promise.all(Array.from({ length: 30 }, (_, i) => scope.put('columns', `n${i}`, { object_id: 'obj_1', position: 100 + i })));
  await until(() => results.at(-1).records.length === 34, 'the burst in the result');
  await tick(20);
  assert.ok(queries - before <= 2, `${queries - before} queries for a burst of 30 writes`);
  assert.ok(results.length <= 4, `${results.length} callbacks`);

  // A change during a re-query: one more query after it, and the last result has the change.
  delay = 30;
  const during = queries;
  await scope.put('columns', 'late1', { object_id: 'obj_1', position: 0 });
  await until(() => queries === during + 1, 'the slow re-query to start');
  await scope.put('columns', 'late2', { object_id: 'obj_1', position: -1 });
  await scope.put('columns', 'late3', { object_id: 'obj_1', position: -2 });
  await until(() => results.at(-1).records.length === 37, 'both changes in the result');
  await tick(80);
  assert.equal(queries, during + 2, 'one query for the change, one more for those during it');
  assert.deepEqual(results.at(-1).records.slice(0, 3).map((r) => r.id), ['late3', 'late2', 'late1']);

  // Unsubscribe while a re-query is in flight: no callback after it returned.
  const count = results.length;
  await scope.put('columns', 'gone', { object_id: 'obj_1', position: -5 });
  await until(() => queries === during + 3, 'the re-query to start');
  stop();
  await tick(80);
  assert.equal(results.length, count, 'no callback after the unsubscribe');
  await scope.put('columns', 'gone2', { object_id: 'obj_1', position: -6 });
  await tick(50);
  assert.equal(queries, during + 3, 'no query after the unsubscribe');
});

test('watch: a sync that clears pending flags calls back; errors go to onError', async () => {
  const cloud = new Cloud();
  const replica = await Replica.openInMemory({ indexes: INDEXES });
  const scope = replica.scope('org-1');
  await scope.put('objects', 'o1', { name: 'orders', schema: 'sales' });
  const results = [];
  const stop = scope.watch('objects', { index: 'name' }, (r) => results.push(r));
  await until(() => results.length === 1, 'the first result');
  assert.equal(results[0].records[0].pending, true);
  await scope.sync({ remote: cloud.remote() });
  await until(() => results.length === 2, 'the result after the push');
  assert.equal(results[1].records[0].pending, false);
  assert.equal(results[1].records[0].hash, results[0].records[0].hash);
  stop();

  const errors = [];
  const stopBad = scope.watch('objects', { index: 'undeclared' }, () => assert.fail('no result'), { onError: (e) => errors.push(e) });
  await until(() => errors.length === 1, 'the error');
  assert.equal(errors[0].name, 'InvalidInputError');
  stopBad();
});

test('onSyncEnd: called when each sync or verify run ends, failed ones too, until unsubscribed', async () => {
  const cloud = new Cloud();
  const replica = await Replica.openInMemory({ indexes: INDEXES });
  const scope = replica.scope('org-1');
  const other = replica.scope('org-2');
  let ends = 0;
  let events = 0;
  const off = scope.onSyncEnd(() => (ends += 1));
  scope.subscribe(() => (events += 1));
  await scope.put('objects', 'o1', { name: 'orders', schema: 'sales' });
  await until(() => events === 1, 'the edit event');
  assert.equal(ends, 0, 'a local edit is no sync end');
  await scope.sync({ remote: cloud.remote() });
  await until(() => ends === 1, 'the end of the sync');
  assert.equal((await scope.status()).pendingEdits, 0, 'the status after the end is the new one');
  // This remote has no digest to compare with: the verify run fails, and ends.
  await assert.rejects(scope.verify({ remote: cloud.remote() }), { code: 'InvalidInput' });
  await until(() => ends === 2, 'the end of the verify run');
  const failing = { pull: () => Promise.reject(Object.assign(new Error('down'), { code: 'Network' })) };
  await assert.rejects(scope.sync({ remote: { ...failing } }), { code: 'Network' });
  await until(() => ends === 3, 'the end of the failed sync');
  await other.sync({ remote: cloud.remote() });
  await tick(20);
  assert.equal(ends, 3, "another scope's runs are not this scope's");
  off();
  await scope.sync({ remote: cloud.remote() });
  await tick(20);
  assert.equal(ends, 3, 'no call after unsubscribing');
  assert.throws(() => scope.onSyncEnd('nope'), { code: 'InvalidInput' });
});

test('live: a Svelte store, a React external store and an async iterable', async () => {
  const { scope } = await columnsReplica();
  const realQuery = scope.query.bind(scope);
  let queries = 0;
  scope.query = (...args) => {
    queries += 1;
    return realQuery(...args);
  };
  const live = scope.live('columns', { index: ['object_id', 'position'], eq: 'obj_2' });
  await tick(10);
  assert.equal(queries, 0, 'nothing runs before someone subscribes');
  const { subscribe, getSnapshot } = live; // React passes them unbound
  assert.equal(getSnapshot(), undefined);

  // Svelte: called at once with the current value (undefined before the first result).
  const values = [];
  const unsubscribe = subscribe((v) => values.push(v));
  assert.deepEqual(values, [undefined]);
  await until(() => values.length === 2, 'the first result');
  assert.deepEqual(values[1].records.map((r) => r.id), ['c9']);
  const snap = getSnapshot();
  assert.equal(snap, values[1]);

  // A change that leaves the result as it was keeps the same snapshot object.
  await scope.put('columns', 'c1', { object_id: 'obj_1', position: 99 });
  await tick(20);
  assert.equal(getSnapshot(), snap, 'stable between changes');
  await scope.put('columns', 'c5', { object_id: 'obj_2', position: 0 });
  await until(() => getSnapshot() !== snap, 'the new snapshot');
  assert.deepEqual(getSnapshot().records.map((r) => r.id), ['c5', 'c9']);
  assert.equal(values.at(-1), getSnapshot());

  // A late subscriber gets the current value at once.
  const late = [];
  const offLate = live.subscribe((v) => late.push(v));
  assert.deepEqual(late, [getSnapshot()]);
  offLate();

  // Async iteration: the current result first, then each new one; return() ends it.
  const it = live[Symbol.asyncIterator]();
  const first = await it.next();
  assert.deepEqual(first.value.records.map((r) => r.id), ['c5', 'c9']);
  const next = it.next();
  await scope.delete('columns', 'c9');
  const second = await next;
  assert.equal(second.done, false);
  assert.deepEqual(second.value.records.map((r) => r.id), ['c5']);
  const pending = it.next();
  await it.return();
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.deepEqual(await it.next(), { value: undefined, done: true });

  // for await, broken out of.
  const seen = [];
  const writer = (async () => {
    await tick(10);
    await scope.put('columns', 'c6', { object_id: 'obj_2', position: 7 });
  })();
  for await (const v of live) {
    seen.push(v.records.map((r) => r.id));
    if (seen.length === 2) break;
  }
  await writer;
  assert.deepEqual(seen, [['c5'], ['c5', 'c6']]);

  // Everyone left: the watch stops.
  unsubscribe();
  const q = queries;
  await scope.put('columns', 'c7', { object_id: 'obj_2', position: 8 });
  await tick(20);
  assert.equal(queries, q, 'no query once nobody subscribes');

  // Errors: `error` is set and the iterator throws.
  const bad = scope.live('columns', { index: 'nope' }, { onError: () => {} });
  const badIt = bad[Symbol.asyncIterator]();
  await assert.rejects(badIt.next(), { name: 'InvalidInputError' });
  assert.equal(bad.error.name, 'InvalidInputError');
});
