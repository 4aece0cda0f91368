// The Node replica of tests/sources.rs: syncs one scope into a node:sqlite replica file with
// the package's Node entry and verifies it, printing {"count", "matched"} as JSON.
// Usage: node node-sync.mjs FILE URL TOKEN SCOPE
import { Replica } from '../../js/src/node.js';

const [file, url, token, scopeId] = process.argv.slice(2);
const replica = await Replica.open(file);
const scope = replica.scope(scopeId);
const remote = { url, token };
const report = await scope.sync({ remote });
const verified = await scope.verify({ remote });
await replica.close();
process.stdout.write(JSON.stringify({ count: report.snapshot.count, matched: verified.matched }));
