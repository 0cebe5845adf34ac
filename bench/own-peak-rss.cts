/** A process's own peak RSS, for the bench's per-process records (rusage-hook.ts, measured.ts). */
import { readFileSync } from 'node:fs';

/**
 * resourceUsage().maxRSS on Linux carries over exec the peak of the process before it: the forked
 * copy of the parent, whose RSS is the parent's (a child of a bench at 200 MiB reports 204 MiB
 * for a `node -e` of 39). The bench's own RSS grows with the files it writes and hashes, so the
 * peers' peaks were inflated by it at times (a 4 GiB run gave sender and recipient the same
 * 69.0 MiB). VmHWM belongs to the address space exec made: the program's own peak. maxRSS is
 * replaced by it where /proc has it.
 */
export function ownPeakRss(usage: NodeJS.ResourceUsage): NodeJS.ResourceUsage {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return { ...usage, maxRSS: Number(m[1]) };
  } catch {
    // not Linux: maxRSS as it is
  }
  return usage;
}
