// tether-sync/vscode and tether-sync/webview against stand-ins of VS Code's objects: a panel
// whose webview's messages go through JSON (as VS Code's do), the window's message events of
// the webview, and `acquireVsCodeApi()`. The host's replica is in memory (any Node).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Replica } from '../src/node.js';
import { serveWebview } from '../src/vscode.js';
import { connectVsCodeWebview } from '../src/webview.js';
import { Cloud } from './fixtures/cloud.mjs';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, ms = 5000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await tick(2);
  }
}

// The webview's window: its message events are what the host posts. Node's globalThis is no
// EventTarget, so the test gives it the two methods connectVsCodeWebview uses.
const win = new EventTarget();
globalThis.addEventListener = win.addEventListener.bind(win);
globalThis.removeEventListener = win.removeEventListener.bind(win);

/** A WebviewPanel as far as serveWebview uses it, and the webview's `acquireVsCodeApi()`. */
function panel() {
  const fromWebview = new Set();
  const disposed = new Set();
  const json = (m) => JSON.parse(JSON.stringify(m));
  const p = {
    posts: 0,
    webview: {
      postMessage: async (m) => {
        p.posts += 1;
        const data = json(m);
        setTimeout(() => win.dispatchEvent(new MessageEvent('message', { data })));
        return true;
      },
      onDidReceiveMessage(fn) {
        fromWebview.add(fn);
        return { dispose: () => fromWebview.delete(fn) };
      },
    },
    onDidDispose(fn) {
      disposed.add(fn);
      return { dispose: () => disposed.delete(fn) };
    },
    dispose() {
      for (const fn of disposed) fn();
    },
    listeners: () => fromWebview.size,
  };
  const api = {
    postMessage(m) {
      const data = json(m);
      setTimeout(() => {
        for (const fn of fromWebview) fn(data);
      });
    },
  };
  globalThis.acquireVsCodeApi = () => api;
  return p;
}

test('a webview reads and watches the host\'s replica; disposing the panel removes its watchers', async () => {
  const replica = await Replica.openInMemory({ indexes: { columns: [['object_id', 'position']] } });
  const host = replica.scope('org-1');
  for (let i = 0; i < 3; i++) await host.put('columns', `c${i}`, { object_id: 'obj_1', position: i });
  const p = panel();
  const served = serveWebview(p, replica, { readOnly: true });

  const connected = await connectVsCodeWebview(); // acquireVsCodeApi() itself
  assert.equal(connected.readOnly, true);
  const scope = connected.scope('org-1');
  assert.deepEqual((await scope.get('columns', 'c1')).data, { object_id: 'obj_1', position: 1 });
  const pages = [];
  scope.watch('columns', { index: ['object_id', 'position'], eq: 'obj_1' }, (page) => pages.push(page.records.map((r) => r.id)));
  await until('the first result', () => pages.length === 1);
  await host.put('columns', 'c3', { object_id: 'obj_1', position: 3 });
  await until('the result after a host edit', () => pages.length === 2);
  assert.deepEqual(pages, [['c0', 'c1', 'c2'], ['c0', 'c1', 'c2', 'c3']]);
  await assert.rejects(scope.put('columns', 'x', { object_id: 'obj_1' }), (e) => e.code === 'InvalidInput' && e.detail === 'ReadOnly');
  assert.equal(served.active, 1);

  // The panel closes: nothing of the webview stays on the host.
  p.dispose();
  assert.equal(served.active, 0);
  assert.equal(served.connections, 0);
  assert.equal(p.listeners(), 0);
  await until('the webview to learn it', () => connected.closed);
  const posts = p.posts;
  await host.put('columns', 'c4', { object_id: 'obj_1', position: 4 });
  await tick(20);
  assert.equal(p.posts, posts, 'nothing posted after the panel closed');
  await assert.rejects(scope.count(), (e) => e.code === 'Storage' && e.detail === 'Closed');
  await replica.close();
});

test('a reloaded webview (a new connection, no goodbye) ends the earlier one on the host', async () => {
  const replica = await Replica.openInMemory({ indexes: { objects: ['name'] } });
  await replica.scope('s').put('objects', 'a', { name: 'a' });
  const p = panel();
  const served = serveWebview(p, replica);
  const api = globalThis.acquireVsCodeApi();
  const first = await connectVsCodeWebview(api);
  first.scope('s').watch('objects', { index: 'name' }, () => {});
  first.subscribe(() => {});
  await until('the watch', () => served.active === 2);
  // The webview's document is replaced: the old connection never says goodbye.
  const second = await connectVsCodeWebview(api);
  await until('the earlier connection to end', () => first.closed);
  assert.equal(served.connections, 1);
  assert.equal(served.active, 0);
  assert.equal(await second.scope('s').count(), 1);
  served.dispose();
  await replica.close();
});

test('the host\'s own remote (a FunctionRemote, which cannot cross): the webview syncs without one and hears each sync end', async () => {
  const cloud = new Cloud();
  for (let i = 0; i < 5; i++) await cloud.put('objects', `o${i}`, { name: `n${i}` });
  const replica = await Replica.openInMemory({ indexes: { objects: ['name'] } });
  const p = panel();
  const served = serveWebview(p, replica, { remote: cloud.remote() });
  const connected = await connectVsCodeWebview();
  assert.equal(connected.ownRemote, true);
  const scope = connected.scope('org-1');
  let ends = 0;
  const off = scope.onSyncEnd(() => (ends += 1));
  const phases = new Set();
  const report = await scope.sync({ onProgress: (e) => phases.add(e.phase) });
  assert.equal(report.run.inserted, 5);
  assert.ok(phases.has('apply'));
  await until('the end of the first sync', () => ends === 1);
  // A sync that only pushes changes no visible data (no change event), and still ends.
  await scope.put('objects', 'o0', { name: 'edited' });
  assert.equal((await scope.status()).pendingEdits, 1);
  await scope.sync();
  await until('the end of the second sync', () => ends === 2);
  assert.equal((await scope.status()).pendingEdits, 0);
  off();
  await until('the owner to drop it', () => served.active === 0);
  served.dispose();
  await replica.close();
});
