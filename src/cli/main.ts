#!/usr/bin/env node
/** The `tsc-croc` executable: sets process.exitCode, never calls exit on a normal path. */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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
    // A peer's young generation stays at its initial size (1 MiB semi-spaces) instead of growing
    // to 16 MiB, which a process moving record buffers would otherwise fill with dead ones.
    // (Not set for the relay, whose memory is measured and tuned on its own.)
    if (args[0] !== 'relay') setFlagsFromString('--semi-space-growth-factor=1');
    const [{ runCli }, { setRecordBufferCollector }] = await Promise.all([import('./program.js'), import('../transfer/secure-channel.js')]);
    setRecordBufferCollector(youngGenerationGc());
    process.exitCode = await runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  }
}
