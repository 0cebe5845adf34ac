/**
 * The V8 flags the CLI process runs with (never the library: the process is ours). Set before
 * the CLI's code is compiled: V8 refuses a code cache made under other flags (code-cache.ts), so
 * every start sets the same ones at the same point, and a flag turned on for a while later
 * (run.ts's `--expose-gc`) is turned off again.
 */
export const INTERRUPT_BUDGET = 10 * 67584;

export function setV8Flags(): void {
  const v8 = process.getBuiltinModule('node:v8') as typeof import('node:v8');
  // TurboFan later: a function is optimized after ten times more of its bytecode ran than V8's
  // default (67584 in Node 20). Each optimization costs compile memory on a V8 worker thread
  // (kept in that thread's malloc arena) and code: 1 GiB peak RSS 65 / 69.5 -> 60 / 63 MiB, the
  // CPU no higher (bench/README.md, "Session 4"); what runs long (20,000 small files, a relay)
  // is still optimized, a little later.
  v8.setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
  // V8 grows its young generation (to 32 MiB) once enough objects have survived collections in
  // all, however slowly; a send of 100,000 small files got there (110 MiB peak RSS, 83 with this),
  // and a relay kept ~50 MiB more RSS after a flood. 1 GiB transfers showed no CPU difference
  // within noise.
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
