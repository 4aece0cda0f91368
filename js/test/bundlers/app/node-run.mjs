// What the Node cases do: sync an in-memory replica from TETHER_URL, optionally from the
// snapshot in TETHER_SNAPSHOT (a file), write the snapshot back, print one JSON line. With
// `channel` (tether-sync/channel, and `serveWebview` of tether-sync/vscode where given), it also
// counts the records through a replica channel on a worker_threads MessageChannel.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';

async function channelCount(replica, { connectReplica, serveReplica, serveWebview }) {
  const { port1, port2 } = new MessageChannel();
  // A VS Code webview, as far as serveWebview uses one.
  const webview = {
    postMessage: (m) => port1.postMessage(m),
    onDidReceiveMessage: (fn) => {
      port1.on('message', fn);
      return { dispose: () => port1.off('message', fn) };
    },
  };
  const served = serveWebview ? serveWebview(webview, replica) : serveReplica(port1, replica);
  const connected = await connectReplica(port2);
  const count = await connected.scope('org-1').count();
  await connected.close();
  served.dispose();
  port1.close();
  return count;
}

export async function run({ Replica, isTetherError, channel }) {
  const file = process.env.TETHER_SNAPSHOT;
  try {
    const snapshot = file && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    const replica = await Replica.openInMemory({ snapshot });
    const scope = replica.scope('org-1');
    const report = await scope.sync({ remote: { url: process.env.TETHER_URL, token: process.env.TETHER_TOKEN } });
    const first = await scope.list('objects', { limit: 1 });
    if (file) writeFileSync(file, replica.exportSnapshot());
    const viaChannel = channel ? await channelCount(replica, channel) : null;
    console.log(JSON.stringify({ ok: true, kind: report.run.kind, inserted: report.run.inserted, updated: report.run.updated,
      count: await scope.count(), digest: report.snapshot.digest, first: first[0]?.id ?? null, viaChannel }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, tether: isTetherError(e), name: e?.name, code: e?.code, detail: e?.detail, message: String(e?.message ?? e) }));
  }
}
