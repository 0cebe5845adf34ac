/**
 * wormhole-william side by side, for the "x wormhole-william" rows: runs bench/ww-netns.ts in a
 * private network namespace (root, unshare, twist3 with the magic-wormhole mailbox server and
 * transit relay, wormhole-william; see that file) and asks it for one transfer at a time, so our
 * runs and its runs can alternate within one bench run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { costFromGnuTime, type ProcessCost } from './child.js';
import type { Bench } from './harness.js';

const HELPER = fileURLToPath(new URL('./ww-netns.js', import.meta.url));
const READY_MS = 60_000;

export interface WwRun {
  wallS: number;
  sender: ProcessCost;
  recipient: ProcessCost;
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export class WormholeWilliam {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (o: Record<string, unknown>) => void; timer: NodeJS.Timeout }>();
  readonly #timeoutMs: number;
  #ready: Promise<void>;
  #next = 1;
  #closed = false;

  private constructor(b: Bench, workDir: string) {
    this.#timeoutMs = b.cfg.timeoutMs;
    this.#child = spawn(
      'unshare',
      ['--fork', '--pid', '--kill-child', '--net', '--mount', '--propagation', 'private', '--mount-proc', process.execPath, HELPER, workDir, String(b.cfg.timeoutMs)],
      { stdio: ['pipe', 'pipe', 'pipe'], env: b.childEnv() },
    );
    let err = '';
    this.#child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
    const lines = createInterface({ input: this.#child.stdout! });
    this.#ready = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('wormhole-william servers: not ready in time')), READY_MS);
      lines.on('line', (line) => {
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if ('ready' in o) {
          clearTimeout(t);
          if (o.ready === true) resolve();
          else reject(new Error(`wormhole-william servers: ${String(o.error)}`));
          return;
        }
        const p = this.#pending.get(o.id as number);
        if (p) {
          clearTimeout(p.timer);
          this.#pending.delete(o.id as number);
          p.resolve(o);
        }
      });
      this.#child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`wormhole-william helper exited (${String(code)}): ${err.trim()}`));
        for (const [id, p] of this.#pending) {
          clearTimeout(p.timer);
          p.resolve({ id, ok: false, error: `the helper exited: ${err.trim()}` });
        }
        this.#pending.clear();
      });
    });
    this.#ready.catch(() => undefined);
  }

  /** A running side-by-side helper, or why there is none ("ww: not installed", ...). */
  static async start(b: Bench): Promise<WormholeWilliam | string> {
    if (!b.cfg.ww) return 'ww: off (BENCH_WW=0)';
    const missing = ['wormhole-william', 'twist3', 'unshare', 'ip', 'mount'].filter((c) => !has(c));
    if (missing.length > 0) return `ww: not installed (${missing.join(', ')} missing)`;
    if (process.getuid?.() !== 0) return 'ww: needs root (private network namespace)';
    const ww = new WormholeWilliam(b, await b.dir('ww'));
    try {
      await ww.#ready;
      return ww;
    } catch (e) {
      await ww.close();
      return `ww: unavailable (${(e as Error).message.slice(0, 200)})`;
    }
  }

  /** One wormhole-william transfer of `path` into `outDir`; wall time from the receiver's start to both exits. */
  async transfer(kind: 'file' | 'dir', path: string, outDir: string): Promise<WwRun> {
    const id = this.#next++;
    const code = `${40 + id}-bench-${kind}-${id}`;
    const answer = await new Promise<Record<string, unknown>>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve({ id, ok: false, error: 'no answer in time' });
      }, this.#timeoutMs + 10_000);
      this.#pending.set(id, { resolve, timer });
      this.#child.stdin!.write(`${JSON.stringify({ id, kind, path, outDir, code })}\n`);
    });
    if (answer.ok !== true) throw new Error(`wormhole-william: ${String(answer.error)}`);
    return { wallS: answer.wallS as number, sender: costFromGnuTime(answer.sender as string), recipient: costFromGnuTime(answer.recipient as string) };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.stdin!.end();
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await once(this.#child, 'exit');
    clearTimeout(t);
  }
}

/**
 * One reference run of wormhole-william alternating with ours: its result goes into `into`, and the
 * received copy is checked by `same`. A failure does not lose our figures: it returns the text to
 * show instead of the reference, and the remaining runs go without it.
 */
export async function referenceRun(
  b: { dir(label: string): Promise<string>; remove(path: string): Promise<void>; log(s: string): void },
  ww: WormholeWilliam | string,
  kind: 'file' | 'dir',
  src: string,
  same: (out: string) => Promise<boolean>,
  into: WwRun[],
): Promise<WormholeWilliam | string> {
  if (typeof ww === 'string') return ww;
  const out = await b.dir(`${kind}-ww`);
  try {
    into.push(await ww.transfer(kind, src, out));
    if (!(await same(out))) throw new Error('the received copy differs');
    return ww;
  } catch (e) {
    const why = `ww: failed (${(e as Error).message.slice(0, 160)})`;
    b.log(why);
    return why;
  } finally {
    await b.remove(out);
  }
}
