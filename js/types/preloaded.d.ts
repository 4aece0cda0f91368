// `tether-sync/preloaded`: the same API; call `init(moduleOrBytes)` before anything else.
export * from './index.js';
