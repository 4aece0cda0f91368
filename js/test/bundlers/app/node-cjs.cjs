// Node CommonJS: `require` of the package (its `require` condition, src/node.cjs).
// tether-sync/channel is an ES module without top-level await: `require` loads it on Node
// 20.19 and later (require(esm)).
const { Replica, isTetherError } = require('tether-sync');
const channel = require('tether-sync/channel');

import('./node-run.mjs').then(({ run }) => run({ Replica, isTetherError, channel }));
