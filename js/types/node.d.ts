// `tether-sync/node`: the same API; use `Replica.openInMemory` (Node has no IndexedDB).
export * from './index.js';
