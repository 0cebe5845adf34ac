#!/usr/bin/env node
/** The `tsc-croc` executable: sets process.exitCode, never calls exit on a normal path. */
// First: a code given as an argument leaves the process list before anything else is loaded
// (static imports are evaluated before this module's body, so this one comes first and imports nothing).
import './hide-secrets-now.js';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VERSION } from './version.js';

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = process.argv.slice(2);
  // answered before the rest of the CLI is even read (bundled, it is a file of its own: scripts/bundle.mjs)
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) process.stdout.write(`${VERSION}\n`);
  else await (await import('./run.js')).runProcess();
}
