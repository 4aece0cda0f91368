// A partial replica file in Node (node:sqlite) against the real reference server (`tether serve
// --filter-index files:repository`): `setSubscriptions` makes it hold exactly the cloud's files
// of two repositories (compared with a whole replica the native CLI syncs), it follows a file
// moved to another repository out, the native CLI verifies it, and a connection over a replica
// channel reads and waits on its subscriptions. Needs node:sqlite (CI: the pinned Node 24).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Replica } from '../../src/node.js';
import { serveReplica, connectReplica } from '../../src/channel.js';
import { startServe } from '../fixtures/serve-process.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = process.env.TETHER_BIN ?? [
  path.join(REPO, 'target/debug/tether'),
  path.join(REPO, 'target/release/tether'),
].find(existsSync);
if (!BIN) throw new Error('the tether CLI is not built: cargo build -p tether-cli --bin tether, or set TETHER_BIN');
const TOKEN = 'secret';
const SCOPE = 'org-1';
const WANTED = ['repo_000003', 'repo_000011'];

let dir;
let cloud; // {url, child}

function cli(...args) {
  return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The files of a replica file, read by the native CLI, as sorted `id repository` lines. */
function nativeFiles(db) {
  return cli('list', '--db', db, '--scope', SCOPE, '--limit', '100000', 'files')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, data] = line.split('\t');
      return `${id} ${JSON.parse(data).repository}`;
    })
    .sort();
}

async function files(scope) {
  return (await scope.list('files', { limit: 100000 })).map((r) => `${r.id} ${r.data.repository}`).sort();
}

const matching = (lines) => lines.filter((l) => WANTED.includes(l.split(' ')[1]));

test.before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tether-node24-partial-'));
  cloud = await startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'),
    '--dev-token', TOKEN, '--filter-index', 'files:repository']);
  cli('seed', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--records', '2000');
});

test.after(async () => {
  if (cloud?.child.exitCode === null) {
    const exited = new Promise((r) => cloud.child.once('exit', r));
    cloud.child.kill('SIGINT');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('a partial replica file holds the cloud subset, follows moves out, and the native CLI verifies it', async () => {
  const remote = { url: cloud.url, token: TOKEN };
  const file = path.join(dir, 'part.db');
  const whole = path.join(dir, 'whole.db');
  const replica = await Replica.open(file);
  const scope = replica.scope(SCOPE);

  await assert.rejects(scope.setSubscriptions([{ collection: 'files', where: { repository: 'r1' } }]),
    (e) => e.code === 'InvalidInput');
  await assert.rejects(scope.addSubscription({ collection: '' }), (e) => e.code === 'InvalidInput');
  await assert.rejects(scope.whenReady(256), (e) => e.code === 'InvalidInput');
  assert.deepEqual(await scope.subscriptions(), []);

  assert.equal(await scope.setSubscriptions([
    { collection: 'repositories' },
    { collection: 'files', where: { repository: WANTED }, priority: 1 },
  ]), 0);
  assert.equal(await scope.isReady(0), false);
  const abort = new AbortController();
  const waiting = scope.whenReady(0, { signal: abort.signal });
  abort.abort();
  await assert.rejects(waiting, (e) => e.code === 'Cancelled');
  const order = [];
  const ready0 = scope.whenReady(0).then(() => order.push('ready 0'));
  const ready1 = scope.whenReady(1).then(() => order.push('ready 1'));
  const onProgress = (p) => p.phase === 'pull' && p.priority === 1 && order.push('files page');
  const report = await scope.sync({ remote, pageSize: 5, onProgress });
  await Promise.all([ready0, ready1]);
  // Priority 0 is announced by its `ready` event, while the files of priority 1 come.
  assert.ok(order.indexOf('ready 0') < order.lastIndexOf('files page'), order.join(', '));
  assert.ok(order.indexOf('ready 1') > order.lastIndexOf('files page'), order.join(', '));
  assert.deepEqual(await scope.subscriptions(), [
    { collection: 'repositories', where: {}, priority: 0, complete: true },
    { collection: 'files', where: { repository: WANTED }, priority: 1, complete: true },
  ]);

  cli('sync', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--db', whole);
  const held = await files(scope);
  assert.ok(held.length >= 2, held.join('\n'));
  assert.deepEqual(held, matching(nativeFiles(whole)));
  const repositories = (await scope.list('repositories', { limit: 100000 })).map((r) => r.id);
  assert.ok(repositories.length > 0);
  assert.deepEqual(repositories, nativeIds(whole, 'repositories'));
  assert.equal(await scope.count('objects'), 0);
  assert.equal(report.run.inserted, held.length + repositories.length);

  // The cloud moves a held file to another repository.
  const moved = held[0].split(' ')[0];
  const res = await fetch(`${cloud.url}/v1/admin/scopes/${SCOPE}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upserts: [{ collection: 'files', id: moved, data: { repository: 'repo_000004' } }] }),
  });
  assert.ok(res.ok, await res.text());
  const changes = [];
  const off = scope.subscribe((e) => changes.push(...e.changes));
  await scope.sync({ remote });
  off();
  assert.deepEqual(changes.filter((c) => c.id === moved), [{ collection: 'files', id: moved, op: 'delete', evicted: true }]);
  cli('sync', '--remote', cloud.url, '--token', TOKEN, '--scope', SCOPE, '--db', whole);
  const heldNow = await files(scope);
  assert.deepEqual(heldNow, matching(nativeFiles(whole)));
  assert.equal(heldNow.length, held.length - 1);
  const verify = await scope.verify({ remote });
  assert.equal(verify.matched, true);
  assert.equal(verify.subscriptions.length, 2);

  // A connection over a replica channel reads the subscriptions and waits on them; a
  // read-only one may not change them.
  const { port1, port2 } = new MessageChannel();
  const served = serveReplica(port1, replica, { readOnly: true });
  const connected = await connectReplica(port2);
  const remoteScope = connected.scope(SCOPE);
  assert.deepEqual(await remoteScope.subscriptions(), await scope.subscriptions());
  assert.equal(await remoteScope.isReady(1), true);
  await remoteScope.whenReady(1);
  await assert.rejects(remoteScope.setSubscriptions([]), (e) => e.detail === 'ReadOnly');
  await connected.close();
  served.close();
  port1.close();
  port2.close();
  await replica.close();

  // The native CLI reads the Node-written partial replica and verifies each subscription.
  assert.match(cli('status', '--db', file, '--scope', SCOPE), /subscription +\{"collection":"files"/);
  assert.match(cli('verify', '--remote', cloud.url, '--token', TOKEN, '--db', file, '--scope', SCOPE), /match$/m);
});

/** The ids of a collection of a replica file, read by the native CLI, in its order (by id). */
function nativeIds(db, collection) {
  return cli('list', '--db', db, '--scope', SCOPE, '--limit', '100000', collection)
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t')[0]);
}
