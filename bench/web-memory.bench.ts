/**
 * The page's memory while a large file streams into it: `tsc-croc send` of a file (default 1 GiB,
 * BENCH_WEB_MB to change) received in headless Chromium with ?save=download, the page's JS heap
 * sampled every 250 ms through the DevTools protocol (Performance.getMetrics: JSHeapUsedSize,
 * JSHeapTotalSize). Prints the peak, the samples' spread, the rate, and checks the bytes by hash.
 * Run: npm run build && node dist/bench/web-memory.bench.js   (needs /usr/bin/chromium)
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../test/helpers/browser.js';
import { runCli, startCliRelay } from '../test/helpers/cli.js';

const MB = Number(process.env.BENCH_WEB_MB ?? 1024);
const sha = async (p: string) => {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
};

const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-webmem-'));
const relay = await startCliRelay();
const browser = await launchChromium();
try {
  // a file of pseudo-random 1 MiB blocks (not sparse: every byte is read and encrypted)
  const file = join(dir, 'big.bin');
  const fh = await open(file, 'w');
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < MB; i++) {
    block.writeUInt32LE(i, 0);
    createHash('sha256').update(block.subarray(0, 4)).digest().copy(block, 4);
    await fh.write(block);
  }
  await fh.close();
  const sender = runCli(['send', '--no-local', '--no-progress', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(`${relay.url}/?save=download#${code}`);
  await page.getByTestId('offer').waitFor({ timeout: 60_000 });
  const samples: { used: number; total: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { metrics } = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
      const m = (n: string) => metrics.find((x) => x.name === n)?.value ?? 0;
      samples.push({ used: m('JSHeapUsedSize'), total: m('JSHeapTotalSize') });
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const download = page.waitForEvent('download', { timeout: 30 * 60_000 });
  const t0 = Date.now();
  await page.getByTestId('accept').click();
  const d = await download;
  await page.getByTestId('status').filter({ hasText: /^done$|\[ERR_/ }).waitFor({ timeout: 30 * 60_000 });
  const secs = (Date.now() - t0) / 1000;
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
  await sender.exit(60_000);
  await context.close();
  if (!same || status !== 'done') process.exitCode = 1;
} finally {
  await browser.close();
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
}
