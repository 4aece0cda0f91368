// Node ES module: `import` of the package (its `node` condition).
import { Replica, isTetherError } from 'tether-sync';
import * as channel from 'tether-sync/channel';
import { run } from './node-run.mjs';

await run({ Replica, isTetherError, channel });
