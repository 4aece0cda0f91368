// The esbuild bundle as the .vsix ships it (dist/ alone, no node_modules), loaded under Node 24
// with a minimal stand-in for the `vscode` module: activate() must find the wasm beside the
// bundle, open the replica file in globalStorageUri through node:sqlite, register the commands
// and the tree, and show "sign in" while no token is stored. The real host is host.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, existsSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const dist = path.resolve(import.meta.dirname, '../dist');

function fakeVscode(settings) {
  const commands = new Map();
  const trees = new Map();
  const statusItems = [];
  const disposable = { dispose() {} };
  const event = () => disposable;
  class EventEmitter { event = event; fire() {} dispose() {} }
  const api = {
    commands, trees, statusItems,
    Uri: {
      file: (p) => ({ fsPath: p }),
      joinPath: (u, ...parts) => ({ fsPath: path.join(u.fsPath, ...parts) }),
    },
    EventEmitter,
    ThemeIcon: class { constructor(id) { this.id = id; } },
    ThemeColor: class { constructor(id) { this.id = id; } },
    TreeItem: class { constructor(label, state) { this.label = label; this.collapsibleState = state; } },
    MarkdownString: class { constructor(v) { this.value = v; } appendCodeblock(c) { this.value += c; return this; } },
    StatusBarAlignment: { Left: 1, Right: 2 },
    TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    ConfigurationTarget: { Global: 1 },
    window: {
      createOutputChannel: () => ({ info() {}, warn() {}, error() {}, dispose() {} }),
      createStatusBarItem: () => {
        const item = { text: '', show() {}, dispose() {} };
        statusItems.push(item);
        return item;
      },
      registerTreeDataProvider: (id, provider) => (trees.set(id, provider), disposable),
    },
    commands: {
      registerCommand: (id, fn) => (commands.set(id, fn), disposable),
      executeCommand: async () => {},
    },
    workspace: {
      fs: { createDirectory: async (u) => (await import('node:fs')).mkdirSync(u.fsPath, { recursive: true }) },
      getConfiguration: () => ({ get: (key, dflt) => settings[key] ?? dflt, update: async () => {} }),
      onDidChangeConfiguration: event,
    },
  };
  api.commandIds = commands;
  return api;
}

test('the shipped bundle activates under Node 24 with its wasm beside it, offline', async () => {
  assert.ok(existsSync(path.join(dist, 'tether_wasm_node_bg.wasm')), 'npm run build copies the wasm into dist/');
  const shipped = path.join(mkdtempSync(path.join(os.tmpdir(), 'tether-vsix-')), 'dist');
  cpSync(dist, shipped, { recursive: true });
  const storage = path.join(path.dirname(shipped), 'globalStorage');

  const vscode = fakeVscode({ serverUrl: 'http://127.0.0.1:9', organization: 'org-a' });
  const load = Module._load;
  Module._load = function (request, ...rest) {
    return request === 'vscode' ? vscode : load.call(this, request, ...rest);
  };
  const ext = createRequire(import.meta.url)(path.join(shipped, 'extension.js'));
  const secrets = new Map();
  const context = {
    subscriptions: [],
    globalStorageUri: { fsPath: storage },
    secrets: { get: async (k) => secrets.get(k), store: async (k, v) => secrets.set(k, v), delete: async (k) => secrets.delete(k), onDidChange: () => ({ dispose() {} }) },
  };
  delete process.env.TETHER_TOKEN;
  await ext.activate(context);
  try {
    assert.ok(existsSync(path.join(storage, 'replica.db')), 'the replica file is in globalStorageUri');
    for (const id of ['tether.signIn', 'tether.syncNow', 'tether.switchOrganization', 'tether.showConflicts', 'tether.showObject']) {
      assert.ok(vscode.commandIds.has(id), `command ${id}`);
    }
    assert.equal(vscode.statusItems[0].text, '$(account) Tether: sign in');
    const tree = vscode.trees.get('tether.catalog');
    const roots = (await tree.getChildren()).map((n) => tree.getTreeItem(n).label);
    assert.deepEqual(roots, ['Conflicts (0)', 'Nothing synced for org-a yet']);
  } finally {
    await ext.deactivate();
    Module._load = load;
  }
});
