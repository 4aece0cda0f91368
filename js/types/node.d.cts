// Types of `require('tether-sync')` (src/node.cjs): the Node types, for CommonJS code under
// `moduleResolution: node16`, where a CommonJS file may not import an ES module's types directly.
export type * from './node.js' with { 'resolution-mode': 'import' };
import type * as Tether from './node.js' with { 'resolution-mode': 'import' };
export declare const init: typeof Tether.init;
export declare const isTetherError: typeof Tether.isTetherError;
export declare const ERROR_CODES: typeof Tether.ERROR_CODES;
// Each class is a value and a type, as in the ES module's types.
export declare const Replica: typeof Tether.Replica;
export type Replica = Tether.Replica;
export declare const Scope: typeof Tether.Scope;
export type Scope = Tether.Scope;
export declare const BackgroundSync: typeof Tether.BackgroundSync;
export type BackgroundSync = Tether.BackgroundSync;
