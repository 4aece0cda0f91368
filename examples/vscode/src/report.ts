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

let peak = 0;

/** The extension host's memory, in MiB: now, and the highest RSS {@link sampleMemory} saw. */
export function memory(): { rssMiB: number; heapMiB: number; peakRssMiB: number } {
  const m = process.memoryUsage();
  peak = Math.max(peak, m.rss);
  return { rssMiB: mib(m.rss), heapMiB: mib(m.heapUsed), peakRssMiB: mib(peak) };
}

/** Notes the RSS now (cheap: no heap statistics), for the peak {@link memory} reports. */
export function sampleMemory(): void {
  if (FILE) peak = Math.max(peak, process.memoryUsage.rss());
}

function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}
