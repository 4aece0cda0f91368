// The documented use (Vite, webpack): import from 'tether-sync' and let it find its wasm.
import { Replica } from 'tether-sync';
import { install } from './app.js';

install({ Replica });
