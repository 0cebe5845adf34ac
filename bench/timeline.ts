/**
 * Where the time of a 1 KiB transfer goes, and an A/B comparison of builds:
 *
 *   node dist/bench/timeline.js [RUNS] [CLI ...]
 *
 * For each CLI (default: BENCH_CLI or this checkout's), RUNS transfers of a 1 KiB file through one
 * relay of this checkout, the CLIs taking turns (A B A B ...: a noisy machine's load falls on all
 * alike). Each transfer is started as bench/harness.ts transfer() does: the sender, and once it
 * printed its code, the recipient (both --no-local, no progress bar). Both peers run with
 * TSC_CROC_TRACE=1 (src/transfer/trace.ts; a build without it just has fewer marks) and with
 * bench/rusage-hook.cjs preloaded, so each process's CPU time (user + system) is exact.
 *
 * Prints, per CLI, one timeline (every mark of both sides in ms from the sender's spawn, median
 * of the runs, with the range) unless TIMELINE_SUMMARY=1, then a summary per CLI: medians of the
 * wall time (sender's spawn to both exits), the code line, the recipient's start to its join,
 * and each side's CPU. Extra node options for both peers: TIMELINE_NODE_OPTIONS (e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/p"). The peers inherit this process's environment: run it with
 * NODE_EXTRA_CA_CERTS unset to see the bare-node floor.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { binOf, CHECKOUT } from './config.js';
import { median } from './harness.js';

interface Mark {
  side: 'S' | 'R' | 'bench';
  label: string;
  /** ms from the sender's spawn. */
  at: number;
}

interface Run {
  marks: Mark[];
  wallMs: number;
  senderCpuMs: number;
  recipientCpuMs: number;
}

const runs = Number(process.argv[2] ?? 5);
if (!Number.isSafeInteger(runs) || runs < 1) throw new RangeError('RUNS must be a positive integer');
const clis = process.argv.length > 3 ? process.argv.slice(3).map((c) => resolve(c)) : [process.env.BENCH_CLI ? resolve(process.env.BENCH_CLI) : binOf(CHECKOUT)];
const nodeOpts = (process.env.TIMELINE_NODE_OPTIONS ?? '').split(' ').filter((s) => s !== '');
const HOOK = fileURLToPath(new URL('./rusage-hook.cjs', import.meta.url));
const RELAY_ENV = { TSC_CROC_RELAY_JOIN_RATE: '1000000', TSC_CROC_RELAY_CHANNEL_RATE: '1000000' };
const epochNow = () => performance.timeOrigin + performance.now();

function start(cli: string, args: string[], env: NodeJS.ProcessEnv, onLine: (stream: 'out' | 'err', line: string, at: number) => void, preload = true) {
  const child = spawn(process.execPath, [...nodeOpts, ...(preload ? ['--require', HOOK] : []), cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  createInterface({ input: child.stdout! }).on('line', (l) => onLine('out', l, epochNow()));
  createInterface({ input: child.stderr! }).on('line', (l) => onLine('err', l, epochNow()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exited = once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, at: epochNow() };
  });
  return { child, exited };
}

async function cpuMs(statsFile: string): Promise<number> {
  const { usage } = JSON.parse(await readFile(statsFile, 'utf8')) as { usage: NodeJS.ResourceUsage };
  return (usage.userCPUTime + usage.systemCPUTime) / 1000;
}

const tmp = await mkdtemp(join(tmpdir(), 'tsc-croc-timeline-'));
const file = join(tmp, 'tiny.bin');
await writeFile(file, Buffer.alloc(1024, 7));
const baseEnv: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: tmp };
delete baseEnv.TSC_CROC_TRACE;
let relayUrl = '';
const relay = start(binOf(CHECKOUT), ['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet'], { ...baseEnv, ...RELAY_ENV }, (_s, l) => {
  const m = /HTTP on 127\.0\.0\.1:(\d+)/.exec(l);
  if (m) relayUrl = `http://127.0.0.1:${m[1]}`;
}, false);

async function transfer(cli: string, n: number): Promise<Run> {
  const marks: Mark[] = [];
  const errors: string[] = [];
  const traceEnv = { ...baseEnv, TSC_CROC_TRACE: process.env.TIMELINE_TRACE === '0' ? '0' : '1' };
  const sStats = join(tmp, `s-${n}.json`);
  const rStats = join(tmp, `r-${n}.json`);
  const t0 = epochNow();
  let code = '';
  let onCode: () => void = () => {};
  const gotCode = new Promise<void>((r) => (onCode = r));
  const collect = (side: 'S' | 'R') => (stream: 'out' | 'err', l: string, at: number) => {
    const m = /^tsc-croc-trace \S+ (\S+) \d+ (.*)$/.exec(l);
    if (m) marks.push({ side, label: m[2]!, at: Number(m[1]) - t0 });
    else if (stream === 'err') errors.push(`${side}: ${l}`);
    else if (/^Code is: /.test(l)) {
      code = l.slice('Code is: '.length);
      marks.push({ side: 'bench', label: 'code line read', at: at - t0 });
      onCode();
    }
  };
  const out = join(tmp, `out-${n}`);
  await mkdir(out);
  const sender = start(cli, ['send', '--relay', relayUrl, '--no-local', '--no-progress', file], { ...traceEnv, BENCH_STATS_FILE: sStats }, collect('S'));
  await Promise.race([gotCode, sender.exited]);
  if (code === '') throw new Error(`the sender printed no code:\n${errors.slice(-20).join('\n')}`);
  marks.push({ side: 'bench', label: 'recipient spawned', at: epochNow() - t0 });
  const recipient = start(
    cli,
    ['receive', '--relay', relayUrl, '--no-local', '--yes', '--no-progress', '--json', '--out', out],
    { ...traceEnv, TSC_CROC_SECRET: code, BENCH_STATS_FILE: rStats },
    collect('R'),
  );
  const [s, r] = await Promise.all([sender.exited, recipient.exited]);
  if (s.code !== 0 || r.code !== 0) throw new Error(`${cli}: sender exited ${s.code}, recipient ${r.code}:\n${errors.slice(-20).join('\n')}`);
  marks.push({ side: 'bench', label: 'sender exited', at: s.at - t0 }, { side: 'bench', label: 'recipient exited', at: r.at - t0 });
  await rm(out, { recursive: true, force: true });
  return { marks, wallMs: Math.max(s.at, r.at) - t0, senderCpuMs: await cpuMs(sStats), recipientCpuMs: await cpuMs(rStats) };
}

function printTimeline(cli: string, all: Run[]): void {
  // one row per (side, label, occurrence), ordered by median time
  const rows = new Map<string, { side: Mark['side']; label: string; ats: number[] }>();
  for (const { marks } of all) {
    const seen = new Map<string, number>();
    for (const m of marks) {
      const n = (seen.get(`${m.side} ${m.label}`) ?? 0) + 1;
      seen.set(`${m.side} ${m.label}`, n);
      const key = `${m.side} ${m.label} #${n}`;
      const row = rows.get(key) ?? { side: m.side, label: n > 1 ? `${m.label} (${n})` : m.label, ats: [] };
      row.ats.push(m.at);
      rows.set(key, row);
    }
  }
  process.stdout.write(`\n${cli}: 1 KiB timeline, ${all.length} runs, ms from the sender's spawn (median, min-max)\n`);
  for (const r of [...rows.values()].sort((a, b) => median(a.ats) - median(b.ats))) {
    const who = { S: 'sender   ', R: 'recipient', bench: 'bench    ' }[r.side];
    const text = `${median(r.ats).toFixed(1).padStart(7)} (${Math.min(...r.ats).toFixed(0)}-${Math.max(...r.ats).toFixed(0)})`;
    process.stdout.write(`${text.padEnd(20)}${who}  ${r.label}${r.ats.length < all.length ? ` [${r.ats.length}/${all.length} runs]` : ''}\n`);
  }
}

const markAt = (run: Run, side: Mark['side'], label: RegExp): number => run.marks.find((m) => m.side === side && label.test(m.label))?.at ?? NaN;

try {
  const deadline = Date.now() + 20_000;
  while (relayUrl === '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (relayUrl === '') throw new Error('the relay did not start');
  const results = new Map<string, Run[]>(clis.map((c) => [c, []]));
  let n = 0;
  for (let i = 0; i < runs; i++) for (const cli of clis) results.get(cli)!.push(await transfer(cli, n++));
  if (process.env.TIMELINE_SUMMARY !== '1') for (const [cli, all] of results) printTimeline(cli, all);
  process.stdout.write(`\nsummary, ${runs} runs each, alternating; medians in ms (NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'})\n`);
  process.stdout.write(`${'wall'.padStart(7)} ${'code'.padStart(7)} ${'R join'.padStart(7)} ${'S CPU'.padStart(7)} ${'R CPU'.padStart(7)}  CLI\n`);
  for (const [cli, all] of results) {
    const f = (xs: number[]) => median(xs.filter((x) => Number.isFinite(x))).toFixed(1).padStart(7);
    process.stdout.write(
      `${f(all.map((r) => r.wallMs))} ${f(all.map((r) => markAt(r, 'bench', /^code line read$/)))} ${f(all.map((r) => markAt(r, 'R', /^http: POST \/join sent/) - markAt(r, 'bench', /^recipient spawned$/)))} ${f(all.map((r) => r.senderCpuMs))} ${f(all.map((r) => r.recipientCpuMs))}  ${cli}\n`,
    );
  }
} finally {
  relay.child.kill('SIGTERM');
  await relay.exited;
  await rm(tmp, { recursive: true, force: true });
}
