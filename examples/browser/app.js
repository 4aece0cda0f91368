// The example app: syncs a scope from `tether serve` into IndexedDB, then reads it offline.
// Everything on screen comes from the local replica; only "Sync now" talks to the server.
// Selecting an object shows its columns through a live query on an index: the list follows
// every sync, local edit and other tab without being asked.
import { Replica } from 'tether-sync';

const $ = (id) => document.getElementById(id);
const form = $('settings');
const params = new URLSearchParams(location.search);
const saved = JSON.parse(localStorage.getItem('tether-demo') ?? '{}');
form.url.value = params.get('url') ?? saved.url ?? location.origin;
form.token.value = params.get('token') ?? saved.token ?? 'secret';
form.scope.value = params.get('scope') ?? saved.scope ?? 'org-1';

// Indexes are declared when the replica opens; a changed set is built in place.
const replica = await Replica.open('tether-demo', {
  indexes: { columns: [['object', 'position']], objects: ['name'] },
});
let scope = replica.scope(form.scope.value);
let background = null;

const remote = () => ({ url: form.url.value, token: form.token.value });

function show(message, error = false) {
  $('message').textContent = message;
  $('message').className = error ? 'error' : '';
}

function onProgress(p) {
  if (p.percent != null) $('progress').value = p.percent;
  $('progress-text').textContent =
    `${p.phase} ${p.done.toLocaleString()}${p.total != null ? ` / ${p.total.toLocaleString()}` : ''}`;
}

async function sync() {
  localStorage.setItem('tether-demo', JSON.stringify({ url: form.url.value, token: form.token.value, scope: form.scope.value }));
  if (scope.id !== form.scope.value) {
    scope = replica.scope(form.scope.value);
    stopWatch?.();
    selected = null;
  }
  $('sync').disabled = true;
  $('progress').value = 0;
  show('syncing…');
  try {
    const r = await scope.sync({ remote: remote(), onProgress });
    $('progress').value = 100;
    show(`${r.run.kind} sync: +${r.run.inserted} ~${r.run.updated} −${r.run.deleted}, ` +
      `${r.run.conflicts} conflicts, verified ${r.snapshot.count.toLocaleString()} records`);
  } catch (e) {
    show(`${e.name}: ${e.message}`, true);
  } finally {
    $('sync').disabled = false;
    $('progress-text').textContent = 'idle';
    await render();
  }
}

async function renderStatus() {
  const s = await scope.status();
  const rows = {
    records: s.visible.toLocaleString(),
    'cloud count': s.count.toLocaleString(),
    digest: `${s.digest.slice(0, 16)}…`,
    checkpoint: s.checkpoint ?? '—',
    'last sync': s.lastSyncedAt ? new Date(s.lastSyncedAt).toLocaleString() : 'never',
    'pending edits': s.pendingEdits,
    conflicts: s.openConflicts,
    'last error': s.lastError ? `${s.lastError.kind}: ${s.lastError.message}` : 'none',
    'sync now?': s.syncRecommended ? `yes — ${s.reason}` : 'no, up to date',
  };
  $('status').replaceChildren(...Object.entries(rows).flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.id = `status-${k.replace(/\W+/g, '-')}`;
    if (k === 'sync now?') dd.className = s.syncRecommended ? 'pending' : 'ok';
    return [dt, dd];
  }));
}

// Search runs over the local replica, page by page, so it works offline.
async function renderRecords() {
  const collection = $('collection').value;
  const q = $('search').value.trim().toLowerCase();
  const hits = [];
  let after;
  while (hits.length < 100) {
    const page = await scope.list(collection, { after, limit: 1000 });
    for (const r of page) {
      const name = String(r.data.name ?? r.data.path ?? r.data.title ?? '');
      if (!q || name.toLowerCase().includes(q) || r.id.includes(q)) hits.push([r, name]);
      if (hits.length === 100) break;
    }
    if (page.length < 1000) break;
    after = page[page.length - 1].id;
  }
  const total = await scope.count(collection);
  $('shown').textContent = `(${hits.length} shown of ${total.toLocaleString()} in ${collection})`;
  $('records').tBodies[0].replaceChildren(...hits.map(([r, name]) => {
    const tr = document.createElement('tr');
    for (const v of [r.id, name, r.version, r.pending ? 'edited locally' : '']) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    if (r.pending) tr.className = 'pending';
    if (collection === 'objects') {
      tr.classList.add('selectable');
      if (r.id === selected) tr.classList.add('selected');
      tr.onclick = () => { select(r.id, name); renderRecords(); };
    }
    return tr;
  }));
}

// The columns of the selected object, in position order: a live query. `watch` calls back
// with the first result, then again after each committed change that alters it.
let selected = null;
let stopWatch = null;
function select(objectId, name) {
  stopWatch?.();
  selected = objectId;
  $('columns-title').textContent = `Columns of ${name || objectId}`;
  stopWatch = scope.watch('columns', { index: ['object', 'position'], eq: [objectId] }, (page) => {
    $('columns').replaceChildren(...page.records.map((c) => {
      const li = document.createElement('li');
      li.textContent = `${c.data.position}. ${c.data.name} ${c.data.data_type ?? ''}${c.pending ? ' (edited locally)' : ''}`;
      return li;
    }));
    if (!page.records.length) $('columns').innerHTML = '<li>no columns</li>';
    $('columns').dataset.count = String(page.records.length);
  });
}

async function renderHistory() {
  const runs = await scope.history({ limit: 8 });
  $('history').tBodies[0].replaceChildren(...runs.map((r) => {
    const tr = document.createElement('tr');
    const ms = r.finishedAt ? r.finishedAt - r.startedAt : '';
    for (const v of [r.id, r.kind, r.status, r.pages, r.inserted, r.updated, r.deleted, ms]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    tr.className = r.status === 'completed' ? 'ok' : r.status === 'failed' ? 'bad' : '';
    if (r.error) tr.title = r.error.message;
    return tr;
  }));
}

async function renderConflicts() {
  const list = await scope.conflicts();
  $('conflicts').replaceChildren(...list.map((c) => {
    const li = document.createElement('li');
    li.textContent = `${c.collection}/${c.recordId}: local ${c.localOp} lost to cloud v${c.cloudVersion} `;
    const b = document.createElement('button');
    b.textContent = 'dismiss';
    b.onclick = async () => {
      await scope.dismissConflict(c.id);
      await render();
    };
    li.append(b);
    return li;
  }));
  if (!list.length) $('conflicts').innerHTML = '<li>none</li>';
}

async function render() {
  try {
    await Promise.all([renderStatus(), renderRecords(), renderHistory(), renderConflicts()]);
  } catch (e) {
    show(`${e.name}: ${e.message}`, true);
  }
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  sync();
});
$('collection').addEventListener('change', renderRecords);
$('search').addEventListener('input', renderRecords);
$('background').addEventListener('change', async (ev) => {
  await background?.stop();
  background = ev.target.checked
    ? scope.startBackgroundSync({ remote: remote(), intervalMs: 60_000, onProgress, onSync: render, onError: (e) => { show(`${e.name}: ${e.message}`, true); render(); } })
    : null;
});

await render();
document.body.dataset.ready = 'true';
if (params.has('autosync')) await sync();
document.body.dataset.synced = params.has('autosync') ? 'true' : 'false';
