/**
 * The `tsc-croc` executable of the npm package: scripts/bundle.mjs builds it into
 * dist/tsc-croc.cjs (CommonJS: node then never starts its ES module loader), and the CLI itself
 * into dist/tsc-croc-cli.cjs, which this file loads with a V8 code cache (code-cache.ts).
 * `--version` is answered here, before the CLI is read. src/cli/main.ts is the same entry for the
 * unbundled build (dist/src/cli/main.js), binary-entry.ts for the single executable.
 */
// First: a code given as an argument leaves the process list before anything else is loaded.
import './hide-secrets-now.js';
import { join } from 'node:path';
import { loadWithCodeCache } from './code-cache.js';
import { setV8Flags } from './v8-flags.js';
import { VERSION } from './version.js';

/** The CLI bundle's build (the first 16 hex digits of its SHA-256), set by scripts/bundle.mjs. */
declare const __TSC_CROC_CLI_BUILD__: string;

/** The caches: one per command, each holding what its command compiled. */
const KINDS = new Set(['send', 'receive', 'relay']);

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) process.stdout.write(`${VERSION}\n`);
else {
  setV8Flags(); // before the CLI is compiled (a code cache is only taken under the flags it was made with)
  const { exports: cli } = loadWithCodeCache<typeof import('./run.js')>({
    file: join(__dirname, 'tsc-croc-cli.cjs'),
    buildId: __TSC_CROC_CLI_BUILD__,
    kind: args.find((a) => KINDS.has(a)) ?? 'other',
    require,
  });
  cli.runProcess().catch((err: unknown) => {
    // runCli maps every error to an exit code itself; this is a bug in the entry alone
    process.stderr.write(`tsc-croc: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
