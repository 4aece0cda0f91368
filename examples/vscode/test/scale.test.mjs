// The example extension at the seeds' size, in a real extension host (code-server on Node 24):
// `tether seed` writes TETHER_CATALOG_OBJECTS objects (default 5,000: 25,000 records, 250 repositories; the
// dataset has 20 objects, 45 columns and 35 other records per 100), the extension syncs them into
// its replica file with its indexes, and the test expands the tree in the workbench as a user
// would: the root (re-read after each "Tether: Sync now"), repositories, objects' columns; then
// opens the object panel. It prints the initial sync time, p50/p99 of each expansion measured in
// the extension host (the indexed reads of getChildren) and end to end (the click to the rows
// shown), p50/p99 of the panel opening, and the extension host's memory (RSS). No timing is
// asserted: the numbers go in examples/vscode/README.md. TETHER_CATALOG_OBJECTS=100000 is the
// seeds' size (500,000 records).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKEN, cli, failure, openWorkbench, percentiles, startServer, tempDir, until } from './harness.mjs';

const OBJECTS = Number(process.env.TETHER_CATALOG_OBJECTS ?? 5000);
const RECORDS = OBJECTS * 5;
const ORG = 'org-scale';
const SAMPLES = Number(process.env.TETHER_CATALOG_SAMPLES ?? 30);
const dir = tempDir();

test(`the catalog at ${OBJECTS} objects (${RECORDS} records): sync, tree expansion, panel, memory`, { timeout: 3_600_000 }, async (t) => {
  const { url } = await startServer(t, dir);
  let started = performance.now();
  cli('seed', '--remote', url, '--token', TOKEN, '--scope', ORG, '--records', String(RECORDS));
  const seedMs = performance.now() - started;

  // TETHER_TOKEN (the headless fallback) signs in: the first sync starts with the host.
  started = performance.now();
  const { page, command, report } = await openWorkbench(t, dir, { 'tether.serverUrl': url, 'tether.organization': ORG },
    { TETHER_TOKEN: TOKEN });
  const results = { objects: OBJECTS, records: RECORDS, seedMs: Math.round(seedMs) };
  try {
    const activated = await until(() => report('activated')[0], 'activation', 180_000);
    const statusItem = (text) => page.locator('.statusbar-item', { hasText: text });
    await statusItem(`Tether: synced ${RECORDS} records`).waitFor({ timeout: 3_600_000 });
    const first = report('synced')[0];
    assert.equal(first.kind, 'initial');
    results.initialSync = { runMs: first.ms, pageToSyncedMs: Math.round(performance.now() - started) };
    results.memory = { activated: activated.rssMiB, synced: first.rssMiB, peakDuringSync: first.peakRssMiB, heapSyncedMiB: first.heapMiB };

    await page.getByRole('tab', { name: /^Tether/ }).first().click();
    const rows = (level) => page.locator(`[role="treeitem"][aria-level="${level}"]`);
    await page.getByRole('treeitem', { name: /^repositories / }).first().waitFor({ timeout: 60_000 });
    const repositories = OBJECTS / 20;
    assert.equal(report('children').filter((e) => e.collection === 'repositories')[0].n, Math.min(200, repositories),
      'the root reads one page of repositories');

    // The root, re-read after each sync (an incremental sync that finds nothing new).
    for (let i = 0; i < Math.min(SAMPLES, 20); i++) {
      const before = report('synced').length;
      await command('Tether: Sync now');
      await until(() => report('synced').length > before, 'a sync');
    }
    await until(() => report('children').filter((e) => e.collection === 'repositories').length > 1, 'root reads');

    // Expands `row` and waits for its children (the rows one level deeper) to show; collapses it
    // again when `collapse`. Returns the milliseconds from the click to the rows shown.
    const expand = async (row, level, collapse) => {
      const t0 = performance.now();
      await row.click();
      await rows(level + 1).first().waitFor();
      const ms = performance.now() - t0;
      if (collapse) {
        await row.click();
        await until(async () => (await rows(level + 1).count()) === 0, 'the rows to hide');
      }
      return ms;
    };

    // Repositories: each expanded once (its files), then collapsed.
    const repoUi = [];
    const repos = await rows(1).filter({ hasText: /./ }).evaluateAll((els) =>
      els.map((el) => el.getAttribute('aria-label')).filter((l) => l.startsWith('repositories ')));
    for (const label of repos.slice(0, SAMPLES)) {
      repoUi.push(await expand(page.getByRole('treeitem', { name: label, exact: true }), 1, true));
    }

    // Objects: each object of the first repositories expanded once (its columns), then collapsed.
    const objectUi = [];
    const objectIds = [];
    for (const label of repos) {
      if (objectUi.length >= SAMPLES) break;
      const repo = page.getByRole('treeitem', { name: label, exact: true });
      await expand(repo, 1, false);
      const files = await rows(2).evaluateAll((els) => els.map((el) => el.getAttribute('aria-label')));
      for (const file of files) {
        if (objectUi.length >= SAMPLES) break;
        const fileRow = page.getByRole('treeitem', { name: file, exact: true });
        await fileRow.click();
        // A file may define no object: then its twistie goes away and no row shows below it.
        await until(async () => (await rows(3).count()) > 0 || (await fileRow.getAttribute('aria-expanded')) === null, 'a file\'s objects');
        const objects = await rows(3).evaluateAll((els) => els.map((el) => el.getAttribute('aria-label')));
        for (const object of objects) {
          if (objectUi.length >= SAMPLES) break;
          objectUi.push(await expand(page.getByRole('treeitem', { name: object, exact: true }), 3, true));
          objectIds.push(object.split(' ')[1]);
        }
        if (objects.length) await fileRow.click();
        await until(async () => (await rows(3).count()) === 0, 'the objects to hide');
      }
      await repo.click();
      await until(async () => (await rows(2).count()) === 0, 'the files to hide');
    }

    const host = (collection, skip = 0) => percentiles(report('children').filter((e) => e.collection === collection).slice(skip).map((e) => e.ms));
    results.root = { host: host('repositories') };
    results.repository = { host: host('files'), ui: percentiles(repoUi) };
    results.objectColumns = { host: host('columns'), ui: percentiles(objectUi) };

    // The object panel, opened from the command palette by id, then closed: from the command
    // to the webview's first full render of what the host's replica pushed (reported by the
    // extension), and from Enter to the columns shown in the page.
    const panelUi = [];
    for (const id of objectIds) {
      const opened = report('panel-open').length;
      await command('Tether: Show Object');
      const input = page.locator('.quick-input-widget input');
      await input.fill(id);
      await page.locator('.quick-input-list [role="option"]', { hasText: id }).first().waitFor();
      const t0 = performance.now();
      await input.press('Enter');
      await until(() => report('panel-open').length > opened, `the panel of ${id}`);
      panelUi.push(performance.now() - t0);
      const closed = report('panel-closed').length;
      await command('View: Close All Editors');
      await until(() => report('panel-closed').length > closed, `the panel of ${id} to close`);
    }
    const panels = report('panel-open');
    results.panelOpen = {
      host: percentiles(panels.map((e) => e.ms)),
      webview: percentiles(panels.map((e) => e.webviewMs)),
      webviewConnected: percentiles(panels.map((e) => e.connectedMs)),
      webviewQueries: percentiles(panels.map((e) => e.webviewMs - e.connectedMs)),
      ui: percentiles(panelUi),
    };
    assert.ok(report('panel-closed').every((e) => e.watchers === e.watchersBefore), 'every closed panel left no watcher');

    // The root's "more…" (the last row: End in the tree) shows the next page.
    if (repositories > 200) {
      await page.getByRole('treeitem', { name: /^Conflicts / }).click();
      await page.keyboard.press('End');
      const more = page.getByRole('treeitem', { name: new RegExp(`^more… \\(200 of ${repositories}\\)`) });
      await more.click();
      await until(() => report('children').some((e) => e.collection === 'repositories' && e.n === Math.min(400, repositories)),
        'the second page of repositories');
    }

    // Memory after browsing: the next sync reports it.
    const before = report('synced').length;
    await command('Tether: Sync now');
    const last = await until(() => report('synced')[before], 'a sync');
    results.memory.browsed = last.rssMiB;
  } catch (e) {
    throw await failure(page, dir, e);
  }
  console.log(`catalog at scale: ${JSON.stringify(results, null, 2)}`);
});
