// The child of the kill -9 test (sqlite.test.mjs): syncs a scope into a replica file with
// small pages, printing `applied N` after each applied page, until its parent kills it.
// Usage: node sync-child.mjs FILE URL TOKEN SCOPE PAGE_SIZE
import { Replica } from '../../src/node.js';

const [file, url, token, scopeId, pageSize] = process.argv.slice(2);
const replica = await Replica.open(file);
await replica.scope(scopeId).sync({
  remote: { url, token },
  pageSize: Number(pageSize),
  onProgress: (p) => {
    if (p.phase === 'apply') process.stdout.write(`applied ${p.done}\n`);
  },
});
process.stdout.write('finished\n');
