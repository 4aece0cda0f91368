// What `npm pack` ships: README, licenses, metadata, every file the `exports` map and
// `sideEffects` name, and the modules the wasm glue imports; the CommonJS entry agrees with the
// ES one.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { JS_DIR } from './fixtures/harness.mjs';
import * as esm from '../src/node.js';

const pkg = JSON.parse(readFileSync(path.join(JS_DIR, 'package.json'), 'utf8'));

function targets(v) {
  if (typeof v === 'string') return [v];
  return Object.values(v).flatMap(targets);
}

test('the tarball has the README, both licenses, the metadata and every exported file', () => {
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: JS_DIR, encoding: 'utf8' }));
  const files = new Set(packed.files.map((f) => f.path));
  for (const f of ['README.md', 'LICENSE-MIT', 'LICENSE-APACHE', 'package.json']) assert.ok(files.has(f), `${f} not packed`);
  const exported = [...targets(pkg.exports), ...pkg.sideEffects, pkg.main, pkg.types].map((t) => t.replace(/^\.\//, ''));
  for (const f of exported) assert.ok(files.has(f), `${f} (named in package.json) not packed`);
  // The wasm-bindgen glue imports the crate's JS snippets (the Node build's `runRows`).
  for (const glue of ['pkg/tether_wasm.js', 'pkg/tether_wasm_node.js']) {
    const imports = [...readFileSync(path.join(JS_DIR, glue), 'utf8').matchAll(/^import .* from '\.\/(.+)';$/gm)];
    for (const [, f] of imports) assert.ok(files.has(`pkg/${f}`), `pkg/${f} (imported by ${glue}) not packed`);
  }
  assert.equal(typeof pkg.repository?.url, 'string');
  assert.ok(pkg.keywords?.length > 0);
  assert.equal(pkg.license, 'MIT OR Apache-2.0');
  assert.match(readFileSync(path.join(JS_DIR, 'README.md'), 'utf8'), /## Where the wasm goes/);
  // The entries that register the wasm's location must not be dropped as side-effect free.
  for (const entry of [pkg.exports['.'].browser, pkg.exports['.'].node.default]) {
    assert.ok(pkg.sideEffects.includes(entry), `${entry} missing from sideEffects`);
  }
});

test('require() gets the same API, promise-returning, with working instanceof', async () => {
  const cjs = createRequire(import.meta.url)('../src/node.cjs');
  assert.deepEqual(cjs.ERROR_CODES, esm.ERROR_CODES);
  assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
  const replica = await cjs.Replica.openInMemory({ name: 'cjs' });
  assert.ok(replica instanceof cjs.Replica);
  assert.ok(replica instanceof esm.Replica);
  assert.ok(replica.scope('s') instanceof cjs.Scope);
  assert.ok(!({} instanceof cjs.Replica));
  assert.equal(await replica.scope('s').count(), 0);
  const err = await cjs.Replica.openInMemory({ snapshot: 42 }).catch((e) => e);
  assert.ok(cjs.isTetherError(err));
  assert.equal(err.code, 'InvalidInput');
  assert.match(err.message, /exportSnapshot\(\)/);
});
