/**
 * What the `tsc-croc` process does, shared by its two entry points: main.ts (the ES module bundle
 * that npm installs) and binary-entry.ts (the single executable's CommonJS bundle). Commands are
 * loaded only past the `--version` fast path.
 */
import { VERSION } from './version.js';
import { installTrace, trace } from '../transfer/trace.js';

/** node:v8, loaded past the `--version` fast path only. */
const v8 = () => process.getBuiltinModule('node:v8') as typeof import('node:v8');

/**
 * The process is ours, so the CLI (never the library) decides how record buffers are collected: a
 * young-generation GC after every few MiB of records frees the dead buffers node:crypto returned
 * (see setRecordBufferCollector). V8's `gc` is obtained on first use only (a transfer that moves
 * a few KiB never pays for it: ~4 ms and a V8 context, node:vm loaded then); where it cannot be
 * had, nothing is done.
 */
function youngGenerationGc(): () => void {
  let gc: ((o: { type: 'minor' }) => void) | null | undefined;
  return () => {
    if (gc === undefined) {
      gc = null;
      try {
        v8().setFlagsFromString('--expose-gc');
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

/** Run the CLI on process.argv; sets process.exitCode, never calls exit on a normal path. */
export async function runProcess(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    // answered before the command parser and the commands are loaded: a version check costs a bare node start
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  installTrace();
  // The command's own modules are read while the parser's are compiled (the import in program.ts then
  // finds them loaded): a guess from the first word; a wrong guess only loads a module early.
  const command = args[0] === 'send' ? import('../transfer/send.js') : args[0] === 'receive' ? import('../transfer/receive.js') : undefined;
  command?.catch(() => undefined); // imported again, and any failure reported, where it is used
  const [{ runCli }, { setRecordBufferCollector }] = await Promise.all([import('./program.js'), import('../transfer/secure-channel.js')]);
  trace('cli: modules loaded');
  // V8 grows its young generation (to 32 MiB) once enough objects have survived collections in
  // all, however slowly; a send of 100,000 small files got there (110 MiB peak RSS, 83 with this),
  // and a relay kept ~50 MiB more RSS after a flood. Set at run time (where V8 honours it) and
  // after the modules are loaded (with it, loading them took a few more scavenges); 1 GiB
  // transfers showed no CPU difference within noise.
  v8().setFlagsFromString('--semi-space-growth-factor=1');
  setRecordBufferCollector(youngGenerationGc());
  const code = await runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  trace('cli: command returned');
  process.exitCode = code;
}
