// The connecting end of a replica channel: the Replica / Scope API as requests to the owner
// (serve.js), watched queries and change events pushed by it. Pure JS, no WebAssembly.
import { MARK, VERSION, endpoint, ours, connectionId, tetherError, decodeError, reportError } from './wire.js';
import { LiveQuery } from '../live.js';

// Calls that run against the network for as long as they need, or wait for the owner's syncs
// (subscriptions are declared between runs, `whenReady` waits for one): the request timeout
// leaves them alone.
const LONG = new Set(['sync', 'verify', 'preview', 'whenReady', 'setSubscriptions', 'addSubscription', 'removeSubscription']);

/**
 * Connects to the replica an owner serves on `port` (`serveReplica`); resolves with the
 * connected replica once the owner answered.
 */
export async function connectReplica(port, options = {}) {
  const link = new Link(endpoint(port), options);
  let info;
  try {
    info = await link.request(null, 'hello', undefined, {});
  } catch (e) {
    // A late answer (after a timeout) would leave a connection open on the owner: say goodbye.
    link.shut(e, true);
    throw e;
  }
  return new ConnectedReplica(link, info);
}

/** The messages of one connection: requests with ids and what the owner pushes for them. */
class Link {
  #ep;
  #c = connectionId();
  #next = 1;
  #pending = new Map(); // id -> {resolve, reject, push, fail, done}
  #streams = new Map(); // id -> {push, fail}
  #timeoutMs;
  #off;
  #offClose;
  #offPage = () => {};
  #closed = null;

  constructor(ep, options) {
    this.#ep = ep;
    const t = options.timeoutMs;
    if (t !== undefined && !(Number.isFinite(t) && t > 0)) {
      throw tetherError('InvalidInput', `timeoutMs is a number of milliseconds above 0, got ${t}`);
    }
    this.#timeoutMs = t;
    this.#off = ep.listen((m) => this.#receive(m));
    this.#offClose = ep.onClose(() =>
      this.shut(tetherError('Storage', 'the replica channel closed: its port closed', 'Closed'), false),
    );
    // A page that goes away for good says goodbye, so the owner drops what it watched for it.
    const page = globalThis;
    if (typeof page.document === 'object' && typeof page.addEventListener === 'function') {
      const onHide = (e) => {
        if (!e.persisted) this.shut(tetherError('Storage', 'the page was closed', 'Closed'), true);
      };
      page.addEventListener('pagehide', onHide);
      this.#offPage = () => page.removeEventListener('pagehide', onHide);
    }
  }

  get closed() {
    return this.#closed !== null;
  }

  /** Sends a request; resolves with the owner's answer. `push`/`fail`: what it pushes meanwhile. */
  request(scope, method, args, { signal, push, fail }) {
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(cancelled(signal));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      let timer = null;
      const onAbort = () => this.#send({ t: 'abort', id });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      this.#pending.set(id, { resolve, reject, push, fail, done });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.#timeoutMs !== undefined && !LONG.has(method)) {
        timer = setTimeout(() => {
          this.#send({ t: 'abort', id });
          done();
          reject(tetherError('Network', `the replica's owner did not answer ${method} within ${this.#timeoutMs} ms`, 'Timeout'));
        }, this.#timeoutMs);
      }
      if (method === 'hello') this.#send({ t: 'hello', id });
      else this.#send({ t: 'call', id, scope, method, args: args ?? [] });
    });
  }

  /** Starts a watch or subscription; `push(value)` / `fail(error)` per message. Returns the stop. */
  stream(fields, push, fail) {
    if (this.#closed) throw this.#closed;
    const id = this.#next++;
    this.#streams.set(id, { push, fail });
    this.#send({ ...fields, id });
    return () => {
      if (this.#streams.delete(id)) this.#send({ t: 'stop', id });
    };
  }

  /** Ends the connection: pending requests reject with `error`; `bye` tells the owner. */
  shut(error, bye) {
    if (this.#closed) return;
    if (bye) this.#send({ t: 'bye' });
    this.#closed = error;
    this.#off();
    this.#offClose();
    this.#offPage();
    this.#streams.clear();
    for (const p of [...this.#pending.values()]) {
      p.done();
      p.reject(error);
    }
  }

  #send(fields) {
    if (this.#closed) return;
    try {
      this.#ep.send({ tether: MARK, v: VERSION, c: this.#c, ...fields });
    } catch (e) {
      this.shut(tetherError('Storage', `the replica channel cannot send: ${e?.message ?? e}`, 'Closed'), false);
    }
  }

  #receive(m) {
    if (!ours(m) || m.v !== VERSION || m.c !== this.#c) return;
    if (m.t === 'result') {
      const p = this.#pending.get(m.id);
      if (!p) return;
      p.done();
      if (m.error !== undefined) p.reject(decodeError(m.error));
      else p.resolve(m.value);
    } else if (m.t === 'push') {
      const s = this.#streams.get(m.id) ?? this.#pending.get(m.id);
      if (!s) return;
      if (m.error !== undefined) s.fail?.(decodeError(m.error));
      else s.push?.(m.value);
    } else if (m.t === 'closed') {
      this.shut(tetherError('Storage', "the replica's owner stopped serving this connection", 'Closed'), false);
    }
  }
}

function cancelled(signal) {
  const r = signal.reason;
  return isCancelled(r) ? r : tetherError('Cancelled', 'cancelled before it was sent to the replica');
}

function isCancelled(e) {
  return e instanceof Error && e.code === 'Cancelled';
}

function unsupported(what) {
  return tetherError('InvalidInput', `${what} is not available through a replica channel: call it on the owner's replica`);
}

// A user callback: a throw is reported, never breaks the channel.
function call(f, arg) {
  try {
    f(arg);
  } catch (e) {
    reportError(e);
  }
}

function requireFunction(f, what) {
  if (typeof f !== 'function') throw tetherError('InvalidInput', `${what} needs a function, got ${typeof f}`);
  return f;
}

/** The replica an owner serves, used through the channel: the Replica API. */
export class ConnectedReplica {
  #link;
  #info;
  #scopes = new Map();

  /** @internal */
  constructor(link, info) {
    this.#link = link;
    this.#info = info;
  }

  get name() {
    return this.#info.name;
  }

  get kind() {
    return this.#info.kind;
  }

  /** Whether the owner refuses writes and syncs from this connection. */
  get readOnly() {
    return this.#info.readOnly;
  }

  /** Whether the owner syncs with a remote of its own (sync without a `remote`). */
  get ownRemote() {
    return this.#info.remote;
  }

  /** Whether the connection is closed (by `close()`, the port, or the owner). */
  get closed() {
    return this.#link.closed;
  }

  /** The scope `id` (the same object for the same id). */
  scope(id) {
    const key = String(id);
    let s = this.#scopes.get(key);
    if (!s) {
      s = new ConnectedScope(this, this.#link, key);
      this.#scopes.set(key, s);
    }
    return s;
  }

  /** Ids of the scopes with stored state that this connection may use. */
  scopes() {
    return this.#link.request(null, 'scopes', [], {});
  }

  /** The owner's persistent-storage status and quota estimate. */
  storage() {
    return this.#link.request(null, 'storage', [], {});
  }

  /** Calls `listener(event)` after each committed change of any scope on the owner. */
  subscribe(listener) {
    const f = requireFunction(listener, 'subscribe');
    return this.#link.stream({ t: 'subscribe', scope: null }, (e) => call(f, e), reportError);
  }

  exportSnapshot() {
    throw unsupported('exportSnapshot');
  }

  /** Ends the connection: the owner drops its watches and subscriptions, and cancels its calls. */
  async close() {
    this.#link.shut(tetherError('Storage', 'this connection to the replica was closed', 'Closed'), true);
  }
}

/** One scope of a connected replica: the Scope API. */
export class ConnectedScope {
  #replica;
  #link;
  #id;

  /** @internal */
  constructor(replica, link, id) {
    this.#replica = replica;
    this.#link = link;
    this.#id = id;
  }

  get id() {
    return this.#id;
  }

  get replica() {
    return this.#replica;
  }

  get lockName() {
    return `tether:${this.#replica.name}:${this.#id}`;
  }

  #call(method, args, options = {}) {
    // Trailing undefined arguments are left out: JSON would turn them into nulls.
    let n = args.length;
    while (n > 0 && args[n - 1] === undefined) n -= 1;
    return this.#link.request(this.#id, method, args.slice(0, n), options);
  }

  get(collection, id) {
    return this.#call('get', [String(collection), String(id)]);
  }

  list(collection, options) {
    return this.#call('list', [String(collection), options]);
  }

  /** One page of a query; `options.signal` cancels waiting for it. */
  query(collection, query, options = {}) {
    return this.#read('query', [String(collection), query], options.signal);
  }

  count(collection, query) {
    return this.#call('count', [collection === undefined ? undefined : String(collection), query]);
  }

  // A read the owner cannot stop midway: an abort rejects here at once, the answer is dropped.
  #read(method, args, signal) {
    const answer = this.#call(method, args, { signal });
    if (!signal) return answer;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(cancelled(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      answer.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  subscribe(listener) {
    const f = requireFunction(listener, 'subscribe');
    return this.#link.stream({ t: 'subscribe', scope: this.#id }, (e) => call(f, e), reportError);
  }

  /** Calls `listener()` each time a sync or verify run of this scope ends on the owner. */
  onSyncEnd(listener) {
    const f = requireFunction(listener, 'onSyncEnd');
    return this.#link.stream({ t: 'syncEnd', scope: this.#id }, () => call(f), reportError);
  }

  /** A query watched on the owner, which pushes each new result. Returns the stop. */
  watch(collection, query, callback, options = {}) {
    const f = requireFunction(callback, 'watch');
    const onError = options.onError;
    const fail = (e) => (typeof onError === 'function' ? call(onError, e) : reportError(e));
    let stopped = false;
    const stop = this.#link.stream(
      { t: 'watch', scope: this.#id, collection: String(collection), query },
      (page) => {
        if (!stopped) call(f, page);
      },
      (e) => {
        if (!stopped) fail(e);
      },
    );
    return () => {
      stopped = true;
      stop();
    };
  }

  live(collection, query, options = {}) {
    return new LiveQuery(this, String(collection), query, options);
  }

  put(collection, id, data) {
    return this.#call('put', [String(collection), String(id), data]).then(() => undefined);
  }

  delete(collection, id) {
    return this.#call('delete', [String(collection), String(id)]).then(() => undefined);
  }

  status(options) {
    return this.#call('status', [options]);
  }

  history(options) {
    return this.#call('history', [options]);
  }

  stats(options) {
    return this.#call('stats', [options]);
  }

  conflicts() {
    return this.#call('conflicts', []);
  }

  dismissConflict(id) {
    return this.#call('dismissConflict', [Number(id)]).then(() => undefined);
  }

  /** Replaces the owner's subscriptions of this scope (a write: refused when read-only). */
  setSubscriptions(list) {
    return this.#call('setSubscriptions', [list]);
  }

  addSubscription(sub) {
    return this.#call('addSubscription', [sub]).then(() => undefined);
  }

  removeSubscription(sub) {
    return this.#call('removeSubscription', [sub]);
  }

  subscriptions() {
    return this.#call('subscriptions', []);
  }

  isReady(priority) {
    return this.#call('isReady', [priority]);
  }

  /** Resolves when the owner's replica is ready at `priority`; `signal` stops the wait there. */
  whenReady(priority, options = {}) {
    return this.#call('whenReady', [priority], { signal: options.signal }).then(() => undefined);
  }

  /**
   * A sync run on the owner: `remote` is an HTTP remote given as plain data, or left out when
   * the owner syncs with its own; `onProgress` and (live sync) `onError` get what it pushes;
   * `signal` cancels it on the owner.
   */
  sync(options = {}) {
    return this.#remoteRun('sync', options);
  }

  verify(options = {}) {
    return this.#remoteRun('verify', options);
  }

  preview(options = {}) {
    return this.#remoteRun('preview', options);
  }

  #remoteRun(method, options) {
    const { signal, onProgress, onError, remote, ...rest } = options ?? {};
    if (remote != null && Object.values(remote).some((v) => typeof v === 'function')) {
      return Promise.reject(
        tetherError(
          'InvalidInput',
          'functions do not cross a replica channel: pass an HTTP remote {url, token: string}, or ' +
            'let the owner sync with its own (serveReplica(port, replica, {remote}))',
        ),
      );
    }
    const args = { ...rest, progress: typeof onProgress === 'function', errors: typeof onError === 'function' };
    if (remote != null) args.remote = remote;
    return this.#link.request(this.#id, method, [args], {
      signal,
      push: (p) => call(onProgress, p),
      fail: (e) => call(onError, e),
    });
  }

  startBackgroundSync() {
    throw unsupported('startBackgroundSync');
  }

  /** Nothing runs here: syncs of this connection stop with their signal or `close()`. */
  async stop() {}
}
