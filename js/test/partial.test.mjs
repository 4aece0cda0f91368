// A partial replica in Chromium against the real reference server (`tether serve
// --filter-index files:repository`): the packed package's `setSubscriptions` makes an IndexedDB
// replica hold exactly the cloud's files of two repositories (compared with a whole replica of
// the same scope), `whenReady` resolves once they are in, a file the cloud moves to another
// repository leaves with an `evicted` change event, and the verification compares the subset.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { installPackedPackage, launch, serve, openPage, REPO } from './fixtures/harness.mjs';
import { startServe } from './fixtures/serve-process.mjs';

const BIN = process.env.TETHER_BIN ?? [
  path.join(REPO, 'target/release/tether'),
  path.join(REPO, 'target/debug/tether'),
].find(existsSync);
const TOKEN = 'secret';
const SCOPE = 'org-1';
const WANTED = ['repo_000003', 'repo_000011'];
const skip = BIN ? false : 'the tether CLI is not built (cargo build -p tether-cli --bin tether)';

let browser;
let proxy;
let cloud;

test.before(async () => {
  if (skip) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-partial-'));
  const app = installPackedPackage();
  cloud = await startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'),
    '--dev-token', TOKEN, '--filter-index', 'files:repository']);
  execFileSync(BIN, ['seed', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--records', '2000'],
    { stdio: 'pipe' });
  browser = await launch();
  proxy = await serve(app);
  proxy.setBackend({ proxy: cloud.url });
});

test.after(async () => {
  await browser?.close();
  await proxy?.close();
  cloud?.child.kill('SIGINT');
});

/** The files of the page's replica `name`, as sorted `id repository` lines. */
async function files(page, name) {
  return page.evaluate(async ([name, scopeId]) => {
    const records = await (await tether.Replica.open(name)).scope(scopeId).list('files', { limit: 100000 });
    return records.map((r) => `${r.id} ${r.data.repository}`).sort();
  }, [name, SCOPE]);
}

const matching = (lines) => lines.filter((l) => WANTED.includes(l.split(' ')[1]));

test('a partial replica in the browser holds the cloud subset and follows moves out', { skip }, async () => {
  const page = await openPage(await browser.newContext(), proxy);
  const first = await page.evaluate(async ([scopeId, token, wanted]) => {
    const remote = { url: location.origin, token };
    const scope = (await tether.Replica.open('partial')).scope(scopeId);
    const refused = async (f) => {
      try {
        await f();
        return null;
      } catch (e) {
        return { name: e.name, code: e.code, message: e.message };
      }
    };
    // Bad subscriptions: typed errors, nothing stored.
    const bad = [
      await refused(() => scope.setSubscriptions([{ collection: 'files', where: { repository: [] } }])),
      await refused(() => scope.setSubscriptions([{ collection: 'files', priority: -1 }])),
      await refused(() => scope.setSubscriptions([{ collection: 'files', where: { 'bad path': ['x'] } }])),
      await refused(() => scope.setSubscriptions({ collection: 'files' })),
      await refused(() => scope.addSubscription({ collection: 'files', shape: 'round' })),
      await refused(() => scope.isReady(1.5)),
    ];
    const afterBad = await scope.subscriptions();
    const evicted = await scope.setSubscriptions([{ collection: 'files', where: { repository: wanted } }]);
    const readyBefore = await scope.isReady(0);
    let resolvedAt = null;
    const ready = scope.whenReady(0).then(() => {
      resolvedAt = 'resolved';
    });
    const progress = [];
    const report = await scope.sync({ remote, pageSize: 50, onProgress: (p) => progress.push(p) });
    await ready;
    // A function remote cannot serve subsets: it says so.
    const fnRemote = await refused(() =>
      scope.sync({ remote: { pull: async () => ({ changes: [], checkpoint: 'x', has_more: false }) } }));
    // The whole scope, for comparison.
    await (await tether.Replica.open('whole')).scope(scopeId).sync({ remote });
    return {
      bad,
      afterBad,
      evicted,
      readyBefore,
      resolvedAt,
      readyAfter: await scope.isReady(0),
      held: await scope.subscriptions(),
      readyEvents: progress.filter((p) => p.phase === 'ready'),
      inserted: report.run.inserted,
      objects: await scope.count('objects'),
      fnRemote,
    };
  }, [SCOPE, TOKEN, WANTED]);

  for (const e of first.bad) assert.equal(e?.code, 'InvalidInput', JSON.stringify(first.bad));
  assert.match(first.bad[0].message, /repository/);
  assert.match(first.bad[1].message, /priority/);
  assert.deepEqual(first.afterBad, []);
  assert.equal(first.evicted, 0);
  assert.equal(first.readyBefore, false);
  assert.equal(first.resolvedAt, 'resolved');
  assert.equal(first.readyAfter, true);
  assert.deepEqual(first.held, [
    { collection: 'files', where: { repository: WANTED }, priority: 0, complete: true },
  ]);
  assert.deepEqual(first.readyEvents.map((p) => p.priority), [0]);
  assert.equal(first.objects, 0, 'no other collection');
  assert.equal(first.fnRemote?.code, 'Protocol', JSON.stringify(first.fnRemote));
  assert.match(first.fnRemote.message, /does not serve subscriptions/);

  const held = await files(page, 'partial');
  assert.ok(held.length >= 2, held.join('\n'));
  assert.equal(first.inserted, held.length);
  assert.deepEqual(held, matching(await files(page, 'whole')));

  // The cloud moves a held file to another repository and adds one to a wanted repository.
  const moved = held[0].split(' ')[0];
  const res = await fetch(`${cloud.url}/v1/admin/scopes/${SCOPE}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      upserts: [
        { collection: 'files', id: moved, data: { repository: 'repo_000004' } },
        { collection: 'files', id: 'file_new', data: { repository: WANTED[1] } },
      ],
    }),
  });
  assert.ok(res.ok, await res.text());

  const second = await page.evaluate(async ([scopeId, token]) => {
    const remote = { url: location.origin, token };
    const scope = (await tether.Replica.open('partial')).scope(scopeId);
    const changes = [];
    const off = scope.subscribe((e) => changes.push(...e.changes.map((c) => ({ ...c, source: e.source }))));
    await scope.sync({ remote });
    await (await tether.Replica.open('whole')).scope(scopeId).sync({ remote });
    const verify = await scope.verify({ remote });
    // Already ready: at once.
    await scope.whenReady(0);
    off();
    return { changes, verify };
  }, [SCOPE, TOKEN]);

  const out = second.changes.find((c) => c.id === moved);
  assert.deepEqual(out, { collection: 'files', id: moved, op: 'delete', evicted: true, source: 'pull' });
  const added = second.changes.find((c) => c.id === 'file_new');
  assert.equal(added?.op, 'insert');
  assert.ok(!added.evicted);
  const heldNow = await files(page, 'partial');
  assert.ok(!heldNow.some((l) => l.startsWith(`${moved} `)));
  assert.ok(heldNow.includes(`file_new ${WANTED[1]}`));
  assert.deepEqual(heldNow, matching(await files(page, 'whole')));
  assert.equal(second.verify.matched, true);
  assert.equal(second.verify.subscriptions.length, 1);
  assert.equal(second.verify.subscriptions[0].cloud.count, heldNow.length);

  // A narrower subscription is covered by the held one: complete at once. Removing the broader
  // one evicts the other repository's files at once; an empty list makes the replica whole.
  const third = await page.evaluate(async ([scopeId, token, wanted]) => {
    const scope = (await tether.Replica.open('partial')).scope(scopeId);
    const evicted = [];
    const off = scope.subscribe((e) => {
      for (const c of e.changes) if (c.evicted) evicted.push(e.source);
    });
    await scope.addSubscription({ collection: 'files', where: { repository: [wanted[1]] }, priority: 2 });
    await scope.whenReady(2);
    const narrowed = await scope.removeSubscription({ collection: 'files', where: { repository: wanted } });
    const held = await scope.subscriptions();
    await new Promise((r) => setTimeout(r, 0));
    off();
    const whole = await scope.setSubscriptions([]);
    await scope.sync({ remote: { url: location.origin, token } });
    return { narrowed, evicted, held, whole, subscriptions: await scope.subscriptions() };
  }, [SCOPE, TOKEN, WANTED]);
  const others = heldNow.filter((l) => l.endsWith(` ${WANTED[0]}`)).length;
  assert.ok(others > 0);
  assert.equal(third.narrowed, others);
  assert.deepEqual(third.evicted, Array(others).fill('subscriptions'));
  assert.deepEqual(third.held, [
    { collection: 'files', where: { repository: [WANTED[1]] }, priority: 2, complete: true },
  ]);
  assert.equal(third.whole, 0);
  assert.deepEqual(third.subscriptions, []);
  assert.deepEqual(await files(page, 'partial'), await files(page, 'whole'));
  assert.deepEqual(page.errors, []);
});
