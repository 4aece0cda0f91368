// The example extension in a real VS Code extension host (code-server, VS Code 1.139, on Node 24),
// against `tether serve`: install the .vsix, open the workbench in headless Chromium, sign in
// through the command palette (the token goes into SecretStorage), read what the extension shows
// (status bar, the catalog tree expanded down to columns), switch the organization with its
// quick pick, make a conflict and see it in the tree, go offline, then stop the host and check
// its replica file with the native CLI against the server. Run by scripts/ci/vscode.sh, which
// provides CODE_SERVER, CODE_SERVER_PATH (Node 24 first), TETHER_BIN and VSIX.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { TOKEN, adminWrite, cli, failure, openWorkbench, startServer, stop, tempDir } from './harness.mjs';

const ORGS = { 'org-a': 300, 'org-b': 200 }; // records seeded per organization
const dir = tempDir();

async function cloudStatus(url, scope) {
  const res = await fetch(`${url}/v1/scopes/${scope}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.ok(res.ok, `status of ${scope}: ${res.status}`);
  return res.json();
}

test('the catalog extension in code-server: sign-in, tree, status bar, org switch, replica file', { timeout: 600_000 }, async (t) => {
  const { server, url } = await startServer(t, dir);
  for (const [org, n] of Object.entries(ORGS)) cli('seed', '--remote', url, '--token', TOKEN, '--scope', org, '--records', String(n));

  // No TETHER_TOKEN in the host's environment: the token goes through "Tether: Sign in" into
  // SecretStorage, as a user would enter it.
  const { page, browser, command, db, stopHost } = await openWorkbench(t, dir, {
    'tether.serverUrl': url,
    'tether.organization': 'org-a',
    'tether.organizations': Object.keys(ORGS),
  });
  const cloud = {}; // the server's status of each organization, taken before it stops
  try {
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
    await adminWrite(url, 'org-b', [{ collection: 'repositories', id: 'repo_000001', data: { name: 'server edit' } }]);
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
    throw await failure(page, dir, e);
  }
  await browser.close();
  await stopHost();

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
