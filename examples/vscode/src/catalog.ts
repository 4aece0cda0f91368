// The catalog hierarchy of the demo dataset (crates/dataset, written by `tether seed`):
// repositories -> files (`data.repository`) -> objects (`data.file`) -> columns (`data.object`).
// tether-sync has no query API yet, so this lists each collection in full from the replica and
// groups the records in memory: fine for a catalog of thousands of records, and the place to
// switch to an index once the package has one.
import type { Scope, TetherRecord } from 'tether-sync';

export interface CatalogNode {
  record: TetherRecord;
  label: string;
  children: CatalogNode[];
}

export interface Catalog {
  roots: CatalogNode[];
  records: number;
}

/** Each level: the collection and the field of its records naming the parent's id. */
const LEVELS = [
  { collection: 'repositories', parent: null },
  { collection: 'files', parent: 'repository' },
  { collection: 'objects', parent: 'file' },
  { collection: 'columns', parent: 'object' },
] as const;

const PAGE = 1000;

export async function loadCatalog(scope: Scope): Promise<Catalog> {
  let parents = new Map<string, CatalogNode>();
  let roots: CatalogNode[] = [];
  let records = 0;
  for (const level of LEVELS) {
    const nodes = new Map<string, CatalogNode>();
    for (const record of await listAll(scope, level.collection)) {
      const node = { record, label: label(record), children: [] };
      nodes.set(record.id, node);
      records += 1;
      if (level.parent === null) roots.push(node);
      else parents.get(String(record.data[level.parent]))?.children.push(node);
    }
    parents = nodes;
  }
  const byLabel = (a: CatalogNode, b: CatalogNode) => a.label.localeCompare(b.label) || a.record.id.localeCompare(b.record.id);
  const sort = (list: CatalogNode[], column: boolean) => {
    // Columns keep their table order; the other levels sort by name.
    list.sort(column ? (a, b) => Number(a.record.data.position) - Number(b.record.data.position) : byLabel);
    for (const n of list) sort(n.children, n.record.collection === 'objects');
  };
  sort(roots, false);
  return { roots, records };
}

async function listAll(scope: Scope, collection: string): Promise<TetherRecord[]> {
  const all: TetherRecord[] = [];
  for (;;) {
    const page = await scope.list(collection, { after: all.at(-1)?.id, limit: PAGE });
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}

function label(r: TetherRecord): string {
  const d = r.data;
  switch (r.collection) {
    case 'repositories':
      return String(d.full_name ?? d.name ?? r.id);
    case 'files':
      return String(d.path ?? r.id);
    case 'objects':
      return `${String(d.schema ?? '')}.${String(d.name ?? r.id)}`;
    case 'columns':
      return `${String(d.name ?? r.id)}: ${String(d.data_type ?? '?')}`;
    default:
      return r.id;
  }
}
