// The same from a CommonJS extension (`require` condition).
import tether = require('tether-sync');

export async function count(): Promise<number> {
  // The classes are types too, as an extension's own code uses them.
  const replica: tether.Replica = await tether.Replica.openInMemory();
  const scope: tether.Scope = replica.scope('org-1');
  let background: tether.BackgroundSync | undefined;
  void background;
  void scope;
  const stop = scope.watch('objects', { index: 'name', eq: 'orders' }, (r: tether.QueryResult) => console.log(r.cursor));
  stop();
  return replica.scope('org-1').count('objects', { index: 'name', prefix: 'o' });
}
