/**
 * What every measure of `npm run bench` shares: the run's context, the CLI under test started as
 * measured child processes (relay, sender, recipient on 127.0.0.1, --no-local on both peers), and
 * the rows of the result table.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ChildGroup, type Line, type MeasuredChild, type ProcessCost } from './child.js';
import type { BenchConfig } from './config.js';
import { procCpuS, procMemMiB } from './proc.js';

/** One row of the result table. */
export interface Row {
  /** Stable across builds and sizes (the JSON's key for comparisons, see bench/compare.ts). */
  id: string;
  measure: string;
  value: string;
  target: string;
  /** true: meets the target; false: misses it; null: nothing to judge (no target, not available). */
  pass: boolean | null;
  /** The sizes differ from the target's (quick run): the verdict is only indicative. */
  indicative?: boolean;
  /** The row's numbers, for the JSON. */
  figures: Record<string, number | string | boolean | null>;
}

export interface MeasureResult {
  name: string;
  rows: Row[];
  /** Every run's raw figures, for the JSON. */
  details: unknown;
  /** Lines printed under the table. */
  notes?: string[];
}

export const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
export const fmt = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

const RELAY_LISTENING = /HTTP on 127\.0\.0\.1:(\d+), TCP on 127\.0\.0\.1:(\d+)/;

/**
 * Limits raised for the bench's relays (TSC_CROC_RELAY_* variables, which every build reads): all
 * peers come from 127.0.0.1, and the default 60 joins per minute and 20 channels per address would
 * refuse the repeated and concurrent runs (so would the 16 HTTP connections and 8 long-polls per
 * address). The checks still run; only their thresholds differ.
 */
const RELAY_ENV = {
  TSC_CROC_RELAY_JOIN_RATE: '1000000',
  TSC_CROC_RELAY_CHANNEL_RATE: '1000000',
  TSC_CROC_RELAY_MAX_CHANNELS_PER_ADDRESS: '5000',
  TSC_CROC_RELAY_MAX_PENDING_SOCKETS_PER_ADDRESS: '1000',
  // 16 concurrent transfers are 32 peers long-polling over their own connections from one address
  TSC_CROC_RELAY_MAX_HTTP_CONNECTIONS_PER_ADDRESS: '1000',
  TSC_CROC_RELAY_MAX_LONG_POLLS_PER_ADDRESS: '1000',
};

export interface RelayChild {
  child: MeasuredChild;
  url: string;
  httpPort: number;
  tcpPort: number;
  pid: number;
  /** CPU seconds it has used so far (Linux /proc). */
  cpuS(): number;
  /** RSS now and its peak so far, MiB (Linux /proc). */
  mem(): { rssMiB: number; hwmMiB: number };
  /** SIGTERM, and wait for it to exit (bounded). */
  stop(): Promise<void>;
}

export interface PairRun {
  /** From the sender's spawn to the exit of both peers, s. */
  wallS: number;
  /** From the sender's spawn to its `Code is:` line, s. */
  codeS: number;
  startedAt: number;
  endedAt: number;
  sender: ProcessCost;
  recipient: ProcessCost;
  /** The recipient's `route` event (relay / lan), if it reports one. */
  route: string | null;
}

export class Bench {
  readonly cfg: BenchConfig;
  readonly group = new ChildGroup();
  /** The run's temp folder. */
  readonly tmp: string;
  #seq = 0;

  constructor(cfg: BenchConfig, tmp: string) {
    this.cfg = cfg;
    this.tmp = tmp;
  }

  log(s: string): void {
    process.stderr.write(`bench: ${s}\n`);
  }

  /** A new empty folder under the run's temp folder. */
  async dir(label: string): Promise<string> {
    const d = join(this.tmp, `${label}-${++this.#seq}`);
    await mkdir(d, { recursive: true });
    return d;
  }

  async remove(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
  }

  /**
   * The children's environment: ours without TSC_CROC_* and BENCH_* settings (and without the
   * variables in `drop`), a private config folder.
   */
  childEnv(extra: Record<string, string> = {}, drop: readonly string[] = []): NodeJS.ProcessEnv {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TSC_CROC_') && !k.startsWith('BENCH_') && !drop.includes(k)));
    return { ...env, XDG_CONFIG_HOME: join(this.tmp, 'config'), ...extra };
  }

  statsFile(name: string): string {
    return join(this.tmp, 'stats', `${++this.#seq}-${name.replace(/[^a-z0-9]+/gi, '-')}.json`);
  }

  /** The CLI under test (BENCH_CLI) as a measured child. */
  spawnCli(name: string, args: string[], env?: NodeJS.ProcessEnv): MeasuredChild {
    return this.group.spawn({
      name,
      args,
      program: { node: this.cfg.cli },
      statsFile: this.statsFile(name),
      timeoutMs: this.cfg.timeoutMs,
      env: env ?? this.childEnv(),
    });
  }

  /** A native program (socat) as a measured child (GNU time). */
  spawnExec(name: string, file: string, args: string[]): MeasuredChild {
    return this.group.spawn({ name, args, program: { exec: file }, statsFile: this.statsFile(name), timeoutMs: this.cfg.timeoutMs, env: this.childEnv() });
  }

  /** A raw peer of bench/raw-peers.ts (through measured.ts). */
  spawnRaw(name: string, args: string[]): MeasuredChild {
    return this.group.spawn({ name, args: ['--raw', ...args], statsFile: this.statsFile(name), timeoutMs: this.cfg.timeoutMs, env: this.childEnv() });
  }

  /** `tsc-croc relay` on 127.0.0.1, ports 0, once it says where it listens. */
  async startRelay(name: string): Promise<RelayChild> {
    const child = this.spawnCli(`${name} relay`, ['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet'], this.childEnv(RELAY_ENV));
    const line = await child.waitForLine('its listening line', (l) => l.stream === 'stderr' && RELAY_LISTENING.test(l.text));
    const m = RELAY_LISTENING.exec(line.text)!;
    const pid = child.pid!;
    return {
      child,
      url: `http://127.0.0.1:${m[1]}`,
      httpPort: Number(m[1]),
      tcpPort: Number(m[2]),
      pid,
      cpuS: () => {
        const c = procCpuS(pid);
        if (c === undefined) throw new Error(`${name} relay: no CPU figure in /proc (has it exited?)`);
        return c;
      },
      mem: () => {
        const r = procMemMiB(pid);
        if (r === undefined) throw new Error(`${name} relay: no memory figure in /proc (has it exited?)`);
        return r;
      },
      stop: async () => {
        child.signal('SIGTERM');
        const t = setTimeout(() => child.kill(), 15_000);
        await child.exited;
        clearTimeout(t);
      },
    };
  }

  /**
   * One transfer with a code agreed beforehand, timed as wormhole-william is (bench/ww-netns.ts):
   * `receive` started first (it waits for its sender), `send` right after it, both with `code` in
   * TSC_CROC_SECRET; from the recipient's spawn to the exit of both.
   */
  async transferTogether(name: string, relay: RelayChild, paths: string[], outDir: string, code: string): Promise<PairRun> {
    const recipient = this.spawnCli(
      `${name} recipient`,
      ['receive', '--relay', relay.url, '--no-local', '--yes', '--no-progress', '--json', '--wait', '30', '--out', outDir],
      this.childEnv({ TSC_CROC_SECRET: code }),
    );
    const sender = this.spawnCli(`${name} sender`, ['send', '--relay', relay.url, '--no-local', '--no-progress', ...paths], this.childEnv({ TSC_CROC_SECRET: code }));
    try {
      const [s, r] = await Promise.all([sender.succeeded(), recipient.succeeded()]);
      return {
        wallS: (Math.max(s.at, r.at) - recipient.startedAt) / 1000,
        codeS: 0,
        startedAt: recipient.startedAt,
        endedAt: Math.max(s.at, r.at),
        sender: await sender.cost(),
        recipient: await recipient.cost(),
        route: 'relay',
      };
    } catch (e) {
      sender.kill();
      recipient.kill();
      throw e;
    }
  }

  /**
   * One transfer with the CLI: `send` of `paths`, then, once it printed its code, `receive` into
   * `outDir` (the code by TSC_CROC_SECRET). Both started fresh, --no-local, no progress bar.
   * `dropEnv`: variables of our environment the two peers do not get (e.g. NODE_EXTRA_CA_CERTS).
   */
  async transfer(name: string, relay: RelayChild, paths: string[], outDir: string, dropEnv: readonly string[] = []): Promise<PairRun> {
    const sender = this.spawnCli(`${name} sender`, ['send', '--relay', relay.url, '--no-local', '--no-progress', ...paths], this.childEnv({}, dropEnv));
    let recipient: MeasuredChild | undefined;
    try {
      const codeLine = await sender.waitForLine('its code', (l: Line) => l.stream === 'stdout' && /^Code is: \S+$/.test(l.text));
      const code = codeLine.text.slice('Code is: '.length);
      recipient = this.spawnCli(
        `${name} recipient`,
        ['receive', '--relay', relay.url, '--no-local', '--yes', '--no-progress', '--json', '--out', outDir],
        this.childEnv({ TSC_CROC_SECRET: code }, dropEnv),
      );
      const [s, r] = await Promise.all([sender.succeeded(), recipient.succeeded()]);
      const route = recipient
        .lines('stdout')
        .map((l) => /"event":"route","via":"(\w+)"/.exec(l.text)?.[1])
        .find((v) => v !== undefined);
      return {
        wallS: (Math.max(s.at, r.at) - sender.startedAt) / 1000,
        codeS: (codeLine.at - sender.startedAt) / 1000,
        startedAt: sender.startedAt,
        endedAt: Math.max(s.at, r.at),
        sender: await sender.cost(),
        recipient: await recipient.cost(),
        route: route ?? null,
      };
    } catch (e) {
      sender.kill();
      recipient?.kill();
      throw e;
    }
  }
}
