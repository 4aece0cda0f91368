// Reads per record through the package's API, not a timed test: `get` one record at a time,
// `list` and an indexed `query` in pages of 1,000, over N generated records (default 10,000;
// TETHER_BENCH_RECORDS=N) synced into the in-memory store and, where Node has node:sqlite
// (Node 24), into a replica file. Each figure is the best of 5 passes over all N records, in
// microseconds per record: the cost of crossing from the store through the wasm into the
// objects an app sees (docs/browser.md, "What crosses into JavaScript").
//
//   node js/bench/read-bench.mjs                (the in-memory store)
//   "$TETHER_NODE24" js/bench/read-bench.mjs    (also node:sqlite)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Replica } from '../src/node.js';
import { generatePages } from '../test/fixtures/cloud.mjs';

const N = Number(process.env.TETHER_BENCH_RECORDS ?? 10_000);
const PAGE = 1000;
const PASSES = 5;
const { pages } = await generatePages(N, PAGE);
const remote = {
  pull: ({ checkpoint }) => {
    const i = checkpoint === null ? 0 : pages.findIndex((p) => p.checkpoint === checkpoint) + 1;
    return pages[i];
  },
};
const ids = pages.flatMap((p) => p.changes.map((c) => c.id));
const indexes = { objects: ['schema'] };

async function best(fn) {
  let min = Infinity;
  for (let i = 0; i < PASSES; i++) {
    const t = performance.now();
    const n = await fn();
    if (n !== N) throw new Error(`read ${n} records, expected ${N}`);
    min = Math.min(min, performance.now() - t);
  }
  return (min * 1000) / N;
}

async function measure(replica) {
  const scope = replica.scope('bench');
  await scope.sync({ remote, pageSize: PAGE });
  const get = await best(async () => {
    let n = 0;
    for (const id of ids) if ((await scope.get('objects', id))?.data.name) n += 1;
    return n;
  });
  const list = await best(async () => {
    let n = 0;
    for (let after; ;) {
      const page = await scope.list('objects', { after, limit: PAGE });
      n += page.filter((r) => r.data.name).length;
      if (page.length < PAGE) return n;
      after = page[page.length - 1].id;
    }
  });
  const query = await best(async () => {
    let n = 0;
    for (let after = null; ;) {
      const page = await scope.query('objects', { index: 'schema', gte: '', limit: PAGE, after });
      n += page.records.filter((r) => r.data.name).length;
      if (!page.cursor) return n;
      after = page.cursor;
    }
  });
  await replica.close();
  return { get, list, query };
}

const results = { memory: await measure(await Replica.openInMemory({ indexes })) };
if (await import('node:sqlite').then(() => true, () => false)) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-read-bench-'));
  try {
    results['node:sqlite'] = await measure(await Replica.open(path.join(dir, 'replica.db'), { indexes }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`reads of ${N} records, Node ${process.version}, best of ${PASSES}, µs per record`);
for (const [store, r] of Object.entries(results)) {
  console.log(`${store.padEnd(12)} get ${r.get.toFixed(2).padStart(7)}   list ${r.list.toFixed(2).padStart(6)}   query ${r.query.toFixed(2).padStart(6)}`);
}
