// The owner's end of a replica channel: answers the requests of the connections on a port with
// its own Replica, runs their watched queries and subscriptions here and posts the results, and
// removes everything a connection had when it says goodbye, its port closes or serving stops.
import { MARK, VERSION, endpoint, ours, tetherError, encodeError } from './wire.js';

// What a connection may call on a scope, by what the call does: reads are always allowed;
// writes and remote runs are refused on a read-only connection.
const METHODS = {
  get: 'read',
  list: 'read',
  query: 'read',
  count: 'read',
  status: 'read',
  history: 'read',
  stats: 'read',
  conflicts: 'read',
  subscriptions: 'read',
  isReady: 'read',
  whenReady: 'read',
  put: 'write',
  delete: 'write',
  dismissConflict: 'write',
  setSubscriptions: 'write',
  addSubscription: 'write',
  removeSubscription: 'write',
  sync: 'remote',
  verify: 'remote',
  preview: 'remote',
};

// The fields of an HTTP remote that a connection may pass (all plain data).
const REMOTE_FIELDS = ['url', 'token', 'retries', 'timeoutMs'];

/**
 * Serves `replica` (a Replica, or a promise of one) to the connections on `port`. Returns the
 * handle whose `close()` (also `dispose()`) stops serving and ends every connection.
 */
export function serveReplica(port, replica, options = {}) {
  const ep = endpoint(port);
  const readOnly = Boolean(options.readOnly);
  const scopes = scopeList(options.scopes);
  const single = Boolean(options.single);
  const ownRemote = options.remote;
  const sessions = new Map(); // connection id -> {calls: Map<id, AbortController>, streams: Map<id, stop>}
  let current = null;
  let failure = null;
  let closed = false;
  const ready = Promise.resolve(replica).then(
    (r) => {
      current = r;
    },
    (e) => {
      failure = e;
    },
  );

  const post = (c, fields) => {
    if (closed && fields.t !== 'closed') return;
    try {
      ep.send({ tether: MARK, v: VERSION, c, ...fields });
    } catch {
      // The port is gone: its close (or the next hello) ends the connection.
    }
  };
  const answer = (c, id, value) => post(c, { t: 'result', id, value: value === undefined ? null : value });
  const refuse = (c, id, e) => post(c, { t: 'result', id, error: encodeError(e) });
  const allowed = (id) => scopes === null || scopes.includes(id);

  const end = (c, tell) => {
    const s = sessions.get(c);
    if (!s) return;
    sessions.delete(c);
    for (const controller of s.calls.values()) {
      controller.abort(tetherError('Cancelled', 'the connection that started it closed'));
    }
    for (const stop of s.streams.values()) stop();
    s.calls.clear();
    s.streams.clear();
    if (tell) post(c, { t: 'closed' });
  };

  const hello = async (c, m) => {
    if (single) for (const other of [...sessions.keys()]) if (other !== c) end(other, true);
    sessions.set(c, sessions.get(c) ?? { calls: new Map(), streams: new Map() });
    await ready;
    if (failure) {
      end(c, false);
      refuse(c, m.id, failure);
      return;
    }
    answer(c, m.id, {
      name: current.name,
      kind: current.kind,
      readOnly,
      scopes,
      remote: ownRemote !== undefined,
    });
  };

  const remoteFor = async (scope, given) => {
    if (ownRemote !== undefined) {
      if (given != null) {
        throw tetherError('InvalidInput', 'this replica syncs with the remote its owner served it with: leave `remote` out');
      }
      return typeof ownRemote === 'function' ? ownRemote(scope) : ownRemote;
    }
    if (given === null || typeof given !== 'object' || typeof given.url !== 'string') {
      throw tetherError(
        'InvalidInput',
        'a sync through a replica channel needs an HTTP remote {url, token} (functions do not cross ' +
          'postMessage), or an owner that serves the replica with serveReplica(port, replica, {remote})',
      );
    }
    if (given.token !== undefined && typeof given.token !== 'string') {
      throw tetherError('InvalidInput', 'the token of a remote passed through a replica channel must be a string');
    }
    const remote = {};
    for (const k of REMOTE_FIELDS) if (given[k] !== undefined) remote[k] = given[k];
    return remote;
  };

  const invoke = async (c, m, signal) => {
    const args = (Array.isArray(m.args) ? m.args : []).map((a) => (a === null ? undefined : a));
    if (m.scope === null || m.scope === undefined) {
      if (m.method === 'scopes') return (await current.scopes()).filter(allowed);
      if (m.method === 'storage') {
        return current.storage ? current.storage() : { persisted: false, usage: null, quota: null };
      }
      throw tetherError('InvalidInput', `a replica channel has no replica method ${String(m.method)}`);
    }
    const id = String(m.scope);
    const kind = Object.hasOwn(METHODS, m.method) ? METHODS[m.method] : undefined;
    if (!kind) throw tetherError('InvalidInput', `a replica channel has no scope method ${String(m.method)}`);
    if (!allowed(id)) throw scopeRefused(id);
    if (kind !== 'read' && readOnly) {
      throw tetherError('InvalidInput', `${m.method} refused: this connection to the replica is read-only`, 'ReadOnly');
    }
    const scope = current.scope(id);
    // Waits as long as the owner's syncs take: the connection's abort (or its end) stops it.
    if (m.method === 'whenReady') return scope.whenReady(args[0], { signal });
    if (kind !== 'remote') return scope[m.method](...args);
    const { remote, progress, errors, ...rest } = args[0] ?? {};
    return scope[m.method]({
      ...rest,
      remote: await remoteFor(id, remote),
      signal,
      onProgress: progress ? (p) => post(c, { t: 'push', id: m.id, value: p }) : undefined,
      onError: errors ? (e) => post(c, { t: 'push', id: m.id, error: encodeError(e) }) : undefined,
    });
  };

  const call = async (c, s, m) => {
    const controller = new AbortController();
    s.calls.set(m.id, controller);
    try {
      const value = await invoke(c, m, controller.signal);
      if (sessions.get(c) === s) answer(c, m.id, value);
    } catch (e) {
      if (sessions.get(c) === s) refuse(c, m.id, e);
    } finally {
      s.calls.delete(m.id);
    }
  };

  // A watched query, a subscription or the ends of sync runs: pushed under the request id.
  const stream = (c, s, m) => {
    const push = (value) => post(c, { t: 'push', id: m.id, value });
    const fail = (e) => post(c, { t: 'push', id: m.id, error: encodeError(e) });
    try {
      let stop;
      if (m.t === 'watch') {
        const id = String(m.scope);
        if (!allowed(id)) throw scopeRefused(id);
        stop = current.scope(id).watch(String(m.collection), m.query, push, { onError: fail });
      } else if (m.t === 'syncEnd') {
        const id = String(m.scope);
        if (!allowed(id)) throw scopeRefused(id);
        stop = current.scope(id).onSyncEnd(() => push(null));
      } else if (m.scope === null || m.scope === undefined) {
        stop = current.subscribe((event) => {
          if (allowed(event.scope)) push(event);
        });
      } else {
        const id = String(m.scope);
        if (!allowed(id)) throw scopeRefused(id);
        stop = current.scope(id).subscribe(push);
      }
      s.streams.get(m.id)?.();
      s.streams.set(m.id, stop);
    } catch (e) {
      fail(e);
    }
  };

  const onMessage = (m) => {
    if (closed || !ours(m)) return;
    const c = String(m.c);
    if (m.v !== VERSION) {
      if (m.id !== undefined) {
        refuse(c, m.id, tetherError('Protocol', `replica channel version ${m.v} is not spoken here (this owner speaks ${VERSION})`, 'NotSupported'));
      }
      return;
    }
    if (m.t === 'hello') {
      hello(c, m);
      return;
    }
    const s = sessions.get(c);
    if (m.t === 'bye') {
      end(c, false);
    } else if (!s || !current) {
      if (m.t === 'call' || m.t === 'watch' || m.t === 'subscribe' || m.t === 'syncEnd') {
        refuse(c, m.id, tetherError('Storage', 'this connection to the replica was closed', 'Closed'));
      }
    } else if (m.t === 'call') {
      call(c, s, m);
    } else if (m.t === 'abort') {
      s.calls.get(m.id)?.abort(tetherError('Cancelled', 'cancelled by the connection'));
    } else if (m.t === 'watch' || m.t === 'subscribe' || m.t === 'syncEnd') {
      stream(c, s, m);
    } else if (m.t === 'stop') {
      s.streams.get(m.id)?.();
      s.streams.delete(m.id);
    }
  };

  const close = () => {
    if (closed) return;
    for (const c of [...sessions.keys()]) end(c, true);
    closed = true;
    offMessage();
    offClose();
  };

  const offMessage = ep.listen(onMessage);
  const offClose = ep.onClose(close);
  return {
    close,
    dispose: close,
    get connections() {
      return sessions.size;
    },
    get active() {
      let n = 0;
      for (const s of sessions.values()) n += s.calls.size + s.streams.size;
      return n;
    },
  };
}

function scopeList(scopes) {
  if (scopes === undefined || scopes === null) return null;
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string')) {
    throw tetherError('InvalidInput', 'serveReplica: `scopes` is a list of scope ids');
  }
  return [...scopes];
}

function scopeRefused(id) {
  return tetherError('InvalidInput', `scope ${id} is not among the scopes this connection may use`, 'ScopeNotAllowed');
}
