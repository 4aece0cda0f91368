// What both ends of a replica channel share: the message envelope, the adapter over the kinds
// of port, and errors as plain data. Pure JS: the connecting side loads no WebAssembly.
//
// Every message is a plain JSON-safe object `{tether: MARK, v: VERSION, c, t, ...}`: `c` names
// the connection (one port may carry several, and other messages of the app), `t` the kind. A VS
// Code webview's postMessage serializes as JSON, so nothing here relies on structured clone.

import { tetherError, isTetherError } from '../errors.js';

/** Marks the channel's messages among whatever else the port carries. */
export const MARK = 'tether-replica';

/** The protocol version; a message of another version is ignored (a request is refused). */
export const VERSION = 1;

export { tetherError, isTetherError };

// The fields of a Tether error that cross the channel (besides name and message).
const FIELDS = ['code', 'detail', 'retryable', 'status', 'retryAfterMs', 'expected', 'actual'];

/** `e` as plain data for a message (its `cause` one level deep). */
export function encodeError(e, deep = true) {
  if (!(e instanceof Error) && (e === null || typeof e !== 'object')) {
    return { name: 'Error', message: String(e) };
  }
  const out = { name: String(e.name ?? 'Error'), message: String(e.message ?? '') };
  for (const k of FIELDS) if (e[k] !== undefined) out[k] = e[k];
  if (deep && e.cause !== undefined) out.cause = encodeError(e.cause, false);
  return out;
}

/** The error that `encodeError` made plain data of, as an `Error` again. */
export function decodeError(data) {
  const d = data && typeof data === 'object' ? data : { message: String(data) };
  const e = new Error(String(d.message ?? 'unknown error from the replica channel'));
  e.name = typeof d.name === 'string' ? d.name : 'Error';
  for (const k of FIELDS) if (d[k] !== undefined) e[k] = d[k];
  if (d.cause !== undefined) e.cause = decodeError(d.cause);
  return e;
}

/**
 * The one shape the channel drives over every kind of port: `send(message)`, `listen(fn)`
 * (`fn(data)`; returns the function that stops it) and `onClose(fn)` (where the port tells;
 * returns the stop). Ports, in the order they are recognised:
 * - a VS Code `Webview` (`postMessage` and `onDidReceiveMessage`, which gives the data);
 * - Node's `worker_threads` ports and workers (`on`/`off`: the listener gets the data; `close`);
 * - DOM ports: `MessagePort`, `Worker`, a worker's `self`, a `SharedWorker`'s port, `window`
 *   with `acquireVsCodeApi()` (`addEventListener`: the listener gets a `MessageEvent`).
 */
export function endpoint(port) {
  if (port === null || typeof port !== 'object' || typeof port.postMessage !== 'function') {
    throw tetherError('InvalidInput', 'a replica channel needs a port with postMessage (a MessagePort, Worker, SharedWorker port or VS Code webview)');
  }
  const send = (message) => {
    // A webview's postMessage returns a promise that rejects once it is disposed.
    const sent = port.postMessage(message);
    if (sent && typeof sent.catch === 'function') sent.catch(() => {});
  };
  if (typeof port.onDidReceiveMessage === 'function') {
    return {
      send,
      listen(fn) {
        const d = port.onDidReceiveMessage(fn);
        return () => d?.dispose?.();
      },
      onClose: () => () => {},
    };
  }
  if (typeof port.on === 'function' && typeof port.off === 'function') {
    return {
      send,
      listen(fn) {
        port.on('message', fn);
        return () => port.off('message', fn);
      },
      onClose(fn) {
        port.on('close', fn);
        return () => port.off('close', fn);
      },
    };
  }
  if (typeof port.addEventListener === 'function') {
    return {
      send,
      listen(fn) {
        const onMessage = (event) => fn(event.data);
        port.addEventListener('message', onMessage);
        // A MessagePort delivers nothing to addEventListener listeners before start().
        port.start?.();
        return () => port.removeEventListener('message', onMessage);
      },
      onClose(fn) {
        // MessagePort's `close` event, where the browser has it.
        port.addEventListener('close', fn);
        return () => port.removeEventListener('close', fn);
      },
    };
  }
  throw tetherError('InvalidInput', 'a replica channel needs a port with a message event (addEventListener, on, or onDidReceiveMessage)');
}

/** Whether `m` is a message of the channel (any version). */
export function ours(m) {
  return m !== null && typeof m === 'object' && m.tether === MARK;
}

/** A fresh id for one connection. */
export function connectionId() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Reports a throw of user code (a listener) without stopping the caller. */
export function reportError(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else console.error(e);
}
