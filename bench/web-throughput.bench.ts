/**
 * The page's receive rate as a user gets it: `tsc-croc send` of a file (default 1 GiB,
 * BENCH_WEB_MB to change) received in headless Chromium with ?save=download, Chromium driven
 * through a bare DevTools connection of our own that enables only what it needs (Performance for
 * the heap, Browser for the download). Playwright enables the Network domain on every page, and
 * then Chromium copies every WebSocket frame, base64-encoded, to the DevTools client: that costs
 * ~20 CPU-seconds per GiB in Chromium's browser and renderer processes and caps the page near
 * 60 MiB/s on a loaded 2-core machine, which no user sees. BENCH_WEB_DEVTOOLS_NETWORK=1 turns the
 * Network domain on here too, to show the difference.
 *
 * Prints the rate, the page's JS heap and the renderer's resident memory (sampled every 250 ms:
 * received bytes held in ArrayBuffers show in the RSS, not in the heap), the CPU seconds of the
 * relay, the sender and each kind of Chromium process, and checks the downloaded bytes by hash.
 * BENCH_WEB_PROFILE=FILE writes the page's CPU profile (summarize: node dist/bench/profile-summary.js FILE).
 *
 * Run: npm run build && node dist/bench/web-throughput.bench.js   (needs /usr/bin/chromium)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { CHROMIUM, OFFLINE_FLAGS } from '../test/helpers/browser.js';
import { runCli, startCliRelay } from '../test/helpers/cli.js';
import { cpuSeconds, writeBlocks } from './web-files.js';

const MB = Number(process.env.BENCH_WEB_MB ?? 1024);
const WITH_NETWORK = process.env.BENCH_WEB_DEVTOOLS_NETWORK === '1';
const PROFILE = process.env.BENCH_WEB_PROFILE;
const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
const sha = async (p: string) => {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
};
const rssOf = (pid: number): number => {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
};

/** A bare DevTools protocol client (flat sessions): commands by id, events to listeners. */
class Cdp {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(method: string, params: Record<string, unknown>, sessionId?: string) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: Record<string, unknown>; sessionId?: string };
      if (m.id !== undefined) {
        const w = this.#waiting.get(m.id);
        this.#waiting.delete(m.id);
        if (m.error) w?.reject(new Error(m.error.message));
        else w?.resolve(m.result);
      } else if (m.method) for (const l of this.#listeners) l(m.method, m.params ?? {}, m.sessionId);
    });
  }

  static connect(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
      ws.once('open', () => resolve(new Cdp(ws)));
      ws.once('error', reject);
    });
  }

  send<T = Record<string, unknown>>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  /** The first event `method` whose params satisfy `ok`, within `ms`. */
  event(method: string, ok: (p: Record<string, unknown>) => boolean, ms: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(l);
        reject(new Error(`no ${method} within ${ms} ms`));
      }, ms);
      const l = (m: string, p: Record<string, unknown>) => {
        if (m !== method || !ok(p)) return;
        clearTimeout(timer);
        this.#listeners.delete(l);
        resolve(p);
      };
      this.#listeners.add(l);
    });
  }

  close(): void {
    this.#ws.close();
  }
}

const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-webrate-'));
const downloads = join(dir, 'downloads');
const profileDir = join(dir, 'chromium');
await mkdir(downloads);
const relay = await startCliRelay();
const chromium = spawn(CHROMIUM, [...OFFLINE_FLAGS, '--headless', '--no-sandbox', `--user-data-dir=${profileDir}`, '--remote-debugging-port=0', 'about:blank'], { stdio: 'ignore' });
try {
  // the DevTools endpoint Chromium writes once it listens
  const portFile = join(profileDir, 'DevToolsActivePort');
  for (let i = 0; i < 300 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 100));
  const [port, path] = readFileSync(portFile, 'utf8').split('\n');
  const cdp = await Cdp.connect(`ws://127.0.0.1:${port}${path}`);
  const { product } = await cdp.send<{ product: string }>('Browser.getVersion');

  const file = join(dir, 'big.bin');
  await writeBlocks(file, MB);
  const sender = runCli(['send', '--no-local', '--no-progress', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);

  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads, eventsEnabled: true });
  const { targetId } = await cdp.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
  const page = <T = Record<string, unknown>>(method: string, params: object = {}) => cdp.send<T>(method, params, sessionId);
  /** Evaluate `expression` in the page (a promise is awaited). */
  const evaluate = async (expression: string): Promise<unknown> => {
    const r = await page<{ result: { value?: unknown }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true, userGesture: true });
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.text}`);
    return r.result.value;
  };
  /** In the page: wait (bounded) until the test id's text matches `re`; its text. */
  const waitText = (testId: string, re: string, ms: number) =>
    evaluate(`(async () => { const end = Date.now() + ${ms}; for (;;) { const t = document.querySelector('[data-testid="${testId}"]')?.textContent ?? ''; if (/${re}/.test(t)) return t; if (Date.now() > end) throw new Error('${testId} reads ' + t); await new Promise((r) => setTimeout(r, 50)); } })()`) as Promise<string>;
  await page('Performance.enable');
  if (WITH_NETWORK) await page('Network.enable');
  await page('Page.navigate', { url: `${relay.url}/?save=download#${code}` });
  await waitText('offer', 'big\\.bin', 60_000);

  const { processInfo } = await cdp.send<{ processInfo: { type: string; id: number }[] }>('SystemInfo.getProcessInfo');
  const renderers = processInfo.filter((p) => p.type === 'renderer').map((p) => p.id);
  const chromiumCpu = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const p of (await cdp.send<{ processInfo: { type: string; cpuTime: number }[] }>('SystemInfo.getProcessInfo')).processInfo) out[p.type] = (out[p.type] ?? 0) + p.cpuTime;
    return out;
  };
  const samples: { used: number; rss: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { metrics } = await page<{ metrics: { name: string; value: number }[] }>('Performance.getMetrics');
      samples.push({ used: metrics.find((x) => x.name === 'JSHeapUsedSize')?.value ?? 0, rss: Math.max(0, ...renderers.map(rssOf)) });
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  if (PROFILE) {
    await page('Profiler.enable');
    await page('Profiler.setSamplingInterval', { interval: 500 });
    await page('Profiler.start');
  }
  const completed = cdp.event('Browser.downloadProgress', (p) => p.state === 'completed' || p.state === 'canceled', 30 * 60_000);
  const cpu0 = { relay: cpuSeconds(relay.proc.child.pid), sender: cpuSeconds(sender.child.pid), chromium: await chromiumCpu() };
  const t0 = Date.now();
  await evaluate(`document.querySelector('[data-testid="accept"]').click()`);
  const status = await waitText('status', '^done$|\\[ERR_', 30 * 60_000);
  const secs = (Date.now() - t0) / 1000;
  const cpu = { relay: cpuSeconds(relay.proc.child.pid) - cpu0.relay, sender: cpuSeconds(sender.child.pid) - cpu0.sender, chromium: await chromiumCpu() };
  sampling = false;
  await sampler;
  if (PROFILE) writeFileSync(PROFILE, JSON.stringify((await page<{ profile: object }>('Profiler.stop')).profile));
  const progress = await completed;
  const got = (await readdir(downloads)).filter((n) => !n.endsWith('.crdownload'));
  const same = got.length === 1 && (await sha(join(downloads, got[0]!))) === (await sha(file));
  const used = samples.map((s) => s.used);
  const rss = samples.map((s) => s.rss);
  console.log(`${product}${WITH_NETWORK ? ' (DevTools Network domain on)' : ''}: ${MB} MiB received in the page in ${secs.toFixed(1)} s (${(MB / secs).toFixed(0)} MiB/s), status "${status}", download ${String(progress.state)}, bytes ${same ? 'identical' : 'DIFFER'}`);
  console.log(`JS heap used: first ${mib(used[0]!)} MiB, peak ${mib(Math.max(...used))} MiB over ${samples.length} samples; renderer RSS: first ${mib(rss[0]!)} MiB, peak ${mib(Math.max(...rss))} MiB, last ${mib(rss.at(-1)!)} MiB`);
  const byType = Object.entries(cpu.chromium).map(([type, t]) => `${type.replace(/\.mojom\.\w+$/, '')} ${(t - (cpu0.chromium[type] ?? 0)).toFixed(2)}`);
  console.log(`CPU seconds during the transfer: relay ${cpu.relay.toFixed(2)}, sender ${Number.isNaN(cpu.sender) ? 'n/a (it had exited)' : cpu.sender.toFixed(2)}; Chromium: ${byType.join(', ')}`);
  await sender.exit(60_000);
  cdp.close();
  if (!same || status !== 'done') process.exitCode = 1;
} finally {
  chromium.kill();
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
}
