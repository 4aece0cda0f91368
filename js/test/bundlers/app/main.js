// The documented use, unmodified: import from 'tether-sync' and let it find its wasm.
import { Replica, isTetherError } from 'tether-sync';
import { install } from './app.js';

install({ Replica, isTetherError });
