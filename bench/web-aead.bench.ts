/**
 * AES-256-GCM in Chromium: WebCrypto against @noble/ciphers, through the browser's record layer
 * (src/core/record-web.ts), sealing then opening 64 MiB in 1 MiB records (and in 64 KiB ones).
 * Run: npm run build && node dist/bench/web-aead.bench.js   (needs /usr/bin/chromium)
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { startRelay } from '../src/relay/index.js';
import { launchChromium } from '../test/helpers/browser.js';

const root = join(import.meta.dirname, '..', '..');
const { webBuildOptions } = (await import(pathToFileURL(join(root, 'scripts', 'bundle-web.mjs')).href)) as { webBuildOptions(entry: string, out: string): esbuild.BuildOptions };
const built = await esbuild.build({ ...webBuildOptions(join(root, 'bench', 'web-aead-entry.ts'), 'bench.js'), write: false, format: 'iife' });
const script = built.outputFiles![0]!.text;

const relay = await startRelay({ host: '127.0.0.1', port: 0, tcpPort: 0 });
const browser = await launchChromium();
try {
  // the relay's page is a secure context (127.0.0.1), where crypto.subtle exists; the bench script goes in past its CSP
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${relay.httpUrl}/`);
  await page.addScriptTag({ content: script });
  console.log(`Chromium ${browser.version()}, ${process.arch}`);
  console.log('AEAD       record   seal MB/s  open MB/s');
  for (const recordBytes of [1024 * 1024, 64 * 1024]) {
    type R = Record<'webcrypto' | 'noble', { sealMBps: number; openMBps: number }>;
    const r = await page.evaluate(([total, rec]) => (globalThis as unknown as { benchAead(a: number, b: number): Promise<R> }).benchAead(total, rec), [64 * 1024 * 1024, recordBytes] as const);
    for (const [name, v] of Object.entries(r)) console.log(`${name.padEnd(10)} ${String(recordBytes / 1024).padStart(4)} KiB ${v.sealMBps.toFixed(0).padStart(9)} ${v.openMBps.toFixed(0).padStart(10)}`);
  }
} finally {
  await browser.close();
  await relay.close();
}
