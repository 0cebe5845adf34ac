/**
 * Preloaded into a CLI under test (`node --require <this file> CLI args...`, see child.ts):
 * at the process's exit, whatever the path (normal end, process.exit, an uncaught error, a signal
 * the program handles), writes `{ exitCode, usage: process.resourceUsage() }` (maxRSS: the
 * process's own peak, own-peak-rss.ts) as JSON to
 * $BENCH_STATS_FILE, the same record as bench/measured.ts. It imports nothing of the CLI, so it
 * measures any build (an older checkout, a bundle) at the cost of one tiny module. CommonJS, and
 * preloaded with --require: a module preloaded with --import starts node's ES module loader and
 * runs a CommonJS main through it, which costs the CLI under test ~5 ms of CPU it would not pay
 * when a user runs it.
 */
import { writeFileSync } from 'node:fs';
import { ownPeakRss } from './own-peak-rss.cjs';

const statsFile = process.env.BENCH_STATS_FILE;
if (statsFile) {
  delete process.env.BENCH_STATS_FILE;
  process.on('exit', (code) => {
    writeFileSync(statsFile, JSON.stringify({ exitCode: code, usage: ownPeakRss(process.resourceUsage()) }));
  });
}
