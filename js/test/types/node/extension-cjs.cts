// The same from a CommonJS extension (`require` condition).
import tether = require('tether-sync');

export async function count(): Promise<number> {
  const replica = await tether.Replica.openInMemory();
  return replica.scope('org-1').count();
}
