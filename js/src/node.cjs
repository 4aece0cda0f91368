'use strict';
// CommonJS entry: `require('tether-sync')` in Node. The package is ES modules, which Node 20
// cannot `require` synchronously, so this file loads them (./node.js) on the first call.
// Everything that starts Tether (`init`, `Replica.open*`) returns a promise already, so the API
// is the same; `instanceof` checks against these classes see the ES module's objects.
let esm = null;
const load = () => (esm ??= import('./node.js'));

const ERROR_CODES = Object.freeze(['Network', 'Auth', 'Protocol', 'Integrity', 'Storage', 'Cancelled', 'InvalidInput']);

function isTetherError(e) {
  return e instanceof Error && typeof e.code === 'string' && ERROR_CODES.includes(e.code);
}

async function init(source) {
  return (await load()).init(source);
}

// A stand-in class per exported class: static calls are forwarded, `instanceof` is answered by
// the real class once loaded.
function forward(name, statics) {
  let loaded = null;
  load().then((m) => (loaded = m[name]), () => {});
  const cls = {
    [name]: class {
      static [Symbol.hasInstance](x) {
        return loaded !== null && x instanceof loaded;
      }
    },
  }[name];
  for (const s of statics) {
    cls[s] = async (...args) => (await load())[name][s](...args);
  }
  return cls;
}

module.exports = {
  init,
  isTetherError,
  ERROR_CODES,
  Replica: forward('Replica', ['open', 'openInMemory']),
  Scope: forward('Scope', []),
  BackgroundSync: forward('BackgroundSync', []),
};
