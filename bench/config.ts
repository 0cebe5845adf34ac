/**
 * `npm run bench` settings, all from the environment (see bench/README.md):
 *
 *   BENCH_QUICK=1             smaller sizes for a quick run (the defaults marked "quick" below)
 *   BENCH_RUNS                runs per small measure (1 KiB, --version); default 7, quick 5
 *   BENCH_CLI                 the CLI under test (a .js file run by node); default this checkout's package.json bin
 *   BENCH_OUT                 write the JSON there (it is always printed after the table)
 *   BENCH_TMP                 folder for the test data; default /dev/shm when it has room, else the OS temp folder
 *   BENCH_TIMEOUT_MS          deadline of every child process (default 600000)
 *   BENCH_ONLY                comma-separated measures to run (version,tiny,folder,many,relay-rss,big,huge,concurrent,sender-rss)
 *   BENCH_WW                  auto (default): wormhole-william side by side when it can run; 0: never
 *   BENCH_FOLDER_RUNS         runs of the 2000-file folder (default 5, quick 3)
 *   BENCH_FOLDER_FILES        files in that folder (default 2000, each 4 KiB)
 *   BENCH_MANY_FILES          files in the many-files run (default 20000, quick 5000, each 4 KiB)
 *   BENCH_BIG_BYTES           the big file (default 1 GiB, quick 64 MiB)
 *   BENCH_BIG_RUNS            rounds of (tsc-croc, socat) with the big file (default 3)
 *   BENCH_HUGE_BYTES          the file for the second RSS point (default 4 GiB, quick 256 MiB; 0 skips it)
 *   BENCH_CONCURRENCY         transfers at once through one relay (default 16, quick 4)
 *   BENCH_CONCURRENT_BYTES    size of each of them (default 256 MiB, quick 64 MiB)
 *   BENCH_SENDER_FILES        files (1 byte each) for the sender-RSS run (default 100000, quick 5000)
 *   BENCH_STAPLES             raw socket pairs stapled through the relay for its RSS (default 200)
 */
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MEASURES = ['version', 'tiny', 'folder', 'many', 'relay-rss', 'big', 'huge', 'concurrent', 'sender-rss'] as const;
export type MeasureName = (typeof MEASURES)[number];

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export interface BenchConfig {
  quick: boolean;
  runs: number;
  cli: string;
  out: string | undefined;
  tmpBase: string;
  timeoutMs: number;
  only: ReadonlySet<MeasureName>;
  ww: boolean;
  folderRuns: number;
  folderFiles: number;
  manyFiles: number;
  smallFileBytes: number;
  tinyBytes: number;
  bigBytes: number;
  bigRuns: number;
  hugeBytes: number;
  concurrency: number;
  concurrentBytes: number;
  senderFiles: number;
  staples: number;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name] ?? '';
  if (raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new RangeError(`${name} must be 0 or 1, got ${JSON.stringify(raw)}`);
}

/** The checkout this bench was built from: dist/bench/config.js -> the folder with package.json. */
export const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The file package.json's `bin` names for tsc-croc, in `root`. */
export function binOf(root: string): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.['tsc-croc'];
  if (!bin) throw new Error(`${root}/package.json has no bin for tsc-croc`);
  return resolve(root, bin);
}

/**
 * /dev/shm when it exists and both it and the machine's available memory have `need` bytes to
 * spare (data on tmpfs, as in the anchors harness), else the OS temp folder.
 */
function pickTmp(need: number): string {
  try {
    const fs = statfsSync('/dev/shm');
    if (existsSync('/dev/shm') && fs.bavail * fs.bsize > need && freemem() > need) return '/dev/shm';
  } catch {
    // no statfs: fall through
  }
  return tmpdir();
}

export function readConfig(env: NodeJS.ProcessEnv): BenchConfig {
  const quick = flag(env, 'BENCH_QUICK');
  const q = <T>(full: T, short: T): T => (quick ? short : full);
  const only = (env.BENCH_ONLY ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const m of only) if (!(MEASURES as readonly string[]).includes(m)) throw new RangeError(`BENCH_ONLY: unknown measure ${JSON.stringify(m)} (${MEASURES.join(', ')})`);
  const wwRaw = env.BENCH_WW ?? 'auto';
  if (!['auto', '0', '1', ''].includes(wwRaw)) throw new RangeError(`BENCH_WW must be auto or 0, got ${JSON.stringify(wwRaw)}`);
  const cfg: BenchConfig = {
    quick,
    runs: int(env, 'BENCH_RUNS', q(7, 5)),
    cli: env.BENCH_CLI ? resolve(env.BENCH_CLI) : binOf(CHECKOUT),
    out: env.BENCH_OUT || undefined,
    tmpBase: '',
    timeoutMs: int(env, 'BENCH_TIMEOUT_MS', 600_000),
    only: new Set((only.length > 0 ? only : MEASURES) as MeasureName[]),
    ww: wwRaw !== '0',
    folderRuns: int(env, 'BENCH_FOLDER_RUNS', q(5, 3)),
    folderFiles: int(env, 'BENCH_FOLDER_FILES', 2000),
    manyFiles: int(env, 'BENCH_MANY_FILES', q(20_000, 5000)),
    smallFileBytes: 4096,
    tinyBytes: 1024,
    bigBytes: int(env, 'BENCH_BIG_BYTES', q(GiB, 64 * MiB)),
    bigRuns: int(env, 'BENCH_BIG_RUNS', 3),
    hugeBytes: int(env, 'BENCH_HUGE_BYTES', q(4 * GiB, 256 * MiB), 0),
    concurrency: int(env, 'BENCH_CONCURRENCY', q(16, 4)),
    concurrentBytes: int(env, 'BENCH_CONCURRENT_BYTES', q(256 * MiB, 64 * MiB)),
    senderFiles: int(env, 'BENCH_SENDER_FILES', q(100_000, 5000)),
    staples: int(env, 'BENCH_STAPLES', 200),
  };
  if (!existsSync(cfg.cli)) throw new Error(`BENCH_CLI: ${cfg.cli} does not exist (build it first)`);
  // the most data on disk at once: the huge file sent and received, or the concurrent copies
  const need = Math.max(2 * cfg.hugeBytes, 2 * cfg.bigBytes, (cfg.concurrency + 1) * cfg.concurrentBytes) + GiB;
  cfg.tmpBase = env.BENCH_TMP ? resolve(env.BENCH_TMP) : pickTmp(need);
  return cfg;
}
