/**
 * `npm run bench`: throughput, CPU and memory of a tsc-croc transfer against a raw TCP baseline.
 *
 * 1. Writes a random file (BENCH_BYTES, default 1 GiB) and one a quarter of its size in a temp folder.
 * 2. tsc-croc: relay, sender and recipient as three processes of the built CLI on 127.0.0.1.
 * 3. raw: the same three roles over plain sockets, no crypto (bench/raw-peers.ts), same file.
 * 4. tsc-croc again with the quarter-size file, to show whether peak RSS grows with the file.
 * Every process runs through bench/measured.ts, which records its own resourceUsage(). Received
 * files are checked by SHA-256 after each run (not timed). Everything lands in one temp folder
 * that is removed at the end, on failure and on Ctrl-C.
 *
 * Environment:
 *   BENCH_BYTES       size of the large file in bytes (default 1073741824)
 *   BENCH_TIMEOUT_MS  deadline of each child process (default 600000); a child past it is killed
 *   BENCH_OUT         also write the results as JSON to this file
 *   BENCH_WARMUP      1 (default): before each run, write and delete a scratch file of the run's size
 *                     (see warmPageCache in bench/files.ts), so every run starts from the same memory
 *                     state; 0: runs start from whatever state the previous one left
 *   BENCH_PROFILE     a folder: run every child with `node --cpu-prof` into it, and print the
 *                     top functions of the tsc-croc sender and recipient (timings are then perturbed)
 *
 * The table and the JSON go to stdout, progress to stderr.
 */
import { cpus, tmpdir } from 'node:os';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ChildGroup, type Line, type MeasuredChild } from './child.js';
import { sha256File, warmPageCache, writeRandomFile } from './files.js';
import { summarizeProfileFile } from './profile-summary.js';
import { ROLES, formatSize, renderReport, type Role, type RunResult } from './report.js';

interface Config {
  bytes: number;
  timeoutMs: number;
  out: string | undefined;
  profileDir: string | undefined;
  warmUp: boolean;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

function flag(env: NodeJS.ProcessEnv, name: string, byDefault = false): boolean {
  const raw = env[name] ?? '';
  if (raw === '') return byDefault;
  if (raw === '0') return false;
  if (raw === '1') return true;
  throw new RangeError(`${name} must be 0 or 1, got ${JSON.stringify(raw)}`);
}

function readConfig(env: NodeJS.ProcessEnv): Config {
  return {
    bytes: positiveInt(env, 'BENCH_BYTES', 2 ** 30),
    timeoutMs: positiveInt(env, 'BENCH_TIMEOUT_MS', 10 * 60_000),
    out: env.BENCH_OUT || undefined,
    profileDir: env.BENCH_PROFILE ? resolve(env.BENCH_PROFILE) : undefined,
    warmUp: flag(env, 'BENCH_WARMUP', true),
  };
}

const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

/** The children's environment: ours without TSC_CROC_* settings that could change their behaviour. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TSC_CROC_')));
  return { ...env, ...extra };
}

interface Context {
  cfg: Config;
  group: ChildGroup;
  tmp: string;
}

interface Trio {
  relay: MeasuredChild;
  sender: MeasuredChild;
  recipient: MeasuredChild;
}

/** A label as a file name: "tsc-croc 1 GiB" -> "tsc-croc-1-GiB". */
const slug = (label: string) => label.replace(/[^a-z0-9]+/gi, '-');

function spawnChild(ctx: Context, label: string, role: Role, args: string[], env?: NodeJS.ProcessEnv): MeasuredChild {
  const name = `${slug(label)}-${role}`;
  const nodeArgs = ctx.cfg.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.cfg.profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  return ctx.group.spawn({
    name: `${label} ${role}`,
    args,
    statsFile: join(ctx.tmp, 'stats', `${name}.json`),
    timeoutMs: ctx.cfg.timeoutMs,
    nodeArgs,
    env: env ?? childEnv(),
  });
}

function match(re: RegExp, stream: Line['stream']) {
  return (l: Line) => l.stream === stream && re.test(l.text);
}

/** Both peers exited with 0 (failing fast on the first that did not), then the relay is stopped with SIGTERM. */
async function finish(trio: Trio): Promise<number> {
  try {
    await Promise.all([trio.sender.succeeded(), trio.recipient.succeeded()]);
  } catch (e) {
    // A child killed at its deadline makes the others fail too: name it first.
    const all = [trio.relay, trio.sender, trio.recipient];
    await Promise.race([Promise.all(all.map((c) => c.exited)), delay(1000)]);
    const late = all.find((c) => c.timedOut);
    if (late && !(e as Error).message.startsWith(late.name)) throw new Error(`${late.failure().message}\nthen: ${(e as Error).message}`);
    throw e;
  }
  const end = Math.max((await trio.sender.exited).at, (await trio.recipient.exited).at);
  trio.relay.signal('SIGTERM');
  await trio.relay.succeeded();
  return end;
}

async function costs(trio: Trio): Promise<RunResult['processes']> {
  const entries = await Promise.all(ROLES.map(async (r) => [r, await trio[r].cost()] as const));
  return Object.fromEntries(entries) as RunResult['processes'];
}

async function verify(received: string, expected: string): Promise<{ sha256: string; verified: boolean }> {
  const sha256 = await sha256File(received);
  return { sha256, verified: sha256 === expected };
}

function result(o: Omit<RunResult, 'dataMBps' | 'wallMBps'>): RunResult {
  return { ...o, dataMBps: o.bytes / 1e6 / o.dataS, wallMBps: o.bytes / 1e6 / o.wallS };
}

/** Create the run's output folder, warm the page cache if asked, and say what starts. */
async function prepare(ctx: Context, label: string, outDir: string, bytes: number): Promise<void> {
  await mkdir(outDir);
  if (ctx.cfg.warmUp) {
    log(`${label}: warming the page cache with ${formatSize(bytes)}`);
    await warmPageCache(outDir, bytes);
  }
  log(`${label}: starting the relay`);
}

async function runTscCroc(ctx: Context, label: string, file: string, bytes: number, expected: string): Promise<RunResult> {
  const outDir = join(ctx.tmp, `out-${slug(label)}`);
  await prepare(ctx, label, outDir, bytes);
  const relay = spawnChild(ctx, label, 'relay', ['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet']);
  const listening = /HTTP on 127\.0\.0\.1:(\d+), TCP on 127\.0\.0\.1:(\d+)/;
  const ready = await relay.waitForLine('its listening line', match(listening, 'stderr'));
  const url = `http://127.0.0.1:${listening.exec(ready.text)![1]}`;

  const sender = spawnChild(ctx, label, 'sender', ['send', '--relay', url, '--no-local', '--no-progress', file]);
  const codeLine = await sender.waitForLine('the code', match(/^Code is: \S+$/, 'stdout'));
  const code = codeLine.text.slice('Code is: '.length);
  log(`${label}: sending ${formatSize(bytes)}`);
  // The code goes by environment, not argv (as docs advise); --json gives timestamps of the stages.
  const recipient = spawnChild(
    ctx,
    label,
    'recipient',
    ['receive', '--relay', url, '--no-local', '--out', outDir, '--yes', '--no-progress', '--json'],
    childEnv({ TSC_CROC_SECRET: code }),
  );
  const trio = { relay, sender, recipient };
  const end = await finish(trio);

  const events = recipient
    .lines('stdout')
    .map((l) => ({ at: l.at, e: parseJson(l.text) }))
    .filter((x): x is { at: number; e: Record<string, unknown> } => x.e !== null);
  const at = (what: string, test: (e: Record<string, unknown>) => boolean) => {
    const hit = events.find((x) => test(x.e));
    if (!hit) throw new Error(`${label}: the recipient reported no ${what} event; its output:\n${recipient.lines().map((l) => l.text).join('\n')}`);
    return hit.at;
  };
  const dataStart = at('transferring', (e) => e.event === 'stage' && e.stage === 'transferring');
  const dataEnd = at('final progress', (e) => e.event === 'progress' && e.bytes === bytes);
  const committed = at('file-done', (e) => e.event === 'file-done');

  const processes = await costs(trio);
  log(`${label}: verifying`);
  const check = await verify(join(outDir, basename(file)), expected);
  await rm(outDir, { recursive: true, force: true });
  return result({
    label,
    path: 'tsc-croc',
    bytes,
    wallS: (end - recipient.startedAt) / 1000,
    setupS: (dataStart - recipient.startedAt) / 1000,
    dataS: (dataEnd - dataStart) / 1000,
    commitS: (committed - dataEnd) / 1000,
    ...check,
    processes,
  });
}

async function runRaw(ctx: Context, label: string, file: string, bytes: number, expected: string): Promise<RunResult> {
  const outDir = join(ctx.tmp, `out-${slug(label)}`);
  const outFile = join(outDir, basename(file));
  await prepare(ctx, label, outDir, bytes);
  const relay = spawnChild(ctx, label, 'relay', ['--raw', 'relay', '--host', '127.0.0.1', '--port', '0']);
  const listening = /TCP on 127\.0\.0\.1:(\d+)/;
  const ready = await relay.waitForLine('its listening line', match(listening, 'stderr'));
  const port = listening.exec(ready.text)![1]!;
  log(`${label}: sending ${formatSize(bytes)}`);
  const sender = spawnChild(ctx, label, 'sender', ['--raw', 'send', '--host', '127.0.0.1', '--port', port, file]);
  const recipient = spawnChild(ctx, label, 'recipient', ['--raw', 'receive', '--host', '127.0.0.1', '--port', port, outFile]);
  const trio = { relay, sender, recipient };
  const end = await finish(trio);

  const first = await recipient.waitForLine('first-byte', match(/^first-byte$/, 'stdout'));
  const last = await recipient.waitForLine('data-end', match(/^data-end \d+$/, 'stdout'));
  const synced = await recipient.waitForLine('synced', match(/^synced$/, 'stdout'));
  const processes = await costs(trio);
  log(`${label}: verifying`);
  const check = await verify(outFile, expected);
  await rm(outDir, { recursive: true, force: true });
  return result({
    label,
    path: 'raw',
    bytes,
    wallS: (end - recipient.startedAt) / 1000,
    setupS: (first.at - recipient.startedAt) / 1000,
    dataS: (last.at - first.at) / 1000,
    commitS: (synced.at - last.at) / 1000,
    ...check,
    processes,
  });
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The top functions of the large tsc-croc run's sender and recipient (all profiles stay in `dir`). */
async function profileSummaries(dir: string, label: string): Promise<string> {
  const wanted = [`${slug(label)}-sender.cpuprofile`, `${slug(label)}-recipient.cpuprofile`];
  const present = new Set(await readdir(dir));
  return wanted
    .filter((f) => present.has(f))
    .map((f) => summarizeProfileFile(join(dir, f)))
    .join('\n\n');
}

async function main(): Promise<void> {
  const cfg = readConfig(process.env);
  const tmp = await mkdtemp(join(tmpdir(), 'tsc-croc-bench-'));
  const group = new ChildGroup();
  const ctx: Context = { cfg, group, tmp };
  let cleaned: Promise<void> | null = null;
  const cleanup = () => (cleaned ??= group.killAll().finally(() => rm(tmp, { recursive: true, force: true })));
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping the children and removing ${tmp}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await mkdir(join(tmp, 'src'));
    await mkdir(join(tmp, 'stats'));
    if (cfg.profileDir) await mkdir(cfg.profileDir, { recursive: true });
    const smallBytes = Math.max(1, Math.floor(cfg.bytes / 4));
    const largeFile = join(tmp, 'src', `random-${cfg.bytes}.bin`);
    const smallFile = join(tmp, 'src', `random-${smallBytes}.bin`);
    log(`writing ${formatSize(cfg.bytes)} and ${formatSize(smallBytes)} of random bytes under ${tmp}`);
    await writeRandomFile(largeFile, cfg.bytes);
    await writeRandomFile(smallFile, smallBytes);
    const [largeHash, smallHash] = [await sha256File(largeFile), await sha256File(smallFile)];

    const large = await runTscCroc(ctx, `tsc-croc ${formatSize(cfg.bytes)}`, largeFile, cfg.bytes, largeHash);
    const raw = await runRaw(ctx, `raw ${formatSize(cfg.bytes)}`, largeFile, cfg.bytes, largeHash);
    const small = await runTscCroc(ctx, `tsc-croc ${formatSize(smallBytes)}`, smallFile, smallBytes, smallHash);

    const cpu = cpus();
    const env =
      `tsc-croc transfer benchmark: node ${process.version}, ${cpu.length} CPU(s) ${cpu[0]?.model ?? ''}, ${process.platform}, ` +
      `temp folder ${tmpdir()}${cfg.warmUp ? ', page cache warmed before each run' : ''}${cfg.profileDir ? ', PROFILING (timings perturbed)' : ''}`;
    const ratioData = large.dataMBps / raw.dataMBps;
    const ratioWall = large.wallMBps / raw.wallMBps;
    process.stdout.write(`${renderReport({ large, raw, small, ratioData, ratioWall, env })}\n\n`);
    const json = {
      node: process.version,
      cpus: cpu.length,
      cpuModel: cpu[0]?.model,
      platform: process.platform,
      profiling: !!cfg.profileDir,
      warmUp: cfg.warmUp,
      runs: [large, raw, small],
      ratio: { data: ratioData, wall: ratioWall },
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    if (cfg.out) await writeFile(cfg.out, `${JSON.stringify(json, null, 2)}\n`);
    if (cfg.profileDir) process.stdout.write(`\nCPU profiles in ${cfg.profileDir}\n\n${await profileSummaries(cfg.profileDir, large.label)}\n`);
    const bad = [large, raw, small].filter((r) => !r.verified);
    if (bad.length > 0) throw new Error(`SHA-256 mismatch in ${bad.map((r) => r.label).join(', ')}`);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`bench: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
