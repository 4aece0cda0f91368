// What the extension tells a test harness: one JSON object per line, appended to the file that
// `TETHER_CATALOG_REPORT` names in the extension host's environment (timings of the tree's reads
// and of the panel, the number of live watchers, memory). Nothing is written without it.
import { appendFileSync } from 'node:fs';

const FILE = process.env.TETHER_CATALOG_REPORT;

/** Appends `{event, ...fields, at}` to the report file, if there is one. */
export function report(event: string, fields: Record<string, unknown> = {}): void {
  if (!FILE) return;
  try {
    appendFileSync(FILE, `${JSON.stringify({ event, ...fields, at: Date.now() })}\n`);
  } catch {
    // A harness that went away is no reason to fail the user's action.
  }
}

/** The extension host's memory, in MiB. */
export function memory(): { rssMiB: number; heapMiB: number } {
  const m = process.memoryUsage();
  return { rssMiB: Math.round(m.rss / 2 ** 20), heapMiB: Math.round(m.heapUsed / 2 ** 20) };
}
