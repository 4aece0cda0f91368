// The Node entry's file-backed replica (`Replica.open(path)` over node:sqlite) against the real
// reference server (`tether serve`) and the native CLI. Needs a Node with node:sqlite: CI runs
// this folder with its pinned Node 24 (`"$TETHER_NODE24" --test test/node24/`), never with the
// system Node 20 (whose clear error node.test.mjs checks).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Replica } from '../../src/node.js';
import { startServe } from '../fixtures/serve-process.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = process.env.TETHER_BIN ?? [
  path.join(REPO, 'target/debug/tether'),
  path.join(REPO, 'target/release/tether'),
].find(existsSync);
if (!BIN) throw new Error('the tether CLI is not built: cargo build -p tether-cli --bin tether, or set TETHER_BIN');
const TOKEN = 'secret';
const RECORDS = 6000; // per scope
const CHILD = fileURLToPath(new URL('./sync-child.mjs', import.meta.url));

let dir;
let cloud; // {url, child}

function cli(...args) {
  return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function startCloud() {
  return startServe(BIN, ['--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'), '--dev-token', TOKEN]);
}

async function serverStatus(scope) {
  const res = await fetch(`${cloud.url}/v1/scopes/${scope}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.ok(res.ok, `status of ${scope}: ${res.status}`);
  return res.json();
}

function seed(scope, records = RECORDS) {
  cli('seed', '--remote', cloud.url, '--token', TOKEN, '--scope', scope, '--records', String(records));
}

/** `tether verify` of a replica file: exits 0 only when the replica matches the server. */
function nativeVerify(db, scope) {
  return cli('verify', '--remote', cloud.url, '--token', TOKEN, '--db', db, '--scope', scope);
}

function nativeStatus(db, scope) {
  return JSON.parse(cli('status', '--db', db, '--scope', scope, '--json'));
}

test.before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tether-node24-'));
  cloud = await startCloud();
});

test.after(async () => {
  if (cloud?.child.exitCode === null) {
    const exited = new Promise((r) => cloud.child.once('exit', r));
    cloud.child.kill('SIGINT');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('open, sync, read, edit, close and reopen a replica file; the native CLI reads it', async () => {
  const scopeId = 'node-persist';
  seed(scopeId);
  const file = path.join(dir, 'persist.db');
  const remote = { url: cloud.url, token: TOKEN };

  const replica = await Replica.open(file);
  assert.equal(replica.kind, 'sqlite');
  assert.equal(replica.name, file);
  const scope = replica.scope(scopeId);
  const report = await scope.sync({ remote, pageSize: 1000 });
  assert.equal(report.run.kind, 'initial');
  assert.equal(report.run.inserted, RECORDS);
  const cloudStatus = await serverStatus(scopeId);
  assert.deepEqual(report.snapshot, { count: cloudStatus.count, digest: cloudStatus.digest });
  const [first, second] = await scope.list('objects', { limit: 2 });
  assert.ok(first && second && first.id < second.id);
  assert.deepEqual(await scope.get('objects', first.id), first);
  await scope.put('objects', first.id, { ...first.data, description: 'edited in Node' });
  assert.equal((await scope.status()).pendingEdits, 1);
  await replica.close();
  await assert.rejects(scope.count(), (e) => e.code === 'Storage');

  // Everything, including the unpushed edit, is in the file.
  const again = await Replica.open(file);
  const reopened = again.scope(scopeId);
  assert.deepEqual(await again.scopes(), [scopeId]);
  const status = await reopened.status();
  assert.equal(status.count, RECORDS);
  assert.equal(status.pendingEdits, 1);
  assert.equal((await reopened.get('objects', first.id)).data.description, 'edited in Node');
  assert.deepEqual((await reopened.history()).map((r) => r.kind), ['initial']);
  const pushed = await reopened.sync({ remote });
  assert.equal(pushed.run.kind, 'incremental');
  assert.equal((await reopened.status()).pendingEdits, 0);
  await again.close();

  // The native CLI reads the Node-written file and finds it equal to the server.
  const native = nativeStatus(file, scopeId);
  const after = await serverStatus(scopeId);
  assert.equal(native.count, after.count);
  assert.equal(native.digest, after.digest);
  assert.match(nativeVerify(file, scopeId), /^match$/m);
});

test('a replica file written by the native CLI opens in Node, and Node syncs it on', async () => {
  const scopeId = 'native-first';
  seed(scopeId, 2000);
  const file = path.join(dir, 'native.db');
  cli('sync', '--remote', cloud.url, '--token', TOKEN, '--db', file, '--scope', scopeId, '--page-size', '500');
  const native = nativeStatus(file, scopeId);
  assert.equal(native.count, 2000);

  const replica = await Replica.open(file);
  const scope = replica.scope(scopeId);
  const status = await scope.status();
  assert.equal(status.count, native.count);
  assert.equal(status.digest, native.digest);
  assert.equal((await scope.history())[0].kind, 'initial');
  const report = await scope.verify({ remote: { url: cloud.url, token: TOKEN } });
  assert.equal(report.matched, true);
  // A change in the cloud reaches the native-written file through Node as an incremental page.
  const [rec] = await scope.list('objects', { limit: 1 });
  const res = await fetch(`${cloud.url}/v1/admin/scopes/${scopeId}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upserts: [{ collection: 'objects', id: rec.id, data: { ...rec.data, description: 'cloud' } }] }),
  });
  assert.ok(res.ok, `admin upsert: ${res.status}`);
  const inc = await scope.sync({ remote: { url: cloud.url, token: TOKEN } });
  assert.equal(inc.run.kind, 'incremental');
  assert.equal(inc.run.updated, 1);
  await replica.close();
  assert.match(nativeVerify(file, scopeId), /^match$/m);
});

test('kill -9 mid-sync leaves a sound file; the resumed sync fetches only the missing pages', async (t) => {
  const scopeId = 'node-crash';
  const pageSize = 100;
  seed(scopeId);
  const file = path.join(dir, 'crash.db');

  // A child Node syncs with small pages and reports each applied page; it is killed with
  // SIGKILL once a fifth of the scope has been applied.
  const child = spawn(process.execPath, [CHILD, file, cloud.url, TOKEN, scopeId, String(pageSize)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const killedAt = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const done = [...out.matchAll(/^applied (\d+)$/gm)].map((m) => Number(m[1])).pop() ?? 0;
      if (done >= RECORDS / 5 && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL');
        resolve(done);
      }
    });
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`the syncing child ended before the kill: ${code} ${signal}\n${out}`));
    });
  });
  await new Promise((r) => (child.exitCode !== null || child.signalCode ? r() : child.once('exit', r)));
  assert.equal(child.signalCode, 'SIGKILL');

  // SQLite's own check of the file as the crash left it (WAL included), before Tether opens it.
  const raw = new DatabaseSync(file);
  assert.equal(raw.prepare('PRAGMA integrity_check').get().integrity_check, 'ok');
  assert.equal(raw.prepare('PRAGMA journal_mode').get().journal_mode, 'wal');
  const committed = Number(raw.prepare('SELECT count(*) AS n FROM records').get().n);
  const run = raw.prepare('SELECT status, pages FROM runs ORDER BY id DESC LIMIT 1').get();
  raw.close();
  assert.ok(committed >= killedAt - pageSize && committed < RECORDS, `committed ${committed}, killed at ${killedAt}`);
  assert.equal(committed % pageSize, 0, 'only whole pages are committed');
  assert.equal(run.status, 'running', 'the killed run never finished');

  const replica = await Replica.open(file);
  const scope = replica.scope(scopeId);
  assert.equal(await scope.count(), committed);
  const resumed = await scope.sync({ remote: { url: cloud.url, token: TOKEN }, pageSize });
  // Only what was missing came down: every record of the run is new, none was seen before.
  assert.equal(resumed.run.inserted, RECORDS - committed);
  assert.equal(resumed.run.unchanged, 0);
  assert.equal(resumed.run.updated, 0);
  assert.equal(resumed.run.pages, Math.ceil((RECORDS - committed) / pageSize));
  const history = await scope.history();
  assert.equal(history[1].status, 'failed', 'the killed run is marked interrupted');
  assert.equal(await scope.count(), RECORDS);
  t.diagnostic(`killed after ${killedAt} applied; ${committed} of ${RECORDS} committed; ` +
    `resumed: ${resumed.run.pages} pages, ${resumed.run.inserted} inserted, ${resumed.run.unchanged} re-downloaded`);
  await replica.close();
  assert.match(nativeVerify(file, scopeId), /^match$/m);
});

// A record's data crosses into JS as the text its store holds, written verbatim into the JSON
// that js/src parses (docs/browser.md, "What crosses into JS is typed"): text that is not one
// JSON object must fail the read as a StorageError, never splice other fields into the record.
test('a record whose stored data is not a JSON object reads as a StorageError', async () => {
  const file = path.join(dir, 'corrupt.db');
  const indexes = { objects: ['n'] };
  let replica = await Replica.open(file, { indexes });
  let scope = replica.scope('s');
  await scope.put('objects', 'a', { n: 1 });
  await scope.put('objects', 'b', { n: 2 });
  await replica.close();
  for (const text of ['{"n":1},"id":"b","z":{}', '[1]', '{"n":', '"text"']) {
    const raw = new DatabaseSync(file);
    raw.prepare("UPDATE records SET data = ? WHERE id = 'a'").run(text);
    raw.close();
    replica = await Replica.open(file, { indexes });
    scope = replica.scope('s');
    const reads = {
      get: () => scope.get('objects', 'a'),
      list: () => scope.list('objects'),
      query: () => scope.query('objects', { index: 'n', gte: 0 }),
    };
    for (const [name, read] of Object.entries(reads)) {
      await assert.rejects(read(), (e) => e.code === 'Storage' && /objects\/a/.test(e.message), `${name} of ${text}`);
    }
    assert.deepEqual((await scope.get('objects', 'b')).data, { n: 2 }, 'the other record reads');
    await replica.close();
  }
});
