/**
 * The entry point of the single binary (`npm run build:binary`, scripts/build-binary.mjs): the same
 * CLI as main.ts, bundled to one CommonJS file for Node's single-executable applications, whose main
 * cannot be an ES module. So: no top-level await and no import.meta here (the bundle inlines every
 * dynamic import of the commands).
 */
// First, as in main.ts: a code given as an argument leaves the process list before anything else is loaded.
import './hide-secrets-now.js';
import { runProcess } from './run.js';

runProcess().catch((err: unknown) => {
  // runCli maps every error to an exit code itself; this is a bug in the entry alone
  process.stderr.write(`tsc-croc: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
