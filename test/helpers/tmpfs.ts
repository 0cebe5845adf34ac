/** A small tmpfs mounted by a test (root only): the test is skipped with a message where it cannot be mounted. */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import type { TestContext } from 'node:test';

/** Mount a tmpfs with `options` (e.g. 'size=2m', 'ro,size=1m') at `mnt`, run `body`, unmount. */
export async function withTmpfs(t: TestContext, mnt: string, options: string, body: () => Promise<void>): Promise<void> {
  await mkdir(mnt, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mnt], { stdio: 'pipe', timeout: 10_000 });
  } catch (e) {
    t.skip(`cannot mount a tmpfs here (needs root): ${(e as Error).message.split('\n')[0]}`);
    return;
  }
  try {
    await body();
  } finally {
    execFileSync('umount', [mnt], { stdio: 'pipe', timeout: 10_000 });
  }
}
