// The packed npm package in headless Chromium, loaded by a plain ES-module page: sync over the
// fetch remote (from an in-process cloud behind the test server, which can fail on demand or go
// down), reads, local edits, conflicts, reset, offline reads after a reload, the preloaded
// entry, two tabs, and IndexedDB quota exhaustion.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { installPackedPackage, launch, serve, openPage } from './fixtures/harness.mjs';
import { Cloud } from './fixtures/cloud.mjs';
import { startServer } from './fixtures/server.mjs';

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

async function seed(cloud, n) {
  for (let i = 0; i < n; i++) {
    await cloud.put('objects', `obj_${String(i).padStart(4, '0')}`, { name: `table_${i}`, schema: i % 3 ? 'sales' : 'hr' });
  }
}

test('packed package: sync, read, edit, conflict, reset, offline reload, recovery', async () => {
  const cloud = new Cloud();
  await seed(cloud, 300);
  server.setBackend({ cloud, token: 'secret' });
  const context = await browser.newContext();
  let page = await openPage(context, server);

  const first = await page.evaluate(async () => {
    const replica = await tether.Replica.open('e2e');
    const scope = replica.scope('org-1');
    const phases = new Set();
    const report = await scope.sync({
      remote: { url: location.origin, token: 'secret' },
      pageSize: 100,
      onProgress: (p) => phases.add(p.phase),
    });
    return {
      report,
      phases: [...phases],
      count: await scope.count('objects'),
      rec: await scope.get('objects', 'obj_0007'),
      status: await scope.status(),
    };
  });
  assert.equal(first.report.run.kind, 'initial');
  assert.equal(first.report.run.inserted, 300);
  assert.equal(first.report.run.pages, 3);
  assert.deepEqual(first.report.snapshot, cloud.snapshot());
  assert.ok(first.phases.includes('apply') && first.phases.includes('verify'));
  assert.equal(first.count, 300);
  assert.deepEqual(first.rec.data, { name: 'table_7', schema: 'sales' });
  assert.equal(first.status.digest, cloud.snapshot().digest);

  // Local edits: one the cloud accepts, one the cloud overwrote meanwhile (cloud wins).
  await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    await scope.put('objects', 'obj_0001', { name: 'renamed locally' });
    await scope.put('objects', 'obj_0002', { name: 'mine' });
  });
  await cloud.put('objects', 'obj_0002', { name: 'theirs' });
  await cloud.delete('objects', 'obj_0003');
  const second = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    const report = await scope.sync({ remote: { url: location.origin, token: 'secret' } });
    return {
      report,
      one: await scope.get('objects', 'obj_0001'),
      two: await scope.get('objects', 'obj_0002'),
      three: await scope.get('objects', 'obj_0003'),
      conflicts: await scope.conflicts(),
    };
  });
  assert.equal(second.report.run.kind, 'incremental');
  assert.equal(second.report.run.conflicts, 1);
  assert.equal(second.report.run.deleted, 1);
  assert.deepEqual(second.one.data, { name: 'renamed locally' });
  assert.equal(second.one.pending, false);
  assert.deepEqual(second.two.data, { name: 'theirs' });
  assert.equal(second.three, null);
  assert.equal(second.conflicts.length, 1);
  assert.equal(second.conflicts[0].recordId, 'obj_0002');
  assert.deepEqual(second.conflicts[0].localData, { name: 'mine' });
  assert.deepEqual(second.report.snapshot, cloud.snapshot());

  // Reset: the cloud forgot its tombstones; the replica's checkpoint gets 410 and resyncs.
  await cloud.delete('objects', 'obj_0004');
  await cloud.put('objects', 'obj_0005', { name: 'changed before the reset' });
  cloud.purge();
  const third = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    const report = await scope.sync({ remote: { url: location.origin, token: 'secret' }, pageSize: 100 });
    return { report, four: await scope.get('objects', 'obj_0004'), count: await scope.count() };
  });
  assert.equal(third.report.run.kind, 'full-resync');
  assert.equal(third.four, null);
  assert.equal(third.count, cloud.snapshot().count);
  assert.deepEqual(third.report.snapshot, cloud.snapshot());

  // Retries: 503 and 429 (Retry-After: 0) are retried; 401 is not.
  server.fail(503);
  server.fail(429, { 'retry-after': '0' });
  const before = server.log.length;
  const fourth = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    return scope.sync({ remote: { url: location.origin, token: 'secret' } });
  });
  assert.equal(fourth.run.status, 'completed');
  assert.equal(server.log.length - before, 3);
  const denied = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    return scope.sync({ remote: { url: location.origin, token: 'wrong' } }).catch((e) => ({ name: e.name, code: e.code, status: e.status }));
  });
  assert.deepEqual(denied, { name: 'AuthError', code: 'Auth', status: 401 });

  // The server goes down: reload the page and read offline; a sync fails with NetworkError.
  server.setBackend(null);
  await page.reload();
  await page.waitForFunction(() => window.loaded === true);
  const offline = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    const err = await scope
      .sync({ remote: { url: location.origin, token: 'secret', retries: 1 } })
      .then(() => null, (e) => ({ name: e.name, code: e.code, retryable: e.retryable }));
    return {
      count: await scope.count(),
      rec: await scope.get('objects', 'obj_0001'),
      list: (await scope.list('objects', { limit: 3 })).map((r) => r.id),
      err,
      status: await scope.status(),
    };
  });
  assert.equal(offline.count, cloud.snapshot().count);
  assert.deepEqual(offline.rec.data, { name: 'renamed locally' });
  assert.deepEqual(offline.list, ['obj_0000', 'obj_0001', 'obj_0002']);
  assert.deepEqual(offline.err, { name: 'NetworkError', code: 'Network', retryable: true });
  assert.equal(offline.status.lastError.kind, 'Network');
  assert.equal(offline.status.syncRecommended, true);

  // Back online: the next sync succeeds.
  await cloud.put('objects', 'obj_9999', { name: 'new while offline' });
  server.setBackend({ cloud, token: 'secret' });
  const back = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('e2e')).scope('org-1');
    const report = await scope.sync({ remote: { url: location.origin, token: () => Promise.resolve('secret') } });
    return { report, status: await scope.status(), history: await scope.history() };
  });
  assert.equal(back.report.run.inserted, 1);
  assert.equal(back.status.digest, cloud.snapshot().digest);
  assert.equal(back.status.lastError, null);
  assert.deepEqual(back.history.slice(0, 3).map((r) => r.status), ['completed', 'failed', 'failed']);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('preloaded entry takes a compiled WebAssembly.Module (strict-CSP pages)', async () => {
  const context = await browser.newContext();
  const page = await openPage(context, server);
  const result = await page.evaluate(async () => {
    const bytes = await (await fetch('/node_modules/tether-sync/pkg/tether_wasm_bg.wasm')).arrayBuffer();
    const module = await WebAssembly.compile(bytes);
    const pre = await import('tether-sync/preloaded');
    await pre.init(module);
    const replica = await pre.Replica.openInMemory();
    const scope = replica.scope('s');
    await scope.put('c', '1', { a: 1 });
    return { count: await scope.count(), kind: replica.kind };
  });
  assert.deepEqual(result, { count: 1, kind: 'memory' });
  await context.close();
});

test('two tabs: one syncs a scope at a time, the other sees the result', () => twoTabs(true));

// An insecure (http:) page has no navigator.locks: the tabs share a lease in IndexedDB instead.
test('two tabs without Web Locks: still one syncs a scope at a time', () => twoTabs(false));

async function twoTabs(webLocks) {
  const cloud = new Cloud();
  await seed(cloud, 200);
  server.setBackend({ cloud });
  const context = await browser.newContext();
  if (!webLocks) {
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
    });
  }
  const [a, b] = [await openPage(context, server), await openPage(context, server)];
  const run = (page, delay) =>
    page.evaluate(async (delay) => {
      const scope = (await tether.Replica.open('tabs')).scope('org-1');
      const remote = {
        pull: async ({ checkpoint, limit }) => {
          window.pulling = true; // this tab holds the scope lock now
          await new Promise((r) => setTimeout(r, delay));
          const res = await fetch(`/v1/scopes/org-1/changes?limit=${limit}${checkpoint ? `&checkpoint=${checkpoint}` : ''}`);
          // Tab a answers with the parsed page, tab b with its JSON text: both are pages.
          return delay ? res.json() : res.text();
        },
      };
      const started = performance.timeOrigin + performance.now();
      const report = await scope.sync({ remote, pageSize: 20 });
      return { started, finished: report.run.finishedAt, startedRun: report.run.startedAt, inserted: report.run.inserted, kind: report.run.kind };
    }, delay);
  const first = run(a, 30);
  // Start tab b once tab a is inside its sync (a fixed sleep loses that race on a busy machine).
  await a.waitForFunction(() => window.pulling === true);
  const [ra, rb] = await Promise.all([first, run(b, 0)]);
  // Tab b asked while tab a held the lock: its run started after a's ended, found nothing new.
  assert.equal(ra.inserted, 200);
  assert.ok(rb.startedRun >= ra.finished, `b started ${rb.startedRun} before a finished ${ra.finished}`);
  assert.equal(rb.inserted, 0);
  assert.equal(rb.kind, 'incremental');
  const seen = await b.evaluate(async () => (await tether.Replica.open('tabs')).scope('org-1').count());
  assert.equal(seen, 200);
  assert.equal(await b.evaluate(() => navigator.locks === undefined), !webLocks);
  await context.close();
}

test('QuotaExceededError is a StorageError that keeps the last committed page', async () => {
  const cloud = new Cloud();
  // Incompressible data: Chromium compresses IndexedDB values.
  for (let i = 0; i < 1500; i++) {
    await cloud.put('objects', `obj_${String(i).padStart(5, '0')}`, { i, big: randomBytes(2000).toString('hex') });
  }
  server.setBackend({ cloud });
  const context = await browser.newContext();
  const page = await openPage(context, server);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 2 * 1024 * 1024 });
  const failed = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('quota')).scope('org-1');
    const err = await scope
      .sync({ remote: { url: location.origin }, pageSize: 100 })
      .then(() => null, (e) => ({ name: e.name, code: e.code, detail: e.detail, message: e.message }));
    const status = await scope.status();
    return { err, status, count: await scope.count() };
  });
  assert.equal(failed.err?.name, 'StorageError', JSON.stringify(failed));
  assert.match(failed.err.message, /quota/i);
  assert.equal(failed.err.detail, 'Quota', 'a full quota is told by its detail, not its message');
  // Whole pages only: the committed count matches the stored checkpoint.
  assert.ok(failed.count > 0 && failed.count < 1500, `count ${failed.count}`);
  assert.equal(failed.count % 100, 0);
  assert.equal(failed.status.checkpoint, `i${failed.count}`);
  // Space is freed (quota raised): the sync resumes from the checkpoint and completes.
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url });
  const resumed = await page.evaluate(async () => {
    const scope = (await tether.Replica.open('quota')).scope('org-1');
    const report = await scope.sync({ remote: { url: location.origin }, pageSize: 100 });
    return { report, count: await scope.count() };
  });
  assert.equal(resumed.count, 1500);
  assert.equal(resumed.report.run.inserted, 1500 - failed.count);
  assert.deepEqual(resumed.report.snapshot, cloud.snapshot());
  await context.close();
});

test('a bad configuration is a non-retryable InvalidInput, and background sync stops on it', async () => {
  const cloud = new Cloud();
  await seed(cloud, 3);
  server.setBackend({ cloud, token: 'secret' });
  // Another origin that answers the protocol but sends no CORS headers, and a closed port.
  const other = await startServer({});
  other.setBackend({ cloud, token: 'secret' });
  const closed = await startServer({});
  const closedUrl = closed.url;
  await closed.close();
  const context = await browser.newContext();
  try {
    const page = await openPage(context, server);
    const r = await page.evaluate(async ([otherUrl, closedUrl]) => {
      const scope = (await tether.Replica.open('config')).scope('org-1');
      const attempt = async (remote) => {
        try {
          await scope.sync({ remote });
          return 'synced';
        } catch (e) {
          return { code: e.code, name: e.name, message: e.message, retryable: e.retryable ?? false };
        }
      };
      const errors = [];
      const bg = scope.startBackgroundSync({ remote: { url: 'not a url', token: 'secret' }, intervalMs: 20, onError: (e) => errors.push(e.code) });
      await new Promise((r) => setTimeout(r, 400));
      return {
        notUrl: await attempt({ url: 'not a url', token: 'secret' }),
        relative: await attempt({ url: '/sync', token: 'secret' }),
        ftp: await attempt({ url: 'ftp://example.com', token: 'secret' }),
        tokenPromise: await attempt({ url: location.origin, token: Promise.resolve('secret') }),
        tokenNotString: await attempt({ url: location.origin, token: () => undefined }),
        neither: await attempt({ token: 'secret' }),
        cors: await attempt({ url: otherUrl, token: 'secret', retries: 0 }),
        down: await attempt({ url: closedUrl, token: 'secret', retries: 0 }),
        noToken: await attempt({ url: location.origin, token: undefined }),
        ok: await attempt({ url: location.origin, token: 'secret' }),
        background: { errors, running: bg.running },
      };
    }, [other.url, closedUrl]);
    for (const k of ['notUrl', 'relative', 'ftp', 'tokenPromise', 'tokenNotString', 'neither', 'cors']) {
      assert.equal(r[k].code, 'InvalidInput', `${k}: ${JSON.stringify(r[k])}`);
      assert.equal(r[k].name, 'InvalidInputError');
      assert.equal(r[k].retryable, false);
    }
    assert.match(r.notUrl.message, /absolute http\(s\) URL.*"not a url"/);
    assert.match(r.tokenPromise.message, /string or a function/);
    assert.match(r.cors.message, new RegExp(`CORS list of the server at ${other.url}.*--cors-origin ${server.url}`));
    // A server that is down is still a retryable network error; the message names CORS too.
    assert.equal(r.down.code, 'Network', JSON.stringify(r.down));
    assert.equal(r.down.retryable, true);
    assert.match(r.down.message, /unreachable, or this page's origin .* CORS/);
    // No token for a server that wants one: Auth (not retried), and the message says why.
    assert.equal(r.noToken.code, 'Auth', JSON.stringify(r.noToken));
    assert.match(r.noToken.message, /remote\.token is missing/);
    assert.equal(r.ok, 'synced');
    // One round, one error, then stopped: a bad URL is not retried forever.
    assert.deepEqual(r.background, { errors: ['InvalidInput'], running: false });
  } finally {
    await context.close();
    await other.close();
  }
});

test('change events reach other tabs of the same IndexedDB database, marked other-tab', async () => {
  const context = await browser.newContext();
  const [a, b] = [await openPage(context, server), await openPage(context, server)];
  try {
    // Tab a listens on scope org-1 and on the whole replica; tab b writes.
    await a.evaluate(async () => {
      const replica = await tether.Replica.open('xtab');
      window.scopeEvents = [];
      window.allEvents = [];
      window.offScope = replica.scope('org-1').subscribe((e) => window.scopeEvents.push(e));
      replica.subscribe((e) => window.allEvents.push(e));
      window.xtab = replica;
    });
    const own = await b.evaluate(async () => {
      const replica = await tether.Replica.open('xtab');
      const mine = [];
      replica.subscribe((e) => mine.push(e));
      const scope = replica.scope('org-1');
      await scope.put('objects', 'o1', { name: 'from b' });
      await scope.put('objects', 'o1', { name: 'from b, again' });
      await scope.delete('objects', 'o1');
      await replica.scope('org-2').put('objects', 'o2', { name: 'other scope' });
      await new Promise((r) => setTimeout(r, 50));
      return mine;
    });
    assert.deepEqual(own.map((e) => [e.scope, e.origin]), [['org-1', 'local'], ['org-1', 'local'], ['org-1', 'local'], ['org-2', 'local']]);
    await a.waitForFunction(() => window.allEvents.length === 4, null, { timeout: 10_000 });
    const seen = await a.evaluate(async () => {
      // A read on receipt sees the other tab's commit.
      const rec = await window.xtab.scope('org-2').get('objects', 'o2');
      return { scope: window.scopeEvents, all: window.allEvents, rec };
    });
    assert.deepEqual(
      seen.scope.map((e) => [e.scope, e.source, e.run, e.origin, e.changes]),
      [
        ['org-1', 'local', null, 'other-tab', [{ collection: 'objects', id: 'o1', op: 'insert' }]],
        ['org-1', 'local', null, 'other-tab', [{ collection: 'objects', id: 'o1', op: 'update' }]],
        ['org-1', 'local', null, 'other-tab', [{ collection: 'objects', id: 'o1', op: 'delete' }]],
      ],
    );
    assert.deepEqual(seen.all.map((e) => e.scope), ['org-1', 'org-1', 'org-1', 'org-2']);
    assert.deepEqual(seen.rec.data, { name: 'other scope' });

    // Unsubscribed in tab a: b's next write no longer reaches that listener; a's own write
    // reaches its replica listener once, as local (not echoed back as other-tab).
    await a.evaluate(() => window.offScope());
    await b.evaluate(async () => (await tether.Replica.open('xtab')).scope('org-1').put('objects', 'o3', { n: 3 }));
    await a.waitForFunction(() => window.allEvents.length === 5, null, { timeout: 10_000 });
    await a.evaluate(async () => {
      await window.xtab.scope('org-1').put('objects', 'o4', { n: 4 });
      await new Promise((r) => setTimeout(r, 100));
    });
    const after = await a.evaluate(() => ({ scope: window.scopeEvents.length, all: window.allEvents.map((e) => e.origin) }));
    assert.equal(after.scope, 3);
    assert.deepEqual(after.all, ['other-tab', 'other-tab', 'other-tab', 'other-tab', 'other-tab', 'local']);

    // A sync in tab b: tab a sees its pages as pull events of b's run.
    const cloud = new Cloud();
    await seed(cloud, 5);
    server.setBackend({ cloud });
    const report = await b.evaluate(async () =>
      (await tether.Replica.open('xtab')).scope('org-3').sync({ remote: { url: location.origin }, pageSize: 2 }),
    );
    await a.waitForFunction(() => window.allEvents.filter((e) => e.scope === 'org-3').length === 3, null, { timeout: 10_000 });
    const pulled = await a.evaluate(() => window.allEvents.filter((e) => e.scope === 'org-3'));
    assert.ok(pulled.every((e) => e.source === 'pull' && e.run === report.run.id && e.origin === 'other-tab'), JSON.stringify(pulled));
    assert.equal(pulled.flatMap((e) => e.changes).length, 5);
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await context.close();
  }
});

test('queries, watch and live queries of the packed package in Chromium (memory store)', async () => {
  const context = await browser.newContext();
  const page = await openPage(context, server);
  try {
    const r = await page.evaluate(async () => {
      const replica = await tether.Replica.openInMemory({ indexes: { columns: [['object_id', 'position']] } });
      const scope = replica.scope('org-1');
      for (const [id, o, p] of [['c2', 'obj_1', 2], ['c1', 'obj_1', 1], ['c3', 'obj_2', 1]]) {
        await scope.put('columns', id, { object_id: o, position: p });
      }
      const query = { index: ['object_id', 'position'], eq: 'obj_1' };
      const first = await scope.query('columns', { ...query, limit: 1 });
      const second = await scope.query('columns', { ...query, limit: 1, after: first.cursor });
      const count = await scope.count('columns', query);
      const watched = [];
      const stop = scope.watch('columns', query, (p) => watched.push(p.records.map((x) => x.id)));
      const live = scope.live('columns', query);
      const values = [];
      const off = live.subscribe((v) => values.push(v && v.records.map((x) => x.id)));
      const wait = async (cond) => {
        for (let i = 0; i < 500 && !cond(); i++) await new Promise((res) => setTimeout(res, 5));
      };
      await wait(() => watched.length === 1 && values.length === 2);
      await scope.put('columns', 'c0', { object_id: 'obj_1', position: 0 });
      await wait(() => watched.length === 2 && values.length === 3);
      stop();
      off();
      await scope.put('columns', 'c9', { object_id: 'obj_1', position: 9 });
      await new Promise((res) => setTimeout(res, 50));
      const bad = await scope.query('columns', { index: 'position' }).catch((e) => ({ name: e.name, message: e.message }));
      return { first: first.records.map((x) => x.id), second: second.records.map((x) => x.id), count, watched, values, bad };
    });
    assert.deepEqual(r.first, ['c1']);
    assert.deepEqual(r.second, ['c2']);
    assert.equal(r.count, 2);
    assert.deepEqual(r.watched, [['c1', 'c2'], ['c0', 'c1', 'c2']]);
    assert.deepEqual(r.values, [undefined, ['c1', 'c2'], ['c0', 'c1', 'c2']]);
    assert.equal(r.bad.name, 'InvalidInputError');
    assert.match(r.bad.message, /columns\.position/);
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});

test('a watched query on IndexedDB follows another tab: its edits, and its sync clearing pending flags', async () => {
  const cloud = new Cloud();
  server.setBackend({ cloud });
  const context = await browser.newContext();
  const [a, b] = [await openPage(context, server), await openPage(context, server)];
  const INDEXES = { columns: [['object_id', 'position']] };
  try {
    const opened = await a.evaluate(async (indexes) => {
      try {
        const replica = await tether.Replica.open('xtab-watch', { indexes });
        const scope = replica.scope('org-1');
        window.results = [];
        window.stop = scope.watch('columns', { index: ['object_id', 'position'], eq: 'obj_1' }, (page) =>
          window.results.push(page.records.map((r) => `${r.id}${r.pending ? '*' : ''}`)),
        );
        window.live = [];
        scope.live('columns', { index: ['object_id', 'position'], eq: 'obj_1' }).subscribe((v) => window.live.push(v?.records.length));
        return null;
      } catch (e) {
        return e.message;
      }
    }, INDEXES);
    assert.equal(opened, null);
    await a.waitForFunction(() => window.results.length === 1);
    await b.evaluate(async (indexes) => {
      const scope = (await tether.Replica.open('xtab-watch', { indexes })).scope('org-1');
      await scope.put('columns', 'c2', { object_id: 'obj_1', position: 2 });
      await scope.put('columns', 'c1', { object_id: 'obj_1', position: 1 });
      await scope.put('columns', 'x9', { object_id: 'obj_9', position: 1 });
    }, INDEXES);
    await a.waitForFunction(() => JSON.stringify(window.results.at(-1)) === '["c1*","c2*"]', null, { timeout: 10_000 });
    // Tab b pushes them: no change event (the data stays), but the end of its run reaches tab a.
    await b.evaluate(async (indexes) => {
      const scope = (await tether.Replica.open('xtab-watch', { indexes })).scope('org-1');
      await scope.sync({ remote: { url: location.origin } });
    }, INDEXES);
    await a.waitForFunction(() => JSON.stringify(window.results.at(-1)) === '["c1","c2"]', null, { timeout: 10_000 });
    const r = await a.evaluate(() => {
      window.stop();
      return { results: window.results, live: window.live };
    });
    assert.deepEqual(r.results[0], []);
    assert.ok(r.results.length <= 4, JSON.stringify(r.results));
    assert.deepEqual(r.live.slice(0, 2), [undefined, 0]);
    assert.equal(r.live.at(-1), 2);
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await context.close();
  }
});
