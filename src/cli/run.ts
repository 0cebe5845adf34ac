/**
 * What the `tsc-croc` process does, shared by its two entry points: main.ts (the ES module bundle
 * that npm installs) and binary-entry.ts (the single executable's CommonJS bundle). Commands are
 * loaded only past the `--version` fast path.
 */
import { VERSION } from './version.js';
import { installTrace, trace } from '../transfer/trace.js';
import { setV8Flags } from './v8-flags.js';

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
        // the flags as they were (v8-flags.ts): the code cache written at exit must fit the next start
        v8().setFlagsFromString('--no-expose-gc');
        if (typeof f === 'function') gc = f as (o: { type: 'minor' }) => void;
      } catch {
        // no gc function: V8 collects on its own schedule
      }
    }
    gc?.({ type: 'minor' });
  };
}

/**
 * The sender's ciphertext buffers, freed as soon as the socket has written them
 * (setRecordBufferRelease), instead of waiting for the next collection: the buffer's memory moves
 * into a message posted on a closed MessagePort, which drops it at once (node has no other way to
 * free an ArrayBuffer's memory now). The sender then holds only the records in flight: its peak
 * RSS is lower and each new record reuses the memory the last one had, still in the CPU's cache.
 *
 * That reuse needs one more step on glibc: a free that leaves more than its trim threshold
 * (128 KiB, or twice the largest mmap'd chunk freed so far) at the top of the heap gives those
 * pages back to the kernel, and the next record faults fresh zeroed pages in again (~250 faults
 * per MiB, which more than doubled the cipher's CPU in a benchmark). glibc raises both thresholds
 * when it frees a chunk it had mmap'd: one untouched buffer of MALLOC_THRESHOLD_BYTES (mmap'd, never
 * faulted in, so no RSS) freed first sets them to 4 and 8 MiB, above a record. Elsewhere than glibc
 * this allocates and frees 4 MiB of address space.
 */
function recordBufferRelease(): (buf: Buffer) => void {
  let port: import('node:worker_threads').MessagePort | null = null;
  const drop = (ab: ArrayBuffer): void => {
    try {
      port!.postMessage(null, [ab]);
    } catch {
      // not transferable: the collector frees it
    }
  };
  return (buf) => {
    if (port === null) {
      const { MessageChannel } = process.getBuiltinModule('node:worker_threads') as typeof import('node:worker_threads');
      const channel = new MessageChannel();
      channel.port1.close();
      channel.port2.close();
      port = channel.port1;
      drop(Buffer.allocUnsafeSlow(MALLOC_THRESHOLD_BYTES).buffer);
    }
    // only a buffer that is all of its ArrayBuffer (node:crypto's outputs are)
    const ab = buf.buffer;
    if (ab instanceof ArrayBuffer && buf.byteOffset === 0 && buf.byteLength === ab.byteLength) drop(ab);
  };
}
const MALLOC_THRESHOLD_BYTES = 4 * 1024 * 1024;

/** Run the CLI on process.argv; sets process.exitCode, never calls exit on a normal path. */
export async function runProcess(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    // answered before the command parser and the commands are loaded: a version check costs a bare node start
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  setV8Flags(); // already set by the launcher (dist/tsc-croc.cjs); not by main.ts or the single binary
  installTrace();
  const [{ runCli }, { setRecordBufferCollector, setRecordBufferRelease }] = await Promise.all([import('./program.js'), import('../transfer/secure-channel.js')]);
  trace('cli: modules loaded');
  setRecordBufferCollector(youngGenerationGc());
  setRecordBufferRelease(recordBufferRelease());
  const code = await runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  trace('cli: command returned');
  process.exitCode = code;
}
