// Node CommonJS: `require` of the package (its `require` condition, src/node.cjs).
const { Replica, isTetherError } = require('tether-sync');

import('./node-run.mjs').then(({ run }) => run({ Replica, isTetherError }));
