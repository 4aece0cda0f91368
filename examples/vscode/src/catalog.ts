// The catalog hierarchy of the demo dataset (crates/dataset, written by `tether seed`):
// repositories -> files (`data.repository`) -> objects (`data.file`) -> columns (`data.object`),
// and the dependencies between objects (`from_object` -> `to_object`). Every read here is one
// query on a declared index, for one expanded node and one page of its children: nothing lists
// a whole collection, so a catalog of 100,000 objects reads as fast as one of a hundred.
import type { IndexDeclarations, Query, Scope, TetherRecord } from 'tether-sync';

/**
 * The replica's indexes, declared when it opens (built once, then kept by every write): each
 * level of the tree by its parent's id and its display order, objects by name (the "Show
 * Object" search), and the dependencies by each end (an object's upstream and downstream).
 */
export const INDEXES: IndexDeclarations = {
  repositories: ['full_name'],
  files: [['repository', 'path']],
  objects: [['file', 'schema', 'name'], 'name'],
  columns: [['object', 'position']],
  dependencies: ['from_object', 'to_object'],
};

/** Children shown per expansion; "more…" shows the next page. */
export const PAGE = 200;

export type Collection = 'repositories' | 'files' | 'objects' | 'columns';

/** Each level of the tree: its collection, the index that orders it under its parent. */
interface Level {
  collection: Collection;
  /** The index: the parent's id first (none at the root), then the display order. */
  index: string[];
  /** The collection of the children, none for leaves. */
  child: Collection | null;
}

const LEVELS: Record<Collection, Level> = {
  repositories: { collection: 'repositories', index: ['full_name'], child: 'files' },
  files: { collection: 'files', index: ['repository', 'path'], child: 'objects' },
  objects: { collection: 'objects', index: ['file', 'schema', 'name'], child: 'columns' },
  columns: { collection: 'columns', index: ['object', 'position'], child: null },
};

/** One page of a node's children, and how many there are when the page is not all of them. */
export interface Children {
  collection: Collection;
  records: TetherRecord[];
  /** The number of children when more follow this page; `null` when the page holds them all. */
  total: number | null;
}

/** The collection under a record of `collection`, or `null` for a leaf. */
export function childCollection(collection: string): Collection | null {
  return collection in LEVELS ? LEVELS[collection as Collection].child : null;
}

/**
 * The first `limit` children of `parent` (a repository, file or object), or the repositories
 * when `parent` is `null`, in display order: one indexed query, and one count only when there
 * are more than `limit`.
 */
export async function children(scope: Scope, parent: TetherRecord | null, limit: number): Promise<Children | null> {
  const collection = parent ? childCollection(parent.collection) : 'repositories';
  if (!collection) return null;
  const query: Query = { index: LEVELS[collection].index, limit };
  if (parent) query.eq = parent.id;
  const page = await scope.query(collection, query);
  const total = page.cursor === null ? null : await scope.count(collection, query);
  return { collection, records: page.records, total: total !== null && total > page.records.length ? total : null };
}

/** An object's columns, in position order. */
export function columnsQuery(objectId: string): Query {
  return { index: LEVELS.columns.index, eq: objectId };
}

/** The dependencies into an object (its upstream) or out of it (its downstream). */
export function dependenciesQuery(objectId: string, direction: 'upstream' | 'downstream'): Query {
  return { index: direction === 'upstream' ? 'to_object' : 'from_object', eq: objectId };
}

/** Objects whose name starts with `prefix`, for the "Show Object" search. */
export function objectsByName(prefix: string, limit: number): Query {
  return prefix ? { index: 'name', prefix, limit } : { index: 'name', limit };
}

/** What the tree shows for a record. */
export function label(r: TetherRecord): string {
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
