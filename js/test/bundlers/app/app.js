// What every bundled page does with the package: `window.app` is driven by bundlers.test.mjs.
import { serveReplica, connectReplica } from 'tether-sync/channel';

export function install({ Replica, isTetherError }) {
  const scope = async (name) => (await Replica.open(name)).scope('org-1');
  window.app = {
    async sync(name, token) {
      const events = [];
      try {
        const s = await scope(name);
        const report = await s.sync({
          remote: { url: location.origin, token },
          pageSize: 200,
          onProgress: (p) => events.push(p),
        });
        return { ok: true, kind: report.run.kind, inserted: report.run.inserted, updated: report.run.updated,
          count: await s.count(), digest: report.snapshot.digest, last: events.at(-1) ?? null };
      } catch (e) {
        return { ok: false, tether: isTetherError(e), name: e?.name, code: e?.code, detail: e?.detail, message: String(e?.message ?? e) };
      }
    },
    async list(name, collection, limit) {
      return (await (await scope(name)).list(collection, { limit })).map((r) => ({ id: r.id, data: r.data }));
    },
    async get(name, collection, id) {
      return (await (await scope(name)).get(collection, id))?.data ?? null;
    },
    // The same replica through tether-sync/channel, over a MessageChannel of the page.
    async channelCount(name) {
      const replica = await Replica.open(name);
      const { port1, port2 } = new MessageChannel();
      const served = serveReplica(port1, replica);
      const connected = await connectReplica(port2);
      const count = await connected.scope('org-1').count();
      await connected.close();
      served.close();
      return count;
    },
  };
  window.ready = true;
}
