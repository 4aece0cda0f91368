// What the Node cases do: sync an in-memory replica from TETHER_URL, optionally from the
// snapshot in TETHER_SNAPSHOT (a file), write the snapshot back, print one JSON line.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

export async function run({ Replica, isTetherError }) {
  const file = process.env.TETHER_SNAPSHOT;
  try {
    const snapshot = file && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    const replica = await Replica.openInMemory({ snapshot });
    const scope = replica.scope('org-1');
    const report = await scope.sync({ remote: { url: process.env.TETHER_URL, token: process.env.TETHER_TOKEN } });
    const first = await scope.list('objects', { limit: 1 });
    if (file) writeFileSync(file, replica.exportSnapshot());
    console.log(JSON.stringify({ ok: true, kind: report.run.kind, inserted: report.run.inserted, updated: report.run.updated,
      count: await scope.count(), digest: report.snapshot.digest, first: first[0]?.id ?? null }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, tether: isTetherError(e), name: e?.name, code: e?.code, detail: e?.detail, message: String(e?.message ?? e) }));
  }
}
