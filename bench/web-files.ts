/** What the web benches share: the test file they send, and a process's CPU from /proc. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * Writes `mib` pseudo-random 1 MiB blocks to `file` (not sparse: every byte is read and
 * encrypted); block i starts with i and the SHA-256 of it, so any block out of place shows.
 */
export async function writeBlocks(file: string, mib: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    const block = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < mib; i++) {
      block.writeUInt32LE(i, 0);
      createHash('sha256').update(block.subarray(0, 4)).digest().copy(block, 4);
      await fh.write(block);
    }
  } finally {
    await fh.close();
  }
}

/** user + system CPU seconds of a process so far (Linux /proc); NaN when it cannot be read. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}
