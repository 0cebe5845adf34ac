/**
 * Unreadable files in tests. chmod 000 stops any user but root; the tests may run as root, so
 * then the code under test runs as `nobody` (uid/gid 65534) in a child process instead. `how()`
 * says which, or why neither works (the tests then skip with that message).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const NOBODY = { uid: 65534, gid: 65534 };

export type Privilege = { kind: 'self' } | { kind: 'nobody'; uid: number; gid: number } | { kind: 'none'; why: string };

let cached: Privilege | undefined;

/** 'self': chmod 000 stops this process already; 'nobody': run as NOBODY; 'none': cannot test unreadable files here. */
export function how(): Privilege {
  if (cached !== undefined) return cached;
  if (typeof process.getuid !== 'function') return (cached = { kind: 'none', why: 'no user ids on this system' });
  if (process.getuid() !== 0) return (cached = { kind: 'self' });
  // root: can a child run as nobody and read our built files?
  const probe = fileURLToPath(new URL('../../tsc-croc.cjs', import.meta.url));
  const r = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(probe)}, require('fs').constants.R_OK)`], { ...NOBODY, encoding: 'utf8', timeout: 20_000 });
  if (r.error !== undefined || r.status !== 0)
    return (cached = { kind: 'none', why: `running as root, and a child as uid ${NOBODY.uid} cannot run the built CLI (${r.error?.message ?? r.stderr.trim().split('\n')[0]})` });
  return (cached = { kind: 'nobody', ...NOBODY });
}

/** Make a temporary folder (made 0700 by mkdtemp) usable by every user: nobody must reach and read the files in it. */
export function openUp(...dirs: string[]): void {
  for (const d of dirs) chmodSync(d, 0o777);
}
