// The idiomatic layer over the wasm classes. Logic stays in Rust (tether-engine); this file only
// adds what belongs to the JS world: loading the module once, Web Locks so that one tab at a
// time syncs a scope, AbortSignal plumbing, the background-sync timer, and change events
// (dispatch to listeners, other tabs over BroadcastChannel, watched and live queries: live.js).
// It imports no wasm itself: each entry point registers the build it uses (setGlue).
import { Events, watchQuery, LiveQuery } from './live.js';
import { ERROR_CODES, tetherError, isTetherError } from './errors.js';

let ready = null;
let defaultSource = null;
/** The wasm-bindgen glue module of the wasm build in use (its default export loads it). */
let glue = null;

/**
 * Sets the wasm build this module drives, as its wasm-bindgen glue module: the browser build
 * (`../pkg/tether_wasm.js`, from index.js and preloaded.js) or the Node build with the
 * node:sqlite store (`../pkg/tether_wasm_node.js`, from node.js). Called by each entry point
 * when it is first imported.
 */
export function setGlue(module) {
  glue = module;
}

/**
 * Loads the wasm module once. `source` is anything wasm-bindgen's loader takes: a URL, a
 * `Response`, bytes, or a compiled `WebAssembly.Module` (for strict-CSP pages and webviews).
 */
export function init(source) {
  if (!ready) {
    ready = Promise.resolve(source)
      .then((s) => (typeof s === 'string' || s instanceof URL ? fetchWasm(s) : s))
      .then((s) => glue.default(s === undefined ? undefined : { module_or_path: s }))
      .then(() => undefined);
    ready.catch(() => {
      ready = null; // let a later call retry
    });
  }
  return ready;
}

/** Sets where `init()` loads the module from when the caller did not (per entry point). */
export function setDefaultSource(loader) {
  defaultSource = loader;
}

function loaded() {
  if (ready) return ready;
  if (defaultSource) return init(defaultSource());
  return Promise.reject(
    tetherError('InvalidInput', 'call init(wasmModuleOrBytes) before using Tether from this entry point'),
  );
}

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d]; // "\0asm"

/**
 * Fetches the wasm at `url` for `init`, so that a wrong location is a coded, non-retryable
 * `InvalidInput` error naming the URL (what a bundler that does not copy the file, such as
 * esbuild, leads to) rather than a bare `TypeError` or `CompileError` from deep in the loader.
 * An unreachable server stays a retryable `Network` error.
 */
export async function fetchWasm(url) {
  const where = String(url);
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw tetherError('Network', `could not fetch the Tether wasm from ${where}: ${e?.message ?? e}`, 'Unreachable');
  }
  const missing = (what) =>
    tetherError(
      'InvalidInput',
      `the Tether wasm is not at ${where} (${what}): the bundler did not copy it. With esbuild, copy ` +
        'node_modules/tether-sync/pkg/tether_wasm_bg.wasm there, or call init(urlOfTheCopy) first; in ' +
        "Vite's dev server, set optimizeDeps: { exclude: ['tether-sync'] } (docs/browser.md, \"Bundlers\")",
      'WasmNotFound',
    );
  if (!res.ok) throw missing(`HTTP ${res.status}`);
  if ((res.headers.get('content-type') ?? '').split(';')[0].trim() === 'application/wasm') return res;
  // Not served as wasm: a dev server's HTML fallback looks like success. Check the bytes.
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (!WASM_MAGIC.every((b, i) => bytes[i] === b)) {
    throw missing(`got ${res.headers.get('content-type') || 'a response'} that is not WebAssembly`);
  }
  return bytes;
}

export { ERROR_CODES, tetherError, isTetherError };

// Between Replica and its scopes only.
const LISTEN = Symbol('tether.listen');
const SYNCED = Symbol('tether.synced');

/**
 * Longest delay `setTimeout` keeps: it stores the delay as a signed 32-bit integer, and fires at
 * once for anything above (or NaN), which would turn a huge `intervalMs` or a remote's huge
 * `Retry-After` into a tight loop.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** `ms` as a delay `setTimeout` honours: in `[0, MAX_TIMEOUT_MS]`, NaN as the longest. */
export function timerDelay(ms) {
  const n = Number(ms);
  if (Number.isNaN(n)) return MAX_TIMEOUT_MS;
  return Math.min(Math.max(0, n), MAX_TIMEOUT_MS);
}

/**
 * A Replica over `raw` (a WasmReplica just opened) with `options.indexes` declared and built;
 * the database is closed again when the declaration fails. `Class`: Replica or the Node
 * entry's subclass.
 */
export async function adopt(Class, raw, options = {}) {
  try {
    await raw.declareIndexes(options?.indexes ?? undefined);
  } catch (e) {
    raw.close();
    throw e;
  }
  return new Class(raw);
}

/** A local replica: one IndexedDB database (or an in-memory store) holding many scopes. */
export class Replica {
  #raw;
  #scopes = new Map();
  #events;

  /** @internal */
  constructor(raw) {
    this.#raw = raw;
    // Other tabs share an IndexedDB database, not a memory store or (here) a SQLite file.
    const channel = raw.kind === 'indexeddb' ? `tether:${raw.name}` : null;
    this.#events = new Events(raw, channel);
  }

  /**
   * Opens (creating if needed) the IndexedDB replica `name`; `indexes` declares its indexes
   * (built before this resolves; those no longer declared are dropped; left out, the indexes
   * declared earlier are kept).
   */
  static async open(name, options = {}) {
    await loaded();
    return adopt(Replica, await glue.WasmReplica.open(String(name)), options);
  }

  /** An in-memory replica (Node, VS Code extension hosts), optionally from a snapshot. */
  static async openInMemory({ name = 'memory', snapshot, indexes } = {}) {
    if (snapshot != null && typeof snapshot !== 'string') {
      throw tetherError('InvalidInput', `a snapshot is the string exportSnapshot() returned, got ${typeof snapshot}`);
    }
    await loaded();
    // `this`: the Node entry's subclass gets instances of itself.
    return adopt(this, glue.WasmReplica.openInMemory(String(name), snapshot ?? undefined), { indexes });
  }

  /**
   * Calls `listener(event)` after each committed change of any scope, from this replica object
   * (`origin: 'local'`) or, for IndexedDB, from another tab or replica object on the same
   * database (`origin: 'other-tab'`). Returns the function that unsubscribes.
   */
  subscribe(listener) {
    return this.#events.listen(null, requireFunction(listener, 'subscribe'));
  }

  // The change events of one scope (`refresh`: also the ends of its sync runs).
  [LISTEN](scope, listener, refresh = false) {
    return this.#events.listen(scope, listener, refresh);
  }

  // A sync run of `scope` ended: watched queries re-read (pending flags may have changed).
  [SYNCED](scope) {
    this.#events.synced(scope);
  }

  get name() {
    return this.#raw.name;
  }

  /** `"indexeddb"` or `"memory"`. */
  get kind() {
    return this.#raw.kind;
  }

  /** The scope `id` (the same object for the same id). */
  scope(id) {
    let s = this.#scopes.get(id);
    if (!s) {
      s = new Scope(this, this.#raw.scope(String(id)));
      this.#scopes.set(id, s);
    }
    return s;
  }

  /** Ids of the scopes with stored state. */
  scopes() {
    return this.#raw.scopes();
  }

  /** The in-memory replica as a JSON string, for the host to persist. */
  exportSnapshot() {
    return this.#raw.exportSnapshot();
  }

  /** Persistent-storage status and the quota estimate (browsers only). */
  async storage() {
    const sm = globalThis.navigator?.storage;
    if (!sm?.estimate) return { persisted: false, usage: null, quota: null };
    const [persisted, est] = await Promise.all([sm.persisted?.() ?? false, sm.estimate()]);
    return { persisted, usage: est.usage ?? null, quota: est.quota ?? null };
  }

  /** Stops every background sync, aborts syncs started here and closes the database. */
  async close() {
    await Promise.all([...this.#scopes.values()].map((s) => s.stop()));
    this.#events.close();
    this.#raw.close();
  }
}

/** One scope of a replica: local reads and edits, sync, status and history. */
export class Scope {
  #replica;
  #raw;
  #background = null;
  #running = new Set();
  #readyChecks = new Set();

  /** @internal */
  constructor(replica, raw) {
    this.#replica = replica;
    this.#raw = raw;
  }

  get id() {
    return this.#raw.id;
  }

  get replica() {
    return this.#replica;
  }

  // Records cross from the wasm as one JSON text each call, their data the text the store
  // holds, written in verbatim: parsed here, once (docs/browser.md, "What crosses into JS").
  get(collection, id) {
    return this.#raw.get(String(collection), String(id)).then(parseJson);
  }

  list(collection, options = {}) {
    return this.#raw.list(String(collection), options).then(parseJson);
  }

  /**
   * One page of the records of `collection` that `query` selects on a declared index:
   * `{records, cursor}`; pass `cursor` as `after` for the next page.
   */
  query(collection, query) {
    return this.#raw.query(String(collection), query).then(parseJson);
  }

  /**
   * Visible records of a collection, or of the whole scope; with a query, the records it
   * selects (its `limit` and `after` ignored).
   */
  count(collection, query) {
    if (query !== undefined) return this.#raw.queryCount(String(collection), query);
    return this.#raw.count(collection === undefined ? undefined : String(collection));
  }

  /**
   * Calls `listener(event)` after each committed change of this scope (local edits, syncs,
   * other tabs). Returns the function that unsubscribes.
   */
  subscribe(listener) {
    return this.#replica[LISTEN](this.id, requireFunction(listener, 'subscribe'));
  }

  /**
   * Calls `listener()` after each sync or verify run of this scope ends, whatever its outcome:
   * runs started from this page and (IndexedDB) from other tabs on the same database. A push
   * the cloud accepted changes the status (pending edits, last sync) without a change event,
   * so a view of `status()` re-reads on this too. Returns the function that unsubscribes.
   */
  onSyncEnd(listener) {
    requireFunction(listener, 'onSyncEnd');
    return this.#replica[LISTEN](this.id, (event) => event === null && listener(), true);
  }

  /**
   * Calls `callback(result)` with the query's first result, then again each time a change of
   * `collection` changes it. Returns the function that stops it.
   */
  watch(collection, query, callback, options = {}) {
    const listen = (fn) => this.#replica[LISTEN](this.id, fn, true);
    return watchQuery(this, listen, String(collection), query, requireFunction(callback, 'watch'), options);
  }

  /** The query as a value frameworks subscribe to (Svelte stores, React, async iteration). */
  live(collection, query, options = {}) {
    return new LiveQuery(this, String(collection), query, options);
  }

  put(collection, id, data) {
    return this.#raw.put(String(collection), String(id), data);
  }

  delete(collection, id) {
    return this.#raw.delete(String(collection), String(id));
  }

  // Left out, the age is the engine's default interval (schedule::DEFAULT_INTERVAL_MS).
  status(options = {}) {
    return this.#raw.status({ maxAgeMs: options.maxAgeMs ?? this.#background?.intervalMs });
  }

  history(options = {}) {
    return this.#raw.history(options);
  }

  stats(options = {}) {
    return this.#raw.stats(options);
  }

  conflicts() {
    return this.#raw.conflicts();
  }

  dismissConflict(id) {
    return this.#raw.dismissConflict(Number(id));
  }

  /**
   * Makes the replica partial (docs/partial-sync.md): it holds only the records `list` selects,
   * `[{collection, where?: {path: [values]}, priority?}]` (an empty list makes it whole again).
   * Waits for a sync of the scope to end (the scope's lock), evicts what no subscription
   * selects any more, and resolves to the number of records evicted; the next sync downloads
   * what is new. A bad subscription rejects with `InvalidInput`, and nothing changes.
   */
  setSubscriptions(list) {
    return this.#declaring(() => this.#raw.setSubscriptions(list));
  }

  /** Adds a subscription `{collection, where?, priority?}` (or changes its priority). */
  addSubscription(sub) {
    return this.#declaring(() => this.#raw.addSubscription(sub));
  }

  /** Removes a subscription, evicting what no other selects; resolves to the number evicted. */
  removeSubscription(sub) {
    return this.#declaring(() => this.#raw.removeSubscription(sub));
  }

  /** The held subscriptions, `[{collection, where, priority, complete}]`; empty: a whole scope. */
  subscriptions() {
    return this.#raw.subscriptions();
  }

  /**
   * Whether every subscription of `priority` (default 0) or higher has been downloaded to its
   * end; for a whole scope, whether it has been synced.
   */
  isReady(priority = 0) {
    return this.#raw.isReady(priority);
  }

  /**
   * Resolves when {@link isReady}(`priority`) is true: at once if it is, else when a sync (from
   * here, or another tab) reports the priority ready or ends with it ready. `signal` rejects it
   * with `Cancelled`; a bad priority rejects with `InvalidInput`.
   */
  async whenReady(priority = 0, options = {}) {
    const { signal } = options;
    if (signal?.aborted) throw tetherError('Cancelled', 'whenReady was cancelled');
    if (await this.#raw.isReady(priority)) return;
    await new Promise((resolve, reject) => {
      let settled = false;
      const settle = (f) => {
        if (settled) return;
        settled = true;
        this.#readyChecks.delete(check);
        stop();
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      const check = () => {
        this.#raw.isReady(priority).then(
          (ready) => ready && settle(resolve),
          (e) => settle(() => reject(e)),
        );
      };
      const onAbort = () => settle(() => reject(tetherError('Cancelled', 'whenReady was cancelled')));
      // Sync ends here and in other tabs; `ready` progress events of runs started here.
      const stop = this.#replica[LISTEN](this.id, (event) => event === null && check(), true);
      this.#readyChecks.add(check);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort(); // aborted during the first read
      else check(); // a run may have ended between the first read and listening
    });
  }

  // Declaring subscriptions waits for a sync of the scope to end, as natively: a run reads
  // them page by page. A new subscription may be complete at once (covered by a held one).
  #declaring(fn) {
    return this.#locked({}, false, fn).finally(() => this.#checkReady());
  }

  #checkReady() {
    for (const check of this.#readyChecks) check();
  }

  // The options of a run, its progress also telling waiting `whenReady` calls when a priority
  // is complete (before the run ends: lower priorities may take long).
  #withReady(options) {
    const onProgress = options.onProgress;
    return {
      ...options,
      onProgress: (p) => {
        if (p?.phase === 'ready') this.#checkReady();
        onProgress?.(p);
      },
    };
  }

  /**
   * Syncs once: pushes local edits, pulls pages, verifies the digest. Waits for the scope's
   * lock (another tab may be syncing it). Rejects with a Tether error; `signal` cancels.
   */
  sync(options = {}) {
    if (options.live) return this.#liveSession(options);
    return this.#syncOnce(options);
  }

  #syncOnce(options) {
    return this.#locked(options, false, (signal) =>
      this.#synced(this.#raw.sync({ ...this.#withReady(options), signal, remote: requireRemote(options) })),
    );
  }

  /**
   * A live session that survives its server: a session that fails with a retryable error
   * (the server went away, a proxy cut the long-poll) is reported to `onError` and started
   * again after a backoff (the engine's schedule: 5 s doubling, honouring `Retry-After`), each
   * attempt a run of its own, until `signal` aborts. Resolves with the report of the run the
   * abort ended; rejects with a non-retryable error (auth, bad input, integrity), or, when
   * aborted while waiting to reconnect, with a `Cancelled` error whose `cause` is the failure.
   */
  async #liveSession(options) {
    requireRemote(options);
    const { signal, onError } = options;
    for (let failures = 0; ; ) {
      try {
        return await this.#syncOnce(options);
      } catch (e) {
        if (signal?.aborted || !e?.retryable) throw e;
        failures += 1;
        try {
          onError?.(e);
        } catch (thrown) {
          console.error(thrown);
        }
        const ms = glue.nextSyncDelay(0, 0.1, failures, e.retryAfterMs, Math.random());
        const aborted = await new Promise((resolve) => {
          if (signal?.aborted) {
            resolve(true);
            return;
          }
          const timer = setTimeout(() => {
            signal?.removeEventListener('abort', onAbort);
            resolve(false);
          }, timerDelay(ms));
          const onAbort = () => {
            clearTimeout(timer);
            resolve(true);
          };
          signal?.addEventListener('abort', onAbort, { once: true });
        });
        if (aborted) {
          const stopped = tetherError('Cancelled', `live sync stopped while waiting to reconnect after: ${e.message}`);
          stopped.cause = e;
          throw stopped;
        }
      }
    }
  }

  /** Compares with the cloud's digest; `repair: true` fixes differing ranges in place. */
  verify(options = {}) {
    return this.#locked(options, false, (signal) =>
      this.#synced(this.#raw.verify({ ...options, signal, remote: requireRemote(options) })),
    );
  }

  /** What a sync would do now: pulls and plans, writes nothing. */
  preview(options = {}) {
    return this.#locked(options, false, (signal) =>
      this.#raw.preview({ ...options, signal, remote: requireRemote(options) }),
    );
  }

  /**
   * Syncs now (unless `runNow: false`) and then every `intervalMs` (with jitter), backing off
   * exponentially after network failures, stopping on `Auth` and `InvalidInput` errors: the
   * engine's decision (`Schedule::after`), the native driver's too. Rounds where another tab
   * holds the lock are skipped.
   */
  startBackgroundSync(options = {}) {
    requireRemote(options);
    this.#background?.stop();
    this.#background = new BackgroundSync(this, options, (opts, skipIfBusy) =>
      this.#locked(opts, skipIfBusy, (signal) => this.#synced(this.#raw.sync({ ...this.#withReady(opts), signal }))),
    );
    return this.#background;
  }

  /** Stops background sync and cancels syncs of this scope started from this object. */
  async stop() {
    const bg = this.#background;
    this.#background = null;
    const waits = [...this.#running].map((r) => {
      r.controller.abort();
      return r.done.catch(() => {});
    });
    if (bg) waits.push(bg.stop());
    await Promise.all(waits);
  }

  get lockName() {
    return `tether:${this.#replica.name}:${this.id}`;
  }

  // A push the cloud accepted clears pending flags without changing visible data, so without
  // a change event: tell watched queries when a run ends, whatever its outcome.
  #synced(run) {
    return run.finally(() => this.#replica[SYNCED](this.id));
  }

  // Runs `fn(signal)` holding the scope's lock. `skipIfBusy` resolves to null instead of
  // waiting when another holder has it.
  #locked(options, skipIfBusy, fn) {
    const controller = new AbortController();
    const outer = options.signal;
    const forward = () => controller.abort(outer.reason);
    if (outer) {
      if (outer.aborted) controller.abort(outer.reason);
      else outer.addEventListener('abort', forward, { once: true });
    }
    const shared = this.#replica.kind === 'indexeddb';
    const cross = shared ? globalThis.navigator?.locks : undefined;
    // Without Web Locks (an insecure http: page, an old browser) other tabs are kept out by a
    // lease in IndexedDB; the in-tab chain still orders this tab's own callers.
    const lease = shared && !cross?.request && globalThis.indexedDB;
    const name = this.lockName;
    const held = lease
      ? () => withLease(name, controller, skipIfBusy, () => fn(controller.signal))
      : () => fn(controller.signal);
    const done = withLock(cross, name, controller.signal, skipIfBusy, held)
      .finally(() => {
        outer?.removeEventListener('abort', forward);
        this.#running.delete(entry);
      });
    const entry = { controller, done };
    this.#running.add(entry);
    return done;
  }
}

/** A running background sync; `stop()` ends it. */
export class BackgroundSync {
  #scope;
  #options;
  #syncLocked;
  #timer = null;
  #controller = null;
  #current = null;
  #failures = 0;
  #stopped = false;
  #onOnline = null;

  /** @internal */
  constructor(scope, options, syncLocked) {
    this.#scope = scope;
    this.#options = options;
    this.#syncLocked = syncLocked;
    const defaults = glue.defaultSchedule();
    this.intervalMs = options.intervalMs ?? defaults.intervalMs;
    this.jitter = options.jitter ?? defaults.jitter;
    if (globalThis.addEventListener) {
      // Coming back online after failures: retry now rather than at the end of the backoff.
      this.#onOnline = () => {
        if (this.#failures > 0 && !this.#current) this.#schedule(0);
      };
      globalThis.addEventListener('online', this.#onOnline);
    }
    this.#schedule(options.runNow === false ? this.#next(undefined).waitMs : 0);
  }

  /** Whether it has not been stopped. */
  get running() {
    return !this.#stopped;
  }

  /** Consecutive retryable failures (0 after a success). */
  get failures() {
    return this.#failures;
  }

  /** Stops the timer and cancels a sync in flight. */
  async stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#onOnline) globalThis.removeEventListener('online', this.#onOnline);
    this.#controller?.abort();
    await this.#current?.catch(() => {});
  }

  // What the engine decides after a round (`error`: its failure, undefined after a success):
  // `{stop, waitMs, failures}`.
  #next(error) {
    const code = typeof error?.code === 'string' ? error.code : undefined;
    return glue.backgroundNext(this.intervalMs, this.jitter, this.#failures, code, error?.retryAfterMs, Math.random());
  }

  // Takes the decision in: the failure count, and stopping for good. Returns the delay.
  #decide(error) {
    const next = this.#next(error);
    this.#failures = next.failures;
    if (next.stop) {
      // An error every later round would repeat (refused credentials, a bad remote URL or
      // wasm location): stop rather than retry it forever; `running` turns false.
      this.#stopped = true;
      if (this.#onOnline) globalThis.removeEventListener('online', this.#onOnline);
    }
    return next.waitMs;
  }

  #schedule(ms) {
    clearTimeout(this.#timer);
    if (!this.#stopped) this.#timer = setTimeout(() => this.#tick(), timerDelay(ms));
  }

  async #tick() {
    if (this.#stopped || this.#current) return;
    this.#controller = new AbortController();
    const o = this.#options;
    let waitMs;
    this.#current = this.#syncLocked(
      { ...o, trigger: 'background', signal: this.#controller.signal },
      true,
    );
    try {
      const report = await this.#current;
      waitMs = this.#decide(undefined);
      if (report) o.onSync?.(report);
    } catch (e) {
      if (this.#stopped) return;
      waitMs = this.#decide(e);
      o.onError?.(e);
    } finally {
      this.#current = null;
    }
    this.#schedule(waitMs);
  }
}

function parseJson(text) {
  return JSON.parse(text);
}

function requireFunction(f, what) {
  if (typeof f !== 'function') throw tetherError('InvalidInput', `${what} needs a function, got ${typeof f}`);
  return f;
}

function requireRemote(options) {
  if (!options.remote) throw tetherError('InvalidInput', 'sync needs a remote: {url, token} or {pull}');
  return options.remote;
}

// In-process fallback (Node, or no Web Locks): one promise chain per lock name.
const localTails = new Map();

function withLock(locks, name, signal, skipIfBusy, fn) {
  if (locks?.request) {
    const opts = skipIfBusy ? { ifAvailable: true } : { signal };
    return locks
      .request(name, opts, (lock) => (lock === null ? null : fn()))
      .catch((e) => {
        throw e?.name === 'AbortError' ? tetherError('Cancelled', 'cancelled while waiting for the scope lock') : e;
      });
  }
  const tail = localTails.get(name);
  if (tail && skipIfBusy) return Promise.resolve(null);
  const run = (tail ?? Promise.resolve()).then(() => {
    if (signal.aborted) throw tetherError('Cancelled', 'cancelled while waiting for the scope lock');
    return fn();
  });
  const settled = run.then(() => {}, () => {});
  localTails.set(name, settled);
  settled.then(() => {
    if (localTails.get(name) === settled) localTails.delete(name);
  });
  return run;
}

// The cross-tab lock without Web Locks: a lease record per lock name in the `tether-leases`
// IndexedDB database. Taking it is one readwrite transaction (IndexedDB runs those one at a
// time across tabs), which takes the lease when it is free, expired or already this tab's. The
// holder renews it while it runs and deletes it at the end; a lease a closed or crashed tab left
// expires after LEASE_MS. Timers of background tabs may be throttled to once a minute, so the
// lease outlives a minute without renewal.
const LEASE_MS = 90_000;
const RENEW_MS = 10_000;
const LEASE_RETRY_MS = 200;
const leaseHolder = `${Date.now()}:${Math.random()}`;
let leaseDb = null;

async function withLease(name, controller, skipIfBusy, fn) {
  const signal = controller.signal;
  while (!(await leaseStep(name, 'take'))) {
    if (skipIfBusy) return null;
    await new Promise((resolve, reject) => {
      const cancelled = () => {
        clearTimeout(timer);
        reject(tetherError('Cancelled', 'cancelled while waiting for the scope lock'));
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', cancelled);
        resolve();
      }, LEASE_RETRY_MS);
      if (signal.aborted) cancelled();
      else signal.addEventListener('abort', cancelled, { once: true });
    });
  }
  // A renewal that finds the lease taken (this tab was frozen past LEASE_MS and another took
  // it over) cancels what runs under it, at its next page boundary: two tabs never go on
  // syncing one scope together.
  const renew = setInterval(() => {
    leaseStep(name, 'take')
      .then((ours) => {
        if (!ours) {
          controller.abort(
            tetherError('Cancelled', 'the scope lock was lost: another tab took it over'),
          );
        }
      })
      .catch(() => {});
  }, RENEW_MS);
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    await leaseStep(name, 'drop').catch(() => {});
  }
}

// One transaction on the lease of `name`: `take` returns whether this tab holds it now; `drop`
// deletes it if this tab holds it.
async function leaseStep(name, step) {
  leaseDb ??= new Promise((resolve, reject) => {
    const open = indexedDB.open('tether-leases', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('leases');
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const db = await leaseDb.catch((e) => {
    leaseDb = null;
    throw e;
  });
  return new Promise((resolve, reject) => {
    const tx = db.transaction('leases', 'readwrite');
    const leases = tx.objectStore('leases');
    let held = false;
    const read = leases.get(name);
    read.onsuccess = () => {
      const now = Date.now();
      const lease = read.result;
      const ours = lease?.holder === leaseHolder;
      if (step === 'drop') {
        if (ours) leases.delete(name);
      } else if (!lease || ours || lease.expires <= now) {
        leases.put({ holder: leaseHolder, expires: now + LEASE_MS }, name);
        held = true;
      }
    };
    tx.oncomplete = () => resolve(held);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
