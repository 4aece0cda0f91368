// Types of `tether-sync/worker`: the replica in a Worker or SharedWorker.
import type { ServableReplica, ServeOptions } from './channel.js';

/** Serving from a worker. */
export interface WorkerServer {
  /** Stops serving every page. */
  close(): void;
  /** Open connections (pages). */
  readonly connections: number;
  /** Watched queries, subscriptions and calls in flight that pages have here. */
  readonly active: number;
}

/**
 * Serves the replica `replica` resolves to, from inside a dedicated Worker (to its page) or a
 * SharedWorker (to every page that connects: several tabs share one replica). Pages connect
 * with `connectReplica(worker)` or `connectReplica(sharedWorker.port)` from
 * `tether-sync/channel`.
 *
 * ```ts
 * // replica-worker.js, started with new SharedWorker(url, { type: 'module' }):
 * import { Replica } from 'tether-sync';
 * import { serveFromWorker } from 'tether-sync/worker';
 * serveFromWorker(Replica.open('catalog', { indexes }), { remote: { url, token } });
 * ```
 */
export declare function serveFromWorker(
  replica: ServableReplica | Promise<ServableReplica>,
  options?: ServeOptions,
): WorkerServer;
