/**
 * The page end to end, in a real headless Chromium against the built CLI: `tsc-croc send` received
 * in the page, the page sending to `tsc-croc receive`, a wrong code. Bytes are compared by hash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { browserSkip } from './helpers/browser.js';
import { runCli, sha256File } from './helpers/cli.js';
import { readZip } from './helpers/zip-read.js';
import { openPage as openPageOf, scriptedSenderToPage, statusIs, type CliRelay, webFixture } from './web-helpers.js';
import { PROTOCOL_VERSION, type SenderMessage } from '../src/core/messages.js';
import { checkRelativePath } from '../src/core/path.js';
import { RecordType } from '../src/core/record.js';

const skip = browserSkip();
let browser: Browser;
let relay: CliRelay;
let dir: string;
webFixture('tsc-croc-web-', (f) => ({ browser, relay, dir } = f));

const openPage = (path: string) => openPageOf(browser, relay, path);

test('web: tsc-croc send of a 50 MB file, received in the page (?save=download), bytes verified by hash', { skip }, async () => {
  const src = join(dir, 'send1');
  await mkdir(src);
  const file = join(src, 'photo.bin');
  await writeFile(file, randomBytes(50 * 1000 * 1000));
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const { page, offOrigin } = await openPage(`/?save=download#${code}`);
  assert.equal(new URL(page.url()).hash, '', 'the code left the address bar');
  const offer = page.getByTestId('offer');
  await offer.filter({ hasText: 'photo.bin' }).waitFor({ timeout: 30_000 });
  assert.match((await offer.textContent()) ?? '', /^1 file \(50 MB\): photo\.bin$/);
  if (process.env.TSC_CROC_SCREENSHOTS) await page.screenshot({ path: join(process.env.TSC_CROC_SCREENSHOTS, 'web-receive.png') });
  const download = page.waitForEvent('download', { timeout: 60_000 });
  await page.getByTestId('accept').click();
  const d = await download;
  assert.equal(d.suggestedFilename(), 'photo.bin');
  const saved = join(src, 'received.bin');
  await d.saveAs(saved);
  await statusIs(page, /^done$/);
  assert.equal(await sender.exit(60_000), 0, sender.stderr());
  assert.equal(await sha256File(saved), await sha256File(file));
  assert.deepEqual(offOrigin, []);
  await page.context().close();
});

test('web: the page sends two files to tsc-croc receive; bytes verified by hash', { skip }, async () => {
  const src = join(dir, 'send2');
  const out = join(dir, 'out2');
  await mkdir(src);
  await mkdir(out);
  const a = join(src, 'a.bin');
  const b = join(src, 'notes.txt');
  await writeFile(a, randomBytes(3 * 1024 * 1024 + 7));
  await writeFile(b, 'hello from the browser\n');
  const { page, offOrigin } = await openPage('/#send');
  await page.getByTestId('file-input').setInputFiles([a, b]);
  const code = page.getByTestId('code');
  await code.filter({ hasText: /^\d+-[a-z]+-[a-z]+-[a-z]+$/ }).waitFor({ timeout: 30_000 });
  if (process.env.TSC_CROC_SCREENSHOTS) await page.screenshot({ path: join(process.env.TSC_CROC_SCREENSHOTS, 'web-send.png') });
  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', (await code.textContent())!]);
  assert.equal(await recipient.exit(60_000), 0, recipient.stderr());
  await statusIs(page, /^done$/);
  assert.deepEqual((await readdir(out)).sort(), ['a.bin', 'notes.txt']);
  assert.equal(await sha256File(join(out, 'a.bin')), await sha256File(a));
  assert.equal(await sha256File(join(out, 'notes.txt')), await sha256File(b));
  assert.deepEqual(offOrigin, []);
  await page.context().close();
});

test('web: a wrong code in the page fails there in the CLI\'s words; the CLI sender says so and still sends to the right code', { skip }, async () => {
  const src = join(dir, 'wrong');
  const out = join(dir, 'wrong-out');
  await mkdir(src);
  await mkdir(out);
  const file = join(src, 'secret.txt');
  await writeFile(file, 'top secret');
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const wrong = `${code!.split('-')[0]}-abandon-ability-able`;
  // the CLI recipient's words for the same wrong code, first
  const cli = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', wrong]);
  assert.equal(await cli.exit(), 3);
  const words = /tsc-croc: (.*\[ERR_WRONG_CODE\])/.exec(cli.stderr())?.[1];
  assert.ok(words, cli.stderr());
  await sender.waitFor(/Someone tried a wrong code \(1 of 5\)/);
  const { page } = await openPage(`/?save=download#${wrong}`);
  await statusIs(page, words);
  await sender.waitFor(/Someone tried a wrong code \(2 of 5\): still waiting for the right one/);
  assert.equal(await page.getByTestId('offer').isVisible(), false, 'no offer was shown');
  // the right code still works
  const right = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', code!]);
  assert.equal(await right.exit(60_000), 0, right.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  await page.context().close();
});

test('web: tsc-croc send of a folder, received in the page as one download, album.zip: every file (hashed, CRC-checked) and every folder, empty ones too', { skip }, async () => {
  const src = join(dir, 'folder-src');
  const tree = join(src, 'album');
  await mkdir(join(tree, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(tree, 'empty'));
  const files: Record<string, Buffer> = { 'a.jpg': randomBytes(700_000), 'sub/b.txt': Buffer.from('bee\n'), 'sub/deeper/c.bin': randomBytes(1_500_000) };
  for (const [p, b] of Object.entries(files)) await writeFile(join(tree, p), b);
  const sender = runCli(['send', '--no-local', '--relay', relay.url, tree]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const { page } = await openPage(`/?save=download#${code}`);
  const offer = page.getByTestId('offer');
  await offer.filter({ hasText: 'album' }).waitFor({ timeout: 30_000 });
  assert.match((await offer.textContent()) ?? '', /^3 files and 4 folders \(2\.2 MB\): album$/);
  const names: string[] = [];
  const saving: Promise<void>[] = [];
  const to = join(src, 'got.zip');
  page.on('download', (d) => {
    names.push(d.suggestedFilename());
    saving.push(d.saveAs(to));
  });
  await page.getByTestId('accept').click();
  await statusIs(page, /^done$/);
  assert.equal(await sender.exit(60_000), 0, sender.stderr());
  await Promise.all(saving);
  assert.deepEqual(names, ['album.zip']);
  const entries = readZip(await readFile(to));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.deepEqual(
    entries.filter((e) => !e.dir).map((e) => [e.name, sha(e.data), e.crcOk]).sort(),
    Object.entries(files).map(([p, b]) => [`album/${p}`, sha(b), true]).sort(),
  );
  assert.deepEqual(entries.filter((e) => e.dir).map((e) => e.name).sort(), ['album/', 'album/empty/', 'album/sub/', 'album/sub/deeper/']);
  // and another implementation reads it: Python's zipfile, where there is one
  const py = spawnSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.testzip(), len(z.namelist()))', to], { encoding: 'utf8' });
  if (py.status !== null && py.error === undefined) assert.equal(py.stdout.trim(), 'None 7', py.stderr);
  await page.context().close();
});

/**
 * A hostile sender (the library's lower layers, as test/hostile-sender.test.ts) against the page:
 * it is refused in the words of the CLI recipient (the same machine refuses), and nothing is downloaded.
 */
async function hostileToPage(script: SenderMessage[], data?: Buffer): Promise<Page> {
  const { page, channel: ch } = await scriptedSenderToPage(browser, relay, '/?save=download');
  page.on('download', () => assert.fail('a hostile transfer was downloaded'));
  await ch.sendMessage(script[0]!);
  await page.getByTestId('accept').click();
  try {
    for (const m of script.slice(1)) {
      await ch.sendMessage(m);
      if (m.type === 'file' && data) await ch.send(RecordType.DATA, data);
    }
  } catch {
    // the page may hang up on us mid-script
  }
  return page;
}

const offerOf = (names: string[], totalBytes: number): SenderMessage => ({ type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: names.length, totalDirs: 0, totalBytes, names });

test('web: a hostile sender against the page: a path out of the offer, a lying size; refused in the CLI\'s words', { skip }, async () => {
  const unsafeWords = (() => {
    try {
      checkRelativePath('../evil');
    } catch (e) {
      return `${(e as Error).message} [ERR_UNSAFE_PATH]`;
    }
    return '';
  })();
  const bad = await hostileToPage([offerOf(['ok.txt'], 10), { type: 'file', path: '../evil', size: 10, offset: 0, mode: 0o644, mtime: 0 }]);
  await statusIs(bad, unsafeWords, 30_000);
  await bad.context().close();
  const liar = await hostileToPage([offerOf(['ok.txt'], 10), { type: 'file', path: 'ok.txt', size: 10, offset: 0, mode: 0o644, mtime: 0 }], randomBytes(20));
  await statusIs(liar, 'the sender broke the protocol: more data than the 10 bytes announced for a file [ERR_PROTOCOL]', 30_000);
  await liar.context().close();
});

test('web: the page\'s JS heap stays flat while 150 MB stream into it (DevTools heap samples, peak under 24 MiB)', { skip }, async () => {
  const src = join(dir, 'mem');
  await mkdir(src);
  const file = join(src, 'big.bin');
  await writeFile(file, randomBytes(150 * 1000 * 1000));
  const sender = runCli(['send', '--no-local', '--no-progress', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const { page } = await openPage(`/?save=download#${code}`);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.getByTestId('offer').waitFor({ timeout: 30_000 });
  const peaks: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { metrics } = await cdp.send('Performance.getMetrics');
      peaks.push(metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const download = page.waitForEvent('download', { timeout: 120_000 });
  await page.getByTestId('accept').click();
  await statusIs(page, /^done$/, 120_000);
  sampling = false;
  await sampler;
  const saved = join(src, 'got.bin');
  await (await download).saveAs(saved);
  assert.equal(await sender.exit(60_000), 0, sender.stderr());
  assert.equal(await sha256File(saved), await sha256File(file));
  assert.ok(peaks.length >= 5, `${peaks.length} samples`);
  const peak = Math.max(...peaks);
  assert.ok(peak < 24 * 1024 * 1024, `the page's JS heap peaked at ${(peak / 1048576).toFixed(1)} MiB`);
  await page.context().close();
});

test('web: declining in the page ends the CLI sender with its "declined" words and exit code 4; nothing is downloaded', { skip }, async () => {
  const src = join(dir, 'decline');
  await mkdir(src);
  const file = join(src, 'unwanted.txt');
  await writeFile(file, 'no thanks');
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const { page } = await openPage(`/?save=download#${code}`);
  page.on('download', () => assert.fail('a declined transfer was downloaded'));
  await page.getByTestId('offer').filter({ hasText: 'unwanted.txt' }).waitFor({ timeout: 30_000 });
  await page.getByTestId('decline').click();
  await statusIs(page, 'you declined the transfer [ERR_DECLINED]');
  assert.equal(await sender.exit(), 4, sender.stderr());
  assert.match(sender.stderr(), /tsc-croc: the recipient declined the transfer \[ERR_DECLINED\]/);
  await page.context().close();
});

test('web: the page sends a folder (its relative paths, nested folders) to tsc-croc receive; verified', { skip }, async () => {
  const src = join(dir, 'pagefolder');
  const out = join(dir, 'pagefolder-out');
  const tree = join(src, 'docs');
  await mkdir(join(tree, 'a', 'b'), { recursive: true });
  await mkdir(out);
  const files: Record<string, Buffer> = { 'top.txt': Buffer.from('top\n'), 'a/mid.bin': randomBytes(1_200_000), 'a/b/deep.txt': Buffer.from('deep\n') };
  for (const [p, b] of Object.entries(files)) await writeFile(join(tree, p), b);
  const { page } = await openPage('/#send');
  await page.getByTestId('folder-input').setInputFiles(tree);
  const code = page.getByTestId('code');
  await code.filter({ hasText: /^\d+-[a-z]+-[a-z]+-[a-z]+$/ }).waitFor({ timeout: 30_000 });
  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', (await code.textContent())!]);
  assert.equal(await recipient.exit(60_000), 0, recipient.stderr());
  await statusIs(page, /^done$/);
  for (const [p, b] of Object.entries(files)) assert.equal(await sha256File(join(out, 'docs', p)), createHash('sha256').update(b).digest('hex'), p);
  await page.context().close();
});
