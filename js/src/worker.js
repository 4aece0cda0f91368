// Entry `tether-sync/worker`: the replica lives in a Worker or SharedWorker (sync and IndexedDB
// off the page's thread) and pages connect to it with `connectReplica(worker)` or
// `connectReplica(sharedWorker.port)` from `tether-sync/channel`.
import { serveReplica } from './channel/serve.js';

/**
 * Serves the replica `replica` resolves to from inside a dedicated Worker (to its page) or a
 * SharedWorker (to each page that connects). Connections made before it resolves wait for it;
 * if it rejects, they reject with its error. Returns the handle whose `close()` stops serving.
 */
export function serveFromWorker(replica, options = {}) {
  const scope = globalThis;
  const ready = Promise.resolve(replica);
  ready.catch(() => {}); // reported to each connection
  if ('onconnect' in scope) {
    const handles = new Set();
    const onConnect = (event) => {
      const port = event.ports[0];
      const handle = serveReplica(port, ready, options);
      handles.add(handle);
    };
    scope.addEventListener('connect', onConnect);
    return {
      close() {
        scope.removeEventListener('connect', onConnect);
        for (const h of handles) h.close();
        handles.clear();
      },
      get connections() {
        let n = 0;
        for (const h of handles) n += h.connections;
        return n;
      },
      get active() {
        let n = 0;
        for (const h of handles) n += h.active;
        return n;
      },
    };
  }
  return serveReplica(scope, ready, options);
}
