// Change events in the JS world: dispatch of the wasm's events to listeners, other tabs over
// BroadcastChannel, watched queries (re-run on the events that touch them, coalesced) and live
// queries (a watched query as a value frameworks subscribe to).
//
// The wasm calls its change hook inside the operation that committed, so nothing here runs
// user code synchronously from it: events are posted to other tabs at once (the commit is
// durable) and dispatched to listeners on a microtask.

/** Messages on `tether:<database name>`: `{from, type: 'change', event}` or `{from, type: 'synced', scope}`. */
const CHANGE = 'change';
const SYNCED = 'synced';

// One posting channel per database name for the whole page: a Replica object without
// listeners holds no receiving channel, and one that has listeners skips its own messages.
const posters = new Map();
let nextId = 0;

function poster(name) {
  let c = posters.get(name);
  if (!c) {
    c = new BroadcastChannel(name);
    posters.set(name, c);
  }
  return c;
}

/**
 * The change events of one replica object: from its wasm hook, and from other tabs (other
 * replica objects) on the same IndexedDB database when `channel` names it.
 */
export class Events {
  #raw;
  #subscription = null;
  #closed = false;
  #channel;
  #receiver = null;
  #listeners = new Set();
  #id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${nextId++}`;

  constructor(raw, channel) {
    this.#raw = raw;
    this.#channel = channel && typeof BroadcastChannel === 'function' ? channel : null;
    this.#hook();
  }

  /**
   * Adds `listener` for the events of `scope` (`null`: every scope); a `refresh` listener is
   * also called with `null` when a sync run of the scope ends. Returns the unsubscribe.
   */
  listen(scope, listener, refresh = false) {
    const entry = { scope, listener, refresh };
    this.#listeners.add(entry);
    this.#receive();
    this.#hook();
    return () => {
      if (this.#listeners.delete(entry)) {
        this.#receive();
        this.#hook();
      }
    };
  }

  /** A sync run of `scope` ended here: refresh listeners, here and in other tabs. */
  synced(scope) {
    this.#post({ type: SYNCED, scope });
    queueMicrotask(() => this.#refresh(scope));
  }

  /** No events from now on. */
  close() {
    this.#closed = true;
    this.#listeners.clear();
    this.#hook();
    this.#receive();
  }

  // The wasm's hook is held while its events are wanted: by a listener here, or by other tabs
  // (a channel). Without either, a write builds no event object for nobody (each page of a
  // Node sync would otherwise convert its changes into one).
  #hook() {
    const wanted = !this.#closed && (this.#channel !== null || this.#listeners.size > 0);
    if (wanted && !this.#subscription) {
      this.#subscription = this.#raw.onChange((event) => this.#local(event));
    } else if (!wanted && this.#subscription) {
      this.#subscription.cancel();
      this.#subscription = null;
    }
  }

  #local(event) {
    this.#post({ type: CHANGE, event });
    event.origin = 'local';
    queueMicrotask(() => this.#dispatch(event));
  }

  #post(message) {
    if (this.#channel) poster(this.#channel).postMessage({ from: this.#id, ...message });
  }

  // Opens the receiving channel while there are listeners, closes it when there are none.
  #receive() {
    if (!this.#channel) return;
    if (this.#listeners.size > 0 && !this.#receiver) {
      this.#receiver = new BroadcastChannel(this.#channel);
      this.#receiver.onmessage = (m) => this.#message(m.data);
    } else if (this.#listeners.size === 0 && this.#receiver) {
      this.#receiver.close();
      this.#receiver = null;
    }
  }

  #message(m) {
    if (!m || typeof m !== 'object' || m.from === this.#id) return;
    if (m.type === CHANGE && m.event && typeof m.event.scope === 'string' && Array.isArray(m.event.changes)) {
      this.#dispatch({ ...m.event, origin: 'other-tab' });
    } else if (m.type === SYNCED && typeof m.scope === 'string') {
      this.#refresh(m.scope);
    }
  }

  #dispatch(event) {
    for (const l of [...this.#listeners]) {
      // Unsubscribed by an earlier listener of this event: no call after unsubscribe returned.
      if (!this.#listeners.has(l) || (l.scope !== null && l.scope !== event.scope)) continue;
      call(l.listener, event);
    }
  }

  #refresh(scope) {
    for (const l of [...this.#listeners]) {
      if (this.#listeners.has(l) && l.refresh && l.scope === scope) call(l.listener, null);
    }
  }
}

/**
 * Watches `query` on `collection` of `scope`: `callback(result)` with the first result, then
 * whenever an event that touches the collection (or the end of a sync run) leads to a result
 * that differs (ids, hashes, pending flags or cursor). `listen(fn)` subscribes to the scope's
 * events. Returns the function that stops it.
 */
export function watchQuery(scope, listen, collection, query, callback, { onError } = {}) {
  // A copy: the caller changing its object later does not change what is watched.
  const q = query !== null && typeof query === 'object' ? { ...query } : query;
  let stopped = false;
  let running = false;
  let again = false;
  let timer = null;
  let last;
  const report = (e) => (typeof onError === 'function' ? call(onError, e) : reportError(e));
  const run = async () => {
    running = true;
    try {
      do {
        again = false;
        let page;
        try {
          page = await scope.query(collection, q);
        } catch (e) {
          if (!stopped) report(e);
          continue;
        }
        if (stopped) return;
        const sig = signature(page);
        if (sig === last) continue;
        last = sig;
        call(callback, page);
      } while (again && !stopped);
    } finally {
      running = false;
    }
  };
  // A burst of events (a sync's pages, a loop of puts) makes one re-query; an event during a
  // re-query makes one more after it.
  const poke = () => {
    if (stopped) return;
    if (running) {
      again = true;
    } else if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        if (!stopped) run();
      }, 0);
    }
  };
  const off = listen((event) => {
    if (event === null || event.changes.some((c) => c.collection === collection)) poke();
  });
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    off();
  };
}

/**
 * A query's current result as a value to subscribe to: a Svelte store (`subscribe` calls the
 * observer at once with the current value), an external store for React's
 * `useSyncExternalStore(live.subscribe, live.getSnapshot)` (both are bound), and an async
 * iterable of each new result. It watches the query while someone subscribes.
 */
export class LiveQuery {
  #scope;
  #collection;
  #query;
  #onError;
  #value = undefined;
  #sig = undefined;
  #error = null;
  #observers = new Set();
  #stop = null;

  /** @internal */
  constructor(scope, collection, query, { onError } = {}) {
    this.#scope = scope;
    this.#collection = collection;
    this.#query = query !== null && typeof query === 'object' ? { ...query } : query;
    this.#onError = onError;
  }

  /** Calls `observer` with the current value now (`undefined` before the first result) and with each new one. */
  subscribe = (observer) => {
    if (typeof observer !== 'function') throw new TypeError('subscribe needs a function');
    return this.#add({ next: observer });
  };

  /** The current result (the same object until the result changes); `undefined` before the first. */
  getSnapshot = () => this.#value;

  /** The current result, as `getSnapshot()`. */
  get value() {
    return this.#value;
  }

  /** The error of the last evaluation, or `null` once one succeeds. */
  get error() {
    return this.#error;
  }

  /** Each new result (the current one first, if there is one); a slow reader gets the latest. */
  [Symbol.asyncIterator]() {
    let waiting = null;
    let latest;
    let has = false;
    let failure = null;
    let done = false;
    let off = () => {};
    const finish = () => {
      if (done) return;
      done = true;
      off();
      if (waiting) waiting.resolve({ value: undefined, done: true });
      waiting = null;
    };
    const entry = {
      next: (v) => {
        if (v === undefined || done) return;
        if (waiting) {
          const w = waiting;
          waiting = null;
          w.resolve({ value: v, done: false });
        } else {
          latest = v;
          has = true;
        }
      },
      fail: (e) => {
        if (done) return;
        if (waiting) {
          const w = waiting;
          waiting = null;
          finish();
          w.reject(e);
        } else {
          failure = e;
        }
      },
    };
    off = this.#add(entry);
    return {
      next() {
        if (has) {
          const value = latest;
          has = false;
          latest = undefined;
          return Promise.resolve({ value, done: false });
        }
        if (failure) {
          const e = failure;
          failure = null;
          finish();
          return Promise.reject(e);
        }
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          waiting = { resolve, reject };
        });
      },
      return() {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  #add(entry) {
    this.#observers.add(entry);
    if (!this.#stop) {
      this.#stop = this.#scope.watch(this.#collection, this.#query, (page) => this.#set(page), {
        onError: (e) => this.#fail(e),
      });
    }
    call(entry.next, this.#value);
    return () => {
      if (this.#observers.delete(entry) && this.#observers.size === 0) {
        this.#stop?.();
        this.#stop = null;
      }
    };
  }

  #set(page) {
    this.#error = null;
    // Restarted after everyone left: an unchanged result keeps its object (React compares).
    const sig = signature(page);
    if (sig === this.#sig) return;
    this.#sig = sig;
    this.#value = page;
    for (const o of [...this.#observers]) if (this.#observers.has(o)) call(o.next, page);
  }

  #fail(e) {
    this.#error = e;
    let told = false;
    for (const o of [...this.#observers]) {
      if (o.fail && this.#observers.has(o)) {
        o.fail(e);
        told = true;
      }
    }
    if (typeof this.#onError === 'function') call(this.#onError, e);
    else if (!told) reportError(e);
  }
}

/** What a watched result is compared on: ids, hashes, pending flags, cursor. */
function signature(page) {
  return JSON.stringify([page.cursor ?? null, page.records.map((r) => [r.id, r.hash, r.pending])]);
}

// A throwing listener must not stop the others, nor the watch that called it.
function call(f, arg) {
  try {
    f(arg);
  } catch (e) {
    reportError(e);
  }
}

function reportError(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else console.error(e);
}
