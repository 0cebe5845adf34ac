/**
 * Benchmark child processes: each runs through bench/measured.ts, so its CPU time and peak RSS
 * come from its own process.resourceUsage(). Output lines are timestamped on arrival
 * (performance.now() in this process), every child has a deadline after which it is killed,
 * and a ChildGroup kills whatever is still running when the benchmark stops, even on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { StatsRecord } from './measured.js';

const MEASURED = fileURLToPath(new URL('./measured.js', import.meta.url));
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
    this.#proc = spawn(process.execPath, [...(o.nodeArgs ?? []), MEASURED, o.statsFile, ...o.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: o.env ?? process.env,
    });
    this.#capture('stdout');
    this.#capture('stderr');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#proc.kill('SIGKILL');
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

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.#proc.kill(sig);
  }

  /** The child's own resource usage, written by measured.ts at its exit. */
  async cost(): Promise<ProcessCost> {
    let rec: StatsRecord;
    try {
      rec = JSON.parse(await readFile(this.statsFile, 'utf8')) as StatsRecord;
    } catch (e) {
      throw new Error(`${this.name}: no usable stats in ${this.statsFile} (${(e as Error).message})`);
    }
    const u = rec.usage;
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

  /** SIGKILL every child still running and wait for them to go. */
  async killAll(): Promise<void> {
    const live = [...this.#children].filter((c) => c.running);
    for (const c of live) c.signal('SIGKILL');
    await Promise.all(live.map((c) => c.exited));
  }
}
