/**
 * The entry point of the single binary (`npm run build:binary`, scripts/build-binary.mjs): the same
 * CLI as main.ts, bundled to one CommonJS file for Node's single-executable applications, whose main
 * cannot be an ES module. So: no top-level await and no import.meta here (the bundle inlines every
 * dynamic import of the commands).
 */
// First, as in main.ts: a code given as an argument leaves the process list before anything else is loaded.
import './hide-secrets-now.js';
import { setFlagsFromString } from 'node:v8';
import { VERSION } from './version.js';

/** As in main.ts: a young-generation GC after every few MiB of records, obtained on first use. */
function youngGenerationGc(): () => void {
  let gc: ((o: { type: 'minor' }) => void) | null | undefined;
  return () => {
    if (gc === undefined) {
      gc = null;
      try {
        setFlagsFromString('--expose-gc');
        const { runInNewContext } = process.getBuiltinModule('node:vm') as typeof import('node:vm');
        const f: unknown = runInNewContext('gc');
        if (typeof f === 'function') gc = f as (o: { type: 'minor' }) => void;
      } catch {
        // no gc function: V8 collects on its own schedule
      }
    }
    gc?.({ type: 'minor' });
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const [{ runCli }, { setRecordBufferCollector }] = await Promise.all([import('./program.js'), import('../transfer/secure-channel.js')]);
  setFlagsFromString('--semi-space-growth-factor=1');
  setRecordBufferCollector(youngGenerationGc());
  process.exitCode = await runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
}

main().catch((err: unknown) => {
  // runCli maps every error to an exit code itself; this is a bug in the entry alone
  process.stderr.write(`tsc-croc: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
