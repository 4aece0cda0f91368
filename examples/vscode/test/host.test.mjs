// The example extension in a real VS Code extension host (code-server, VS Code 1.139, on Node 24),
// against `tether serve`: install the .vsix, open the workbench in headless Chromium, sign in
// through the command palette (the token goes into SecretStorage), read what the extension shows
// (status bar, the catalog tree expanded down to columns), switch the organization with its
// quick pick, make a conflict and see it in the tree, go offline, then stop the host and check
// its replica file with the native CLI against the server. Run by scripts/ci/vscode.sh, which
// provides CODE_SERVER, CODE_SERVER_PATH (Node 24 first), TETHER_BIN and VSIX.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const { CODE_SERVER, CODE_SERVER_PATH, TETHER_BIN, VSIX } = process.env;
for (const [k, v] of Object.entries({ CODE_SERVER, CODE_SERVER_PATH, TETHER_BIN, VSIX })) {
  assert.ok(v, `${k} is not set: run scripts/ci/vscode.sh`);
}
const TOKEN = 'secret';
const ORGS = { 'org-a': 300, 'org-b': 200 }; // records seeded per organization
const EXTENSION_ID = 'tether-examples.tether-catalog';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-vscode-'));
const hostEnv = { ...process.env, PATH: CODE_SERVER_PATH };

function cli(...args) {
  return execFileSync(TETHER_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Spawns `cmd` and resolves with [child, match] once its output matches `ready`. */
function start(cmd, args, env, ready, logFile) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d) => {
      out += d;
      if (logFile) writeFileSync(logFile, out);
      const m = out.match(ready);
      if (m) resolve([child, m]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${path.basename(cmd)} exited with ${code}:\n${out}`)));
  });
}

async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

async function cloudStatus(url, scope) {
  const res = await fetch(`${url}/v1/scopes/${scope}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.ok(res.ok, `status of ${scope}: ${res.status}`);
  return res.json();
}

test('the catalog extension in code-server: sign-in, tree, status bar, org switch, replica file', { timeout: 600_000 }, async (t) => {
  const [server, m] = await start(TETHER_BIN, ['serve', '--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'),
    '--dev-token', TOKEN], process.env, /listening on (http:\/\/[\d.:]+)/);
  t.after(() => stop(server, 'SIGINT'));
  const url = m[1];
  for (const [org, n] of Object.entries(ORGS)) cli('seed', '--remote', url, '--token', TOKEN, '--scope', org, '--records', String(n));

  // Install the .vsix into a fresh extensions dir and user-data-dir.
  const ext = path.join(dir, 'extensions');
  const ud = path.join(dir, 'user-data');
  const workspace = path.join(dir, 'workspace');
  mkdirSync(path.join(ud, 'User'), { recursive: true });
  mkdirSync(workspace);
  const installed = execFileSync(CODE_SERVER, ['--extensions-dir', ext, '--user-data-dir', ud, '--install-extension', VSIX],
    { env: hostEnv, encoding: 'utf8' });
  assert.match(installed, /successfully installed/i);

  const settingsFile = path.join(ud, 'User', 'settings.json');
  const db = path.join(ud, 'User', 'globalStorage', EXTENSION_ID, 'replica.db');
  writeFileSync(settingsFile, JSON.stringify({
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'tether.serverUrl': url,
    'tether.organization': 'org-a',
    'tether.organizations': Object.keys(ORGS),
  }, null, 2));

  // No TETHER_TOKEN in the host's environment: the token goes through "Tether: Sign in" into
  // SecretStorage, as a user would enter it.
  const port = await freePort();
  const env = { ...hostEnv };
  delete env.TETHER_TOKEN;
  const [host] = await start(CODE_SERVER, ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`,
    '--extensions-dir', ext, '--user-data-dir', ud, '--disable-telemetry', '--disable-update-check', workspace],
  env, /HTTP server listening on/, path.join(dir, 'code-server.log'));
  let hostStopped = false;
  t.after(() => hostStopped || stop(host));

  const browser = await chromium.launch({
    executablePath: process.env.CHROME_BIN || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  t.after(() => browser.close());
  const cloud = {}; // the server's status of each organization, taken before it stops
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  /** Runs a command from the command palette (F1). */
  const command = async (title) => {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor();
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list [role="option"]', { hasText: title }).first().waitFor();
    await input.press('Enter');
  };
  try {
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);

    // Signed out: the status bar asks for a sign-in. The command palette runs it; the token
    // goes into a password input box.
    const statusItem = (text) => page.locator('.statusbar-item', { hasText: text });
    await statusItem('Tether: sign in').waitFor({ timeout: 180_000 });
    await command('Tether: Sign in');
    // showInputBox({ password: true }): the palette's input turns into a password field.
    const input = page.locator('.quick-input-widget input[type="password"]');
    await input.waitFor();
    await input.fill(TOKEN);
    await input.press('Enter');

    // The status bar: the background sync's first run, then the count of the replica.
    const synced = (n) => statusItem(`Tether: synced ${n} records`);
    await synced(ORGS['org-a']).waitFor({ timeout: 180_000 });

    // The catalog tree, read from the replica: 3 repositories for 300 records (one per 100).
    await page.getByRole('tab', { name: /^Tether/ }).first().click();
    const item = (name) => page.getByRole('treeitem', { name });
    const items = (prefix) => page.getByRole('treeitem', { name: new RegExp(`^${prefix} `) });
    await item(/^repositories repo_000000 /).waitFor({ timeout: 30_000 });
    assert.equal(await items('repositories').count(), 3);
    await item(/^Conflicts \(0\)/).waitFor();

    await item(/^repositories repo_000000 /).click();
    await item(/^files file_00000001 /).waitFor();
    assert.equal(await items('files').count(), 15, 'a repository holds 15 files');
    await item(/^files file_00000002 /).click();
    await item(/^objects obj_00000016 /).waitFor();
    await item(/^objects obj_00000031 /).waitFor();
    assert.equal(await items('objects').count(), 2, 'file_00000002 defines obj_00000016 and obj_00000031');
    await item(/^objects obj_00000016 /).click();
    for (const c of ['col_00000040', 'col_00000060', 'col_00000080']) await item(new RegExp(`^columns ${c} `)).waitFor();
    assert.equal(await items('columns').count(), 3, 'obj_00000016 has 3 columns');
    assert.equal(await item(/^objects obj_00000016 /).getAttribute('aria-level'), '3');
    await page.screenshot({ path: path.join(dir, 'workbench-org-a.png') });

    // "Tether: Switch organization": a quick pick of the configured and stored organizations;
    // the other scope syncs into the same file, and its tree has 2 repositories.
    await command('Tether: Switch organization');
    await page.locator('.quick-input-list [role="option"]', { hasText: 'org-b' }).waitFor();
    await page.locator('.quick-input-widget input').fill('org-b');
    await page.locator('.quick-input-widget input').press('Enter');
    await synced(ORGS['org-b']).waitFor({ timeout: 120_000 });
    await page.waitForFunction(() => document.querySelectorAll('[role="treeitem"][aria-label^="repositories "]').length === 2,
      null, { timeout: 30_000 });

    // A conflict: a local edit (written into the same replica file by the native CLI while the
    // host has it open) of a record that the server then changes; "Tether: Sync now" pushes it,
    // the cloud wins, and the journal appears in the tree.
    cli('put', '--db', db, '--scope', 'org-b', 'repositories', 'repo_000001', JSON.stringify({ name: 'local edit' }));
    const res = await fetch(`${url}/v1/admin/scopes/org-b/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ upserts: [{ collection: 'repositories', id: 'repo_000001', data: { name: 'server edit' } }], deletes: [] }),
    });
    assert.ok(res.ok, `admin write: ${res.status} ${await res.text()}`);
    await command('Tether: Sync now');
    await item(/^Conflicts \(1\)/).waitFor({ timeout: 60_000 });
    // Clicking the node runs "Tether: Show conflicts": a quick pick of the journal.
    await item(/^Conflicts \(1\)/).click();
    await page.locator('.quick-input-list [role="option"]', { hasText: 'repositories/repo_000001' })
      .filter({ hasText: 'local put lost to cloud version' }).waitFor();
    await page.keyboard.press('Escape');
    await item(/^repositories repo_000001 server edit/).waitFor();

    // The server goes away: "Tether: Sync now" (with its progress notification) ends offline,
    // and the tree still reads the replica.
    for (const org of Object.keys(ORGS)) cloud[org] = await cloudStatus(url, org);
    await stop(server, 'SIGINT');
    await command('Tether: Sync now');
    await statusItem(`Tether: offline (${ORGS['org-b']} records)`).waitFor({ timeout: 120_000 });
    assert.equal(await items('repositories').count(), 2);
  } catch (e) {
    await page.screenshot({ path: path.join(dir, 'failure.png') }).catch(() => {});
    const rows = await page.locator('.monaco-list-row').evaluateAll((els) =>
      els.map((el) => `${el.getAttribute('role')} level=${el.getAttribute('aria-level')}: ${el.getAttribute('aria-label')}`)).catch(() => []);
    throw new Error(`${e.message}\nlist rows:\n${rows.join('\n')}\n(screenshot and code-server.log in ${dir})`);
  }
  await browser.close();
  await stop(host);
  hostStopped = true;

  // The replica file the extension host wrote, read by the native CLI: both organizations, each
  // with the server's count and digest.
  assert.ok(existsSync(db), `no replica file at ${db}`);
  for (const [org, n] of Object.entries(ORGS)) {
    const local = JSON.parse(cli('status', '--db', db, '--scope', org, '--json'));
    assert.equal(cloud[org].count, n);
    assert.equal(local.count, cloud[org].count, `${org}: replica count`);
    assert.equal(local.digest, cloud[org].digest, `${org}: replica digest`);
  }
  const log = readFileSync(path.join(dir, 'code-server.log'), 'utf8');
  assert.doesNotMatch(log, /Extension host .* terminated unexpectedly/);
});
