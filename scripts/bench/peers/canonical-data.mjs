// Copies a peers data dir with every record's data written in canonical member order (sorted
// keys, recursively), as a Tether server sends stored data; the hashes are unchanged (they are
// of the canonical form already).
import fs from 'node:fs';
import path from 'node:path';
const [src, dst] = process.argv.slice(2);
const sort = (v) => Array.isArray(v) ? v.map(sort) : v && typeof v === 'object'
  ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])])) : v;
for (const set of fs.readdirSync(src)) {
  const from = path.join(src, set), to = path.join(dst, set);
  if (!fs.existsSync(path.join(from, 'manifest.json'))) continue;
  fs.mkdirSync(to, { recursive: true });
  for (const f of fs.readdirSync(from)) {
    const text = fs.readFileSync(path.join(from, f), 'utf8');
    if (!f.startsWith('page-')) { fs.writeFileSync(path.join(to, f), text); continue; }
    const page = JSON.parse(text);
    for (const c of page.changes) if (c.data) c.data = sort(c.data);
    fs.writeFileSync(path.join(to, f), JSON.stringify(page));
  }
  console.log('canonical copy of', set);
}
