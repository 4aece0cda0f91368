// What the tests in a real extension host share: `tether serve` on loopback, the .vsix installed
// into a fresh code-server profile, code-server started and its workbench opened in headless
// Chromium, the command palette, and the extension's report file (src/report.ts). Provided by
// scripts/ci/vscode.sh: CODE_SERVER, CODE_SERVER_PATH (Node 24 first), TETHER_BIN and VSIX.
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
export const TOKEN = 'secret';
export const EXTENSION_ID = 'tether-examples.tether-catalog';

/** A fresh temporary folder for one test's files. */
export function tempDir() {
  return mkdtempSync(path.join(os.tmpdir(), 'tether-vscode-'));
}

export function cli(...args) {
  return execFileSync(TETHER_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
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

export async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** `tether serve` on a free loopback port with a SQLite cloud in `dir`: { server, url }. */
export async function startServer(t, dir) {
  const [server, m] = await start(TETHER_BIN, ['serve', '--bind', '127.0.0.1:0', '--db', path.join(dir, 'cloud.db'),
    '--dev-token', TOKEN], process.env, /listening on (http:\/\/[\d.:]+)/);
  t.after(() => stop(server, 'SIGINT'));
  return { server, url: m[1] };
}

/** A write through the server's admin API, as another client's sync would land in the cloud. */
export async function adminWrite(url, scope, upserts, deletes = []) {
  const res = await fetch(`${url}/v1/admin/scopes/${scope}/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upserts, deletes }),
  });
  assert.ok(res.ok, `admin write: ${res.status} ${await res.text()}`);
}

/**
 * Installs the .vsix into a fresh profile under `dir`, writes `settings` (workspace trust off
 * added), starts code-server with `env` added to its environment and opens the workbench in
 * headless Chromium. Returns { page, host, command, db, report, stopHost }.
 */
export async function openWorkbench(t, dir, settings, env = {}) {
  const hostEnv = { ...process.env, PATH: CODE_SERVER_PATH };
  delete hostEnv.TETHER_TOKEN;
  const ext = path.join(dir, 'extensions');
  const ud = path.join(dir, 'user-data');
  const workspace = path.join(dir, 'workspace');
  mkdirSync(path.join(ud, 'User'), { recursive: true });
  mkdirSync(workspace);
  const installed = execFileSync(CODE_SERVER, ['--extensions-dir', ext, '--user-data-dir', ud, '--install-extension', VSIX],
    { env: hostEnv, encoding: 'utf8' });
  assert.match(installed, /successfully installed/i);
  writeFileSync(path.join(ud, 'User', 'settings.json'), JSON.stringify({
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    ...settings,
  }, null, 2));

  const reportFile = path.join(dir, 'report.jsonl');
  const port = await freePort();
  const [host] = await start(CODE_SERVER, ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`,
    '--extensions-dir', ext, '--user-data-dir', ud, '--disable-telemetry', '--disable-update-check', workspace],
  { ...hostEnv, TETHER_CATALOG_REPORT: reportFile, ...env }, /HTTP server listening on/, path.join(dir, 'code-server.log'));
  let hostStopped = false;
  const stopHost = async () => {
    hostStopped = true;
    await stop(host);
  };
  t.after(() => hostStopped || stop(host));

  const browser = await chromium.launch({
    executablePath: process.env.CHROME_BIN || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  /** Runs a command from the command palette (F1). */
  // The palette can close again as soon as it opens (focus taken by a view refreshing after a
  // sync): then it is opened again, up to three times.
  const command = async (title) => {
    const input = page.locator('.quick-input-widget input');
    for (let attempt = 1; ; attempt++) {
      try {
        await page.keyboard.press('F1');
        await input.waitFor({ state: 'visible', timeout: 10_000 });
        await input.fill(`>${title}`, { timeout: 10_000 });
        await page.locator('.quick-input-list [role="option"]', { hasText: title }).first().waitFor({ timeout: 10_000 });
        await input.press('Enter', { timeout: 10_000 });
        return;
      } catch (e) {
        if (attempt >= 3) throw e;
        await page.keyboard.press('Escape').catch(() => {});
      }
    }
  };
  /** The events the extension reported so far (src/report.ts), those named `event` if given. */
  const report = (event) => {
    if (!existsSync(reportFile)) return [];
    const all = readFileSync(reportFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    return event ? all.filter((e) => e.event === event) : all;
  };
  const db = path.join(ud, 'User', 'globalStorage', EXTENSION_ID, 'replica.db');
  return { page, browser, command, report, db, stopHost };
}

/** Waits until `check()` is truthy (polled), and returns its value. */
export async function until(check, what, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A failure with what the page shows: a screenshot and the list rows, in `dir`. */
export async function failure(page, dir, e) {
  await page.screenshot({ path: path.join(dir, 'failure.png') }).catch(() => {});
  const rows = await page.locator('.monaco-list-row').evaluateAll((els) =>
    els.map((el) => `${el.getAttribute('role')} level=${el.getAttribute('aria-level')}: ${el.getAttribute('aria-label')}`)).catch(() => []);
  return new Error(`${e.message}\nlist rows:\n${rows.join('\n')}\n(screenshot and code-server.log in ${dir})`);
}

/** p50 and p99 (nearest rank) of `xs`, rounded to 0.1. */
export function percentiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  const r = (x) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(at(50)), p99: r(at(99)) };
}
