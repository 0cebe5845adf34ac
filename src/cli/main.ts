#!/usr/bin/env node
/** The `tsc-croc` executable: sets process.exitCode, never calls exit on a normal path. */
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
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    // answered before the command parser and the commands are loaded: a version check costs a bare node start
    process.stdout.write(`${VERSION}\n`);
  } else {
    const { runCli } = await import('./program.js');
    process.exitCode = await runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  }
}
