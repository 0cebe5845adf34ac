/**
 * Benchmark child processes, each with its own CPU time and peak RSS:
 * - by default through bench/measured.ts (the current checkout's CLI, or a raw peer), which writes
 *   its process.resourceUsage() at exit;
 * - `program: { node: SCRIPT }`: any build of the CLI (`node --require rusage-hook.cjs SCRIPT ...`);
 *   the preloaded hook writes the same record at exit (bench/rusage-hook.ts);
 * - `program: { exec: FILE }`: a native program (socat) under `timeout` and GNU `/usr/bin/time`,
 *   whose output file gives the same figures.
 * Output lines are timestamped on arrival (performance.now() in this process), every child has a
 * deadline after which its process group is killed, and a ChildGroup kills whatever is still
 * running when the benchmark stops, even on failure. Children run in their own process group
 * (detached), so a kill also reaches what they started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { StatsRecord } from './measured.js';

const MEASURED = fileURLToPath(new URL('./measured.js', import.meta.url));
/** Preloaded into a CLI under test (--require: a path). */
const RUSAGE_HOOK = fileURLToPath(new URL('./rusage-hook.cjs', import.meta.url));
/** GNU time: elapsed s, user s, system s, max RSS KiB, minor faults, voluntary and involuntary switches. */
const GNU_TIME_FORMAT = 'gnu-time %e %U %S %M %R %w %c';
const MAX_LINES = 20_000;
const TAIL_LINES = 15;

export interface Line {
  stream: 'stdout' | 'stderr';
  text: string;
  /** performance.now() when this process read it. */
  at: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() at the child's exit. */
  at: number;
  timedOut: boolean;
}

/** What one process cost, from its own resourceUsage(). */
export interface ProcessCost {
  userCpuS: number;
  systemCpuS: number;
  cpuS: number;
  peakRssMiB: number;
  /** Page faults served without I/O (each fresh page of memory touched costs one). */
  minorPageFaults: number;
  voluntaryContextSwitches: number;
  involuntaryContextSwitches: number;
}

export interface SpawnOptions {
  name: string;
  /** Arguments after the stats file: tsc-croc CLI arguments, or `--raw <role> ...`. */
  args: string[];
  statsFile: string;
  timeoutMs: number;
  /** Options for node itself, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** What to run instead of measured.ts (see the header). */
  program?: { node: string } | { exec: string };
  cwd?: string;
}

export class MeasuredChild {
  readonly name: string;
  readonly statsFile: string;
  readonly startedAt: number;
  /** Resolves once the child has exited and its output is read; never rejects. */
  readonly exited: Promise<ExitInfo>;
  readonly #proc: ChildProcess;
  readonly #timeoutMs: number;
  readonly #lines: Line[] = [];
  readonly #waiters = new Set<{ what: string; check: (l: Line) => boolean; fail: (e: Error) => void }>();
  #exit: ExitInfo | null = null;

  constructor(o: SpawnOptions) {
    this.name = o.name;
    this.statsFile = o.statsFile;
    this.#timeoutMs = o.timeoutMs;
    this.startedAt = performance.now();
    let command = process.execPath;
    let argv = [...(o.nodeArgs ?? []), MEASURED, o.statsFile, ...o.args];
    let env = o.env ?? process.env;
    if (o.program && 'node' in o.program) {
      argv = [...(o.nodeArgs ?? []), '--require', RUSAGE_HOOK, o.program.node, ...o.args];
      env = { ...env, BENCH_STATS_FILE: o.statsFile };
    } else if (o.program) {
      // timeout puts the command in its own process group and kills all of it at the deadline
      command = 'timeout';
      const s = String(Math.ceil(o.timeoutMs / 1000) + 5);
      argv = ['-k', '5', s, '/usr/bin/time', '-f', GNU_TIME_FORMAT, '-o', o.statsFile, o.program.exec, ...o.args];
    }
    this.#proc = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true, ...(o.cwd ? { cwd: o.cwd } : {}) });
    this.#capture('stdout');
    this.#capture('stderr');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#killGroup();
    }, o.timeoutMs);
    let exitAt = 0;
    this.#proc.once('exit', () => (exitAt = performance.now()));
    this.exited = new Promise<ExitInfo>((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        if (this.#exit) return;
        this.#exit = { code, signal, at: exitAt || performance.now(), timedOut };
        for (const w of this.#waiters) w.fail(this.#failure(`before ${w.what}`));
        this.#waiters.clear();
        resolve(this.#exit);
      };
      this.#proc.once('close', finish);
      this.#proc.once('error', (e) => {
        this.#lines.push({ stream: 'stderr', text: `spawn failed: ${e.message}`, at: performance.now() });
        finish(null, null);
      });
    });
  }

  get running(): boolean {
    return this.#exit === null;
  }

  /** Killed for running past its deadline. */
  get timedOut(): boolean {
    return this.#exit?.timedOut ?? false;
  }

  /** The first line (already seen or still to come) that `test` accepts; rejects if the child exits first. */
  waitForLine(what: string, test: (l: Line) => boolean): Promise<Line> {
    const seen = this.#lines.find(test);
    if (seen) return Promise.resolve(seen);
    if (this.#exit) return Promise.reject(this.#failure(`before ${what}`));
    return new Promise((resolve, reject) => {
      const w = {
        what,
        check: (l: Line) => {
          if (!test(l)) return false;
          this.#waiters.delete(w);
          resolve(l);
          return true;
        },
        fail: reject,
      };
      this.#waiters.add(w);
    });
  }

  lines(stream?: Line['stream']): Line[] {
    return stream ? this.#lines.filter((l) => l.stream === stream) : [...this.#lines];
  }

  /** Resolves when the child exited with code 0; otherwise rejects with its exit and the tail of its stderr. */
  async succeeded(): Promise<ExitInfo> {
    const e = await this.exited;
    if (e.timedOut || e.code !== 0) throw this.failure();
    return e;
  }

  /** An error describing how the child ended (or that it is still running), with the tail of its stderr. */
  failure(): Error {
    return this.#failure('');
  }

  /** The child's process id (undefined if it could not be spawned). */
  get pid(): number | undefined {
    return this.#proc.pid;
  }

  /** Signal the child itself (not its group). */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.#proc.kill(sig);
  }

  /** SIGKILL the child's process group (it runs detached, so the group is its own). */
  #killGroup(): void {
    const pid = this.#proc.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      this.#proc.kill('SIGKILL');
    }
  }

  /** Kill the child and everything in its process group. */
  kill(): void {
    if (this.running) this.#killGroup();
  }

  /** The child's own resource usage, written by measured.ts at its exit. */
  async cost(): Promise<ProcessCost> {
    let u: Pick<NodeJS.ResourceUsage, 'userCPUTime' | 'systemCPUTime' | 'maxRSS' | 'minorPageFault' | 'voluntaryContextSwitches' | 'involuntaryContextSwitches'>;
    try {
      const text = await readFile(this.statsFile, 'utf8');
      u = text.startsWith('{') ? (JSON.parse(text) as StatsRecord).usage : parseGnuTime(text);
    } catch (e) {
      throw new Error(`${this.name}: no usable stats in ${this.statsFile} (${(e as Error).message})`);
    }
    return toCost(u);
  }

  #failure(when: string): Error {
    const e = this.#exit;
    const how = !e
      ? 'is still running'
      : e.timedOut
        ? `timed out after ${(this.#timeoutMs / 1000).toFixed(1)} s and was killed`
        : e.signal
          ? `was killed by ${e.signal}`
          : `exited with code ${e.code}`;
    const tail = this.#lines
      .filter((l) => l.stream === 'stderr')
      .slice(-TAIL_LINES)
      .map((l) => `    ${l.text}`)
      .join('\n');
    return new Error(`${this.name} ${how}${when ? ` ${when}` : ''}${tail ? `; its stderr ends with:\n${tail}` : ''}`);
  }

  #capture(stream: Line['stream']): void {
    const src = this.#proc[stream];
    if (!src) return;
    src.setEncoding('utf8');
    let partial = '';
    const add = (text: string) => {
      const line: Line = { stream, text, at: performance.now() };
      if (this.#lines.length < MAX_LINES) this.#lines.push(line);
      for (const w of [...this.#waiters]) w.check(line);
    };
    src.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) add(p);
    });
    src.on('end', () => {
      if (partial) add(partial);
      partial = '';
    });
  }
}

/** The children of one benchmark: spawned through it, killed by it when the benchmark stops. */
export class ChildGroup {
  readonly #children = new Set<MeasuredChild>();

  spawn(o: SpawnOptions): MeasuredChild {
    const c = new MeasuredChild(o);
    this.#children.add(c);
    void c.exited.then(() => this.#children.delete(c));
    return c;
  }

  /** SIGKILL every child still running (and its process group) and wait for them to go. */
  async killAll(): Promise<void> {
    const live = [...this.#children].filter((c) => c.running);
    for (const c of live) c.kill();
    await Promise.all(live.map((c) => c.exited));
  }
}

/** The last line of GNU time's -o file in GNU_TIME_FORMAT (earlier lines may say how the command ended). */
function parseGnuTime(text: string): ReturnType<typeof resourceUsageShape> {
  const line = text
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('gnu-time '));
  if (line === undefined) throw new Error('no gnu-time line');
  const [, , user, sys, rss, minor, vol, invol] = line.split(' ').map(Number);
  if ([user, sys, rss, minor, vol, invol].some((n) => n === undefined || !Number.isFinite(n))) throw new Error(`bad gnu-time line: ${line}`);
  return resourceUsageShape(user!, sys!, rss!, minor!, vol!, invol!);
}

function resourceUsageShape(userS: number, sysS: number, maxRssKiB: number, minor: number, vol: number, invol: number) {
  return {
    userCPUTime: userS * 1e6,
    systemCPUTime: sysS * 1e6,
    maxRSS: maxRssKiB,
    minorPageFault: minor,
    voluntaryContextSwitches: vol,
    involuntaryContextSwitches: invol,
  };
}

type UsageFigures = ReturnType<typeof resourceUsageShape>;

function toCost(u: UsageFigures): ProcessCost {
  return {
    userCpuS: u.userCPUTime / 1e6,
    systemCpuS: u.systemCPUTime / 1e6,
    cpuS: (u.userCPUTime + u.systemCPUTime) / 1e6,
    peakRssMiB: u.maxRSS / 1024,
    minorPageFaults: u.minorPageFault,
    voluntaryContextSwitches: u.voluntaryContextSwitches,
    involuntaryContextSwitches: u.involuntaryContextSwitches,
  };
}

/** A process's cost from what GNU time wrote with GNU_TIME_FORMAT (see gnuTimeArgs). */
export function costFromGnuTime(text: string): ProcessCost {
  return toCost(parseGnuTime(text));
}

/** `/usr/bin/time` arguments that make it write the figures costFromGnuTime reads into `file`. */
export const gnuTimeArgs = (file: string): string[] => ['-f', GNU_TIME_FORMAT, '-o', file];
