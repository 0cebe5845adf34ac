/**
 * The page's memory while a large file streams into it: `tsc-croc send` of a file (default 1 GiB,
 * BENCH_WEB_MB to change) received in headless Chromium with ?save=download, the page's JS heap
 * sampled every 250 ms through the DevTools protocol (Performance.getMetrics: JSHeapUsedSize,
 * JSHeapTotalSize). Prints the peak, the samples' spread, the rate, and checks the bytes by hash.
 * Run: npm run build && node dist/bench/web-memory.bench.js   (needs /usr/bin/chromium)
 *
 * BENCH_WEB_PROFILE=DIR: also profile it: the page's CPU profile through DevTools (Profiler),
 * the relay and the sender with `node --cpu-prof`, all into DIR, with a summary of each (the page
 * script unminified for the run: dist/web/app.js is rebuilt without minifying, then restored).
 * The CPU seconds of the relay and of the sender are printed in every run.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { launchChromium } from '../test/helpers/browser.js';
import { runCli, startCliRelay } from '../test/helpers/cli.js';
import { summarizeProfileFile } from './profile-summary.js';
import { cpuSeconds, writeBlocks } from './web-files.js';

const PROFILE = process.env.BENCH_WEB_PROFILE;
/** runCli's options for a child profiled into PROFILE/`name`.cpuprofile (node refuses --cpu-prof in NODE_OPTIONS). */
const prof = (name: string) => (PROFILE ? { wrap: ['sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir=${PROFILE} --cpu-prof-name=${name}.cpuprofile "$@"`] } : {});

const MB = Number(process.env.BENCH_WEB_MB ?? 1024);
const sha = async (p: string) => {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
};

/** The relay as startCliRelay starts it, profiled. */
async function profiledRelay(): Promise<{ url: string; proc: ReturnType<typeof runCli>; stop: () => Promise<number> }> {
  const proc = runCli(['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet'], prof('relay'));
  const m = await proc.waitFor(/HTTP on 127\.0\.0\.1:(\d+), TCP on/);
  return {
    url: `http://127.0.0.1:${m[1]}`,
    proc,
    stop: async () => {
      proc.child.kill('SIGTERM');
      return proc.exit(10_000);
    },
  };
}

const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-webmem-'));
const appJs = new URL('../web/app.js', import.meta.url);
const minified = readFileSync(appJs);
if (PROFILE) {
  const esbuild = await import('esbuild');
  // @ts-expect-error the bundler script is plain JavaScript
  const { webBuildOptions, root } = (await import('../../scripts/bundle-web.mjs')) as { webBuildOptions(e: string, o: string): object; root: string };
  await esbuild.build({ ...webBuildOptions(join(root, 'src', 'web', 'main.ts'), appJs.pathname), minify: false, keepNames: true });
}
const relay = PROFILE ? await profiledRelay() : await startCliRelay();
const browser = await launchChromium();
try {
  // a file of pseudo-random 1 MiB blocks (not sparse: every byte is read and encrypted)
  const file = join(dir, 'big.bin');
  await writeBlocks(file, MB);
  const sender = runCli(['send', '--no-local', '--no-progress', '--relay', relay.url, file], prof('sender'));
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(`${relay.url}/?save=download#${code}`);
  await page.getByTestId('offer').waitFor({ timeout: 60_000 });
  // the renderer's resident memory (ArrayBuffers live outside the JS heap: received bytes piling up show here)
  const browserCdp = await browser.newBrowserCDPSession();
  const renderers = async (): Promise<number[]> => {
    const { processInfo } = (await browserCdp.send('SystemInfo.getProcessInfo')) as { processInfo: { type: string; id: number }[] };
    return processInfo.filter((p) => p.type === 'renderer').map((p) => p.id);
  };
  const rssOf = (pid: number): number => {
    try {
      return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  };
  const rendererPids = await renderers();
  /** CPU seconds so far of each of Chromium's processes, by type (browser, renderer, GPU, utility: network, storage). */
  const chromiumCpu = async (): Promise<Record<string, number>> => {
    const { processInfo } = (await browserCdp.send('SystemInfo.getProcessInfo')) as { processInfo: { type: string; id: number; cpuTime: number }[] };
    const out: Record<string, number> = {};
    for (const p of processInfo) out[p.type] = (out[p.type] ?? 0) + p.cpuTime;
    return out;
  };
  const samples: { used: number; total: number; rss: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { metrics } = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
      const m = (n: string) => metrics.find((x) => x.name === n)?.value ?? 0;
      samples.push({ used: m('JSHeapUsedSize'), total: m('JSHeapTotalSize'), rss: Math.max(0, ...rendererPids.map(rssOf)) });
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  if (PROFILE) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
    await cdp.send('Profiler.start');
  }
  const download = page.waitForEvent('download', { timeout: 30 * 60_000 });
  const cpu0 = { relay: cpuSeconds(relay.proc.child.pid), sender: cpuSeconds(sender.child.pid), chromium: await chromiumCpu() };
  const t0 = Date.now();
  await page.getByTestId('accept').click();
  const d = await download;
  await page.getByTestId('status').filter({ hasText: /^done$|\[ERR_/ }).waitFor({ timeout: 30 * 60_000 });
  const secs = (Date.now() - t0) / 1000;
  const cpu = { relay: cpuSeconds(relay.proc.child.pid) - cpu0.relay, sender: cpuSeconds(sender.child.pid) - cpu0.sender };
  const chromium = Object.entries(await chromiumCpu()).map(([type, t]) => `${type} ${(t - (cpu0.chromium[type] ?? 0)).toFixed(2)} s`);
  if (PROFILE) {
    const { profile } = (await cdp.send('Profiler.stop')) as { profile: object };
    writeFileSync(join(PROFILE, 'page.cpuprofile'), JSON.stringify(profile));
  }
  sampling = false;
  await sampler;
  const status = await page.getByTestId('status').textContent();
  const saved = join(dir, 'got.bin');
  console.log(`status "${status}" after ${secs.toFixed(1)} s; download failure: ${String(await d.failure())}`);
  await d.saveAs(saved);
  const same = (await sha(saved)) === (await sha(file));
  const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
  const used = samples.map((s) => s.used);
  console.log(`Chromium ${browser.version()}: ${MB} MiB received in the page in ${secs.toFixed(1)} s (${(MB / secs).toFixed(0)} MiB/s), status "${status}", bytes ${same ? 'identical' : 'DIFFER'}`);
  console.log(`JS heap used: first ${mib(used[0]!)} MiB, peak ${mib(Math.max(...used))} MiB, last ${mib(used.at(-1)!)} MiB over ${samples.length} samples; heap total peak ${mib(Math.max(...samples.map((s) => s.total)))} MiB`);
  const rss = samples.map((s) => s.rss);
  console.log(`renderer RSS (${rendererPids.length} renderer process(es)): first ${mib(rss[0]!)} MiB, peak ${mib(Math.max(...rss))} MiB, last ${mib(rss.at(-1)!)} MiB`);
  console.log(`CPU during the transfer: relay ${cpu.relay.toFixed(2)} s, sender ${Number.isNaN(cpu.sender) ? 'n/a (it had exited)' : cpu.sender.toFixed(2)} s; Chromium: ${chromium.join(', ')}`);
  await sender.exit(60_000);
  await context.close();
  if (!same || status !== 'done') process.exitCode = 1;
} finally {
  await browser.close();
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
  writeFileSync(appJs, minified);
  if (PROFILE) for (const n of ['page', 'relay', 'sender']) console.log(summarizeProfileFile(join(PROFILE, `${n}.cpuprofile`), 20));
}
