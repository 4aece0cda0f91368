// The worker mode of bench.html: a dedicated Worker that owns the replica and syncs it with its
// own remote (`tether-sync/worker`), the page only connected. `?name=` names the database,
// `?n=` the page file (`/pages/<n>.json`), `?from=` the checkpoint to start from (a delta).
// The pages are fetched and turned into their JSON text before serving starts, so the page's
// clock (started when it asks for the sync) sees only the sync. Import maps do not reach
// workers: the installed package is imported by path.
import { Replica } from '/node_modules/tether-sync/src/index.js';
import { serveFromWorker } from '/node_modules/tether-sync/src/worker.js';

const params = new URL(self.location.href).searchParams;

async function open() {
  const pages = await (await fetch(`/pages/${params.get('n')}.json`)).json();
  const byCheckpoint = new Map([[null, JSON.stringify(pages[0])]]);
  pages.forEach((p, i) => byCheckpoint.set(p.checkpoint, pages[i + 1] && JSON.stringify(pages[i + 1])));
  const remote = { pull: async ({ checkpoint }) => byCheckpoint.get(checkpoint) };
  return { replica: await Replica.open(params.get('name')), remote };
}

const ready = open();
serveFromWorker(
  ready.then((r) => r.replica),
  { remote: () => ready.then((r) => r.remote) },
);
