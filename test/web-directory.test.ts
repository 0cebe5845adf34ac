/**
 * The receive view writing into a folder the user chose (File System Access API), in a real
 * headless Chromium. A native picker cannot be driven headless, so before the page's script runs
 * `window.showDirectoryPicker` is replaced by a function that returns a real directory handle:
 * a fresh folder of the origin-private file system (OPFS). The page's own code path then writes
 * into a real FileSystemDirectoryHandle; the test reads the files back out of OPFS in the page
 * and compares their hashes in node. Each test has its own browser context, so its own OPFS.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { browserSkip } from './helpers/browser.js';
import { runCli } from './helpers/cli.js';
import { PROTOCOL_VERSION } from '../src/core/messages.js';
import { RecordType } from '../src/core/record.js';
import { openPage, scriptedSenderToPage, statusIs, type CliRelay, webFixture } from './web-helpers.js';

// the browser's side (run in the page through playwright; node's types have no DOM)
interface DirHandle {
  kind: 'directory';
  name: string;
  getDirectoryHandle(name: string, o?: { create?: boolean }): Promise<DirHandle>;
  getFileHandle(name: string, o?: { create?: boolean }): Promise<FileHandle>;
  entries(): AsyncIterable<[string, DirHandle | FileHandle]>;
}
interface FileHandle {
  kind: 'file';
  getFile(): Promise<Blob>;
  createWritable(): Promise<{ write(b: Uint8Array): Promise<void>; close(): Promise<void> }>;
}
declare const window: { showDirectoryPicker?: (o?: object) => Promise<DirHandle>; picks?: number };
declare const document: { querySelector(s: string): { getAttribute(n: string): string | null } | null };
declare const navigator: { storage: { getDirectory(): Promise<DirHandle> } };

/** The folder "picked" in the page: OPFS's `picked/`. */
const PICKED = 'picked';

/** Before the page's script: the picker hands over OPFS's `picked/` (and counts its calls). */
function pickOpfsFolder(): void {
  window.showDirectoryPicker = async () => {
    window.picks = (window.picks ?? 0) + 1;
    return (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
  };
}

/** Every entry under OPFS's `picked/`: folders as `path/`, files with their bytes' SHA-256 (computed in node). */
async function pickedTree(page: Page): Promise<Record<string, string>> {
  const raw = await page.evaluate(async (name) => {
    const out: [string, string | null][] = [];
    const walk = async (d: DirHandle, prefix: string): Promise<void> => {
      for await (const [n, h] of d.entries()) {
        if (h.kind === 'directory') {
          out.push([`${prefix}${n}/`, null]);
          await walk(h, `${prefix}${n}/`);
        } else {
          const bytes = new Uint8Array(await (await h.getFile()).arrayBuffer());
          let bin = '';
          for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          out.push([`${prefix}${n}`, btoa(bin)]);
        }
      }
    };
    await walk(await (await navigator.storage.getDirectory()).getDirectoryHandle(name, { create: true }), '');
    return out;
  }, PICKED);
  return Object.fromEntries(raw.map(([p, b64]) => [p, b64 === null ? 'dir' : sha(Buffer.from(b64, 'base64'))]));
}

/** Put `files` (path → bytes) under OPFS's `picked/` before the transfer. */
async function plant(page: Page, files: Record<string, string>): Promise<void> {
  await page.evaluate(
    async ({ name, files }) => {
      const d = await (await navigator.storage.getDirectory()).getDirectoryHandle(name, { create: true });
      for (const [n, text] of Object.entries(files)) {
        const w = await (await d.getFileHandle(n, { create: true })).createWritable();
        await w.write(new TextEncoder().encode(text));
        await w.close();
      }
    },
    { name: PICKED, files },
  );
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

const skip = browserSkip();
let browser: Browser;
let relay: CliRelay;
let dir: string;
webFixture('tsc-croc-web-dir-', (f) => ({ browser, relay, dir } = f));

test('web directory: tsc-croc send of a folder, received in the page into the chosen folder (a real FileSystemDirectoryHandle); every file by hash, every folder, nothing else', { skip }, async () => {
  const tree = join(dir, 'album');
  await mkdir(join(tree, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(tree, 'empty'));
  const files: Record<string, Buffer> = { 'a.jpg': randomBytes(3_500_000), 'sub/b.txt': Buffer.from('bee\n'), 'sub/deeper/c.bin': randomBytes(1_500_000), 'sub/zero': Buffer.alloc(0) };
  for (const [p, b] of Object.entries(files)) await writeFile(join(tree, p), b);
  const sender = runCli(['send', '--no-local', '--relay', relay.url, tree]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const { page, offOrigin } = await openPage(browser, relay, `/#${code}`, pickOpfsFolder);
  page.on('download', () => assert.fail('the chosen-folder path downloaded something'));
  await page.getByTestId('offer').filter({ hasText: 'album' }).waitFor({ timeout: 30_000 });
  assert.equal(await page.getByTestId('accept').textContent(), 'Accept and choose a folder');
  await page.getByTestId('accept').click();
  await statusIs(page, /^done$/);
  assert.equal(await sender.exit(60_000), 0, sender.stderr());
  assert.equal(await page.evaluate(() => window.picks), 1);
  const want: Record<string, string> = { 'album/': 'dir', 'album/sub/': 'dir', 'album/sub/deeper/': 'dir', 'album/empty/': 'dir' };
  for (const [p, b] of Object.entries(files)) want[`album/${p}`] = sha(b);
  assert.deepEqual(await pickedTree(page), want);
  assert.deepEqual(offOrigin, []);
  await page.context().close();
});

test('web directory: a name that exists in the chosen folder is replaced only with consent: refused, the old file stays and the sender hears "declined"; agreed, it is replaced', { skip }, async () => {
  const file = join(dir, 'clash', 'photo.txt');
  await mkdir(join(dir, 'clash'));
  await writeFile(file, 'the new photo\n');
  const { page } = await openPage(browser, relay, '/', pickOpfsFolder);
  await plant(page, { 'photo.txt': 'the old photo\n', 'other.txt': 'untouched\n' });
  const dialogs: string[] = [];
  let agree = false;
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void (agree ? d.accept() : d.dismiss());
  });
  const receiveIn = async (): Promise<ReturnType<typeof runCli>> => {
    const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    await page.getByTestId('code-input').fill(code!);
    await page.getByTestId('receive').click();
    await page.getByTestId('offer').filter({ hasText: 'photo.txt' }).waitFor({ timeout: 30_000 });
    await page.getByTestId('accept').click();
    return sender;
  };
  const refused = await receiveIn();
  await statusIs(page, 'you declined the transfer [ERR_DECLINED]');
  assert.equal(await refused.exit(), 4, refused.stderr());
  assert.deepEqual(dialogs, ['confirm: photo.txt already exists in that folder: replace?']);
  assert.deepEqual(await pickedTree(page), { 'photo.txt': sha('the old photo\n'), 'other.txt': sha('untouched\n') });
  // again, in a fresh view, and agreeing
  agree = true;
  await page.goto(`${relay.url}/`);
  const agreed = await receiveIn();
  await statusIs(page, /^done$/);
  assert.equal(await agreed.exit(30_000), 0, agreed.stderr());
  assert.equal(dialogs.length, 2);
  assert.deepEqual(await pickedTree(page), { 'photo.txt': sha('the new photo\n'), 'other.txt': sha('untouched\n') });
  await page.context().close();
});

for (const replacing of [false, true])
  test(`web directory: a transfer cut in the middle of a file leaves ${replacing ? 'the old file it was agreed to replace as it was' : 'nothing under its name'} in the chosen folder (the file before it, complete, stays)`, { skip }, async () => {
    const first = randomBytes(300_000);
    const { page, channel } = await scriptedSenderToPage(browser, relay, '/', pickOpfsFolder);
    if (replacing) {
      await plant(page, { 'cut.bin': 'the old one\n' });
      page.on('dialog', (d) => void d.accept());
    }
    const size = 8 * 1024 * 1024;
    await channel.sendMessage({ type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 2, totalDirs: 0, totalBytes: first.length + size, names: ['first.bin', 'cut.bin'] });
    await page.getByTestId('accept').click();
    // (the page reads these after its accept, in order) the first file whole and 2 MiB of the second
    await channel.sendMessage({ type: 'file', path: 'first.bin', size: first.length, offset: 0, mode: 0o644, mtime: 0 });
    await channel.send(RecordType.DATA, first);
    await channel.sendMessage({ type: 'file-end' });
    await channel.sendMessage({ type: 'file', path: 'cut.bin', size, offset: 0, mode: 0o644, mtime: 0 });
    await channel.send(RecordType.DATA, randomBytes(1024 * 1024));
    await channel.send(RecordType.DATA, randomBytes(1024 * 1024));
    // the page has the first 2 MiB of cut.bin in hand (its progress says so) when the connection goes
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="progress"]')?.getAttribute('value') ?? 0) >= n, first.length + 2 * 1024 * 1024, {
      timeout: 30_000,
    });
    channel.destroy();
    await statusIs(page, /\[ERR_(RECORD_TRUNCATED|CONNECTION_LOST)\]$/, 30_000);
    assert.deepEqual(await pickedTree(page), { 'first.bin': sha(first), ...(replacing ? { 'cut.bin': sha('the old one\n') } : {}) });
    await page.context().close();
  });
