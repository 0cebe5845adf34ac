#!/usr/bin/env node
/** The `tsc-croc` executable: sets process.exitCode, never calls exit on a normal path. */
// First: a code given as an argument leaves the process list before anything else is loaded
// (static imports are evaluated before this module's body, so this one comes first and imports nothing).
import './hide-secrets-now.js';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProcess } from './run.js';

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) await runProcess();
