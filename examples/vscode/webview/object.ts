// The object panel's script, in the webview: it connects to the extension host's replica
// (`tether-sync/webview`: postMessage, no WebAssembly, no fetch) and renders the object, its
// columns and its lineage from queries the host watches; each result the host pushes re-renders
// the section it belongs to. After each render it tells the host what it shows (the host test
// reads it from the extension's report).
import { connectVsCodeWebview } from 'tether-sync/webview';
import type { ConnectedScope } from 'tether-sync/webview';

interface VsCodeApi {
  postMessage(message: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

type Data = Record<string, unknown>;
interface Row {
  id: string;
  data: Data;
}

const vscode = acquireVsCodeApi();
const scopeId = document.body.dataset.scope ?? '';
const objectId = document.body.dataset.object ?? '';
const app = document.getElementById('app') as HTMLElement;

const state: { object: Row | null; columns: Row[] | null; upstream: Row[] | null; downstream: Row[] | null } = {
  object: null,
  columns: null,
  upstream: null,
  downstream: null,
};

void main().catch((e: unknown) => {
  app.replaceChildren(el('p', { class: 'error' }, `Could not read the replica: ${e instanceof Error ? e.message : String(e)}`));
});

/** When the connection to the host's replica was made, since this document started loading. */
let connectedMs = 0;

async function main(): Promise<void> {
  const replica = await connectVsCodeWebview(vscode);
  connectedMs = performance.now();
  const scope = replica.scope(scopeId);
  await readObject(scope);
  // The object's own record: read again when a change event names it.
  scope.subscribe((event) => {
    if (event.changes.some((c) => c.collection === 'objects' && c.id === objectId)) void readObject(scope);
  });
  const onError = (e: Error) => app.append(el('p', { class: 'error' }, e.message));
  scope.watch('columns', { index: ['object', 'position'], eq: objectId }, (page) => {
    state.columns = page.records;
    render();
  }, { onError });
  scope.watch('dependencies', { index: 'to_object', eq: objectId }, (page) => {
    state.upstream = page.records;
    render();
  }, { onError });
  scope.watch('dependencies', { index: 'from_object', eq: objectId }, (page) => {
    state.downstream = page.records;
    render();
  }, { onError });
}

async function readObject(scope: ConnectedScope): Promise<void> {
  state.object = await scope.get('objects', objectId);
  render();
}

function render(): void {
  const { object, columns, upstream, downstream } = state;
  // One render once every section has its first result, so the panel never shows half of it.
  if (columns === null || upstream === null || downstream === null) return;
  const d = object?.data ?? {};
  app.replaceChildren(
    el('h1', {}, object ? `${str(d.schema)}.${str(d.name)}` : objectId),
    el('p', { class: 'muted' }, object ? `${objectId} · ${str(d.kind)} · ${str(d.owner)}` : `${objectId} is not in the replica`),
    el('p', {}, str(d.description)),
    el('h2', {}, `Columns (${columns.length})`),
    table(['#', 'name', 'type', 'nullable', 'pii'], columns.map((c) => [
      str(c.data.position), str(c.data.name), str(c.data.data_type), c.data.nullable ? 'yes' : 'no', c.data.pii ? 'yes' : '',
    ]), columns.map((c) => c.id)),
    el('h2', {}, `Upstream (${upstream.length})`),
    lineage(upstream, 'from_object'),
    el('h2', {}, `Downstream (${downstream.length})`),
    lineage(downstream, 'to_object'),
  );
  vscode.postMessage({
    type: 'tether-catalog.rendered',
    // Since this document started loading: the part of the panel's opening spent in the webview.
    sinceLoadMs: performance.now(),
    connectedMs,
    columns: columns.length,
    upstream: upstream.length,
    downstream: downstream.length,
    names: columns.map((c) => str(c.data.name)),
  });
}

function lineage(deps: Row[], other: 'from_object' | 'to_object'): HTMLElement {
  if (deps.length === 0) return el('p', { class: 'muted' }, 'none');
  return table(['object', 'kind', 'detected by'], deps.map((r) => [str(r.data[other]), str(r.data.kind), str(r.data.detected_by)]),
    deps.map((r) => r.id));
}

function table(head: string[], rows: string[][], ids: string[]): HTMLElement {
  return el('table', {},
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rows.map((cells, i) => el('tr', { 'data-id': ids[i] ?? '' }, ...cells.map((c) => el('td', {}, c))))));
}

function el(tag: string, attrs: Record<string, string>, ...children: (Node | string)[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v);
}
