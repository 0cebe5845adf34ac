#!/usr/bin/env node
/** The `tsc-croc` executable: sets process.exitCode, never calls exit on a normal path. */
// First: a code given as an argument leaves the process list before anything else is loaded
// (static imports are evaluated before this module's body, so this one comes first and imports nothing).
import './hide-secrets-now.js';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { VERSION } from './version.js';

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * The process is ours, so the CLI (never the library) decides how record buffers are collected: a
 * young-generation GC after every few MiB of records frees the dead buffers node:crypto returned
 * (see setRecordBufferCollector). V8's `gc` is obtained on first use only (a transfer that moves
 * a few KiB never pays for it: ~4 ms and a V8 context); where it cannot be had, nothing is done.
 */
function youngGenerationGc(): () => void {
  let gc: ((o: { type: 'minor' }) => void) | null | undefined;
  return () => {
    if (gc === undefined) {
      gc = null;
      try {
        setFlagsFromString('--expose-gc');
        // node:vm loaded here, not at start: a command that moves a few KiB never needs it
        const { runInNewContext } = createRequire(import.meta.url)('node:vm') as typeof import('node:vm');
        const f: unknown = runInNewContext('gc');
        if (typeof f === 'function') gc = f as (o: { type: 'minor' }) => void;
      } catch {
        // no gc function: V8 collects on its own schedule
      }
    }
    gc?.({ type: 'minor' });
  };
}

if (isMain()) {
  const args = process.argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    // answered before the command parser and the commands are loaded: a version check costs a bare node start
    process.stdout.write(`${VERSION}\n`);
  } else {
    // V8 grows its young generation (to 32 MiB) once enough objects have survived collections in
    // all, however slowly; a send of 100,000 small files got there (110 MiB peak RSS, 83 with this).
    // Set at run time, where V8 honours it; 1 GiB transfers showed no CPU difference within noise.
    const [{ runCli }, { setRecordBufferCollector }] = await Promise.all([import('./program.js'), import('../transfer/secure-channel.js')]);
    // (after the modules are loaded: with it, loading them took a few more scavenges)
    setFlagsFromString('--semi-space-growth-factor=1');
    setRecordBufferCollector(youngGenerationGc());
    process.exitCode = await runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  }
}
