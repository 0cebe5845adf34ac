/**
 * The page reads no faster than it writes (WebSocketStream's backpressure, src/web/stream.ts):
 * with its disk stalled, a sender cannot push a file into the page's memory; it is held back
 * within the buffers on the way (sockets, relay, the page's few records ahead). And the WebSocket
 * API fallback (browsers without WebSocketStream) still carries transfers both ways.
 * Real headless Chromium, a real relay, the built CLI; bytes compared by hash.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { browserSkip } from './helpers/browser.js';
import { runCli, sha256File } from './helpers/cli.js';
import { PROTOCOL_VERSION } from '../src/core/messages.js';
import { RecordType } from '../src/core/record.js';
import { acceptDownload, openPage, scriptedSenderToPage, statusIs, type CliRelay, webFixture } from './web-helpers.js';

// the browser's side (run in the page through playwright; node's types have no DOM)
interface Writable {
  write(b: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}
interface FileHandle {
  getFile(): Promise<Blob>;
  createWritable(o?: object): Promise<Writable>;
}
interface DirHandle {
  getDirectoryHandle(name: string, o?: { create?: boolean }): Promise<DirHandle>;
  getFileHandle(name: string, o?: { create?: boolean }): Promise<FileHandle>;
  removeEntry(name: string): Promise<void>;
}
interface SlowDisk {
  written: number;
  calls: number;
  open(): void;
}
declare const window: { showDirectoryPicker?: () => Promise<unknown>; slowDisk?: SlowDisk; WebSocketStream?: unknown };
declare const navigator: { storage: { getDirectory(): Promise<DirHandle> } };

/**
 * Before the page's script: the chosen folder is OPFS's `picked/` behind a disk whose writes
 * wait until the test opens it (window.slowDisk.open()); window.slowDisk counts what reached it.
 */
function stalledDisk(): void {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const disk: SlowDisk = { written: 0, calls: 0, open };
  window.slowDisk = disk;
  const file = (h: FileHandle): FileHandle => ({
    getFile: () => h.getFile(),
    createWritable: async (o) => {
      const w = await h.createWritable(o);
      return {
        write: async (b) => {
          disk.calls++;
          await gate;
          await w.write(b);
          disk.written += b.length;
        },
        close: () => w.close(),
        abort: () => w.abort(),
      };
    },
  });
  const dir = (d: DirHandle): DirHandle => ({
    getDirectoryHandle: async (n, o) => dir(await d.getDirectoryHandle(n, o)),
    getFileHandle: async (n, o) => file(await d.getFileHandle(n, o)),
    removeEntry: (n) => d.removeEntry(n),
  });
  window.showDirectoryPicker = async () => dir(await (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true }));
}

const skip = browserSkip();
let browser: Browser;
let relay: CliRelay;
let dir: string;
webFixture('tsc-croc-web-bp-', (f) => ({ browser, relay, dir } = f));

const MiB = 1024 * 1024;

test('web backpressure: while the page\'s disk is stalled, a sender gets at most 96 MiB of a 256 MiB file out (not the whole file into the page); once the disk moves, all of it lands, verified', { skip }, async () => {
  const total = 256 * MiB;
  const { page, channel } = await scriptedSenderToPage(browser, relay, '/', stalledDisk);
  await channel.sendMessage({ type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: total, names: ['big.bin'] });
  await page.getByTestId('accept').click();
  await channel.sendMessage({ type: 'file', path: 'big.bin', size: total, offset: 0, mode: 0o644, mtime: 0 });
  const block = randomBytes(MiB);
  const hash = createHash('sha256');
  let sent = 0;
  let heldAt = -1;
  while (sent < total) {
    block.writeUInt32BE(sent / MiB, 0);
    hash.update(block);
    const sending = channel.send(RecordType.DATA, block);
    if (heldAt < 0) {
      // held back: this record has not gone out in 5 s while the page's disk takes nothing
      let timer: ReturnType<typeof setTimeout> | undefined;
      const held = await Promise.race([sending.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 5_000)))]);
      clearTimeout(timer);
      if (held) {
        heldAt = sent;
        const disk = await page.evaluate(() => ({ written: window.slowDisk!.written, calls: window.slowDisk!.calls }));
        assert.equal(disk.written, 0, 'nothing reached the stalled disk');
        assert.ok(disk.calls >= 1, 'the page is waiting on its disk');
        await page.evaluate(() => window.slowDisk!.open());
      }
    }
    await sending;
    sent += MiB;
  }
  assert.ok(heldAt >= 0, `the sender got all ${total / MiB} MiB out while the page wrote nothing: they piled up in the page`);
  assert.ok(heldAt <= 96 * MiB, `the sender got ${heldAt / MiB} MiB out before it was held back`);
  await channel.sendMessage({ type: 'file-end' });
  await channel.sendMessage({ type: 'done' });
  await channel.end();
  const closing = channel.close(60_000); // ends our side: the page's stream ends after our END
  await statusIs(page, /^done$/, 120_000);
  await closing;
  const inPage = await page.evaluate(async () => {
    const f = await (await (await (await navigator.storage.getDirectory()).getDirectoryHandle('picked')).getFileHandle('big.bin')).getFile();
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await f.arrayBuffer()));
    return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
  });
  assert.equal(inPage, hash.digest('hex'));
  await page.context().close();
});

test('web: without WebSocketStream (the WebSocket API fallback) the page receives from tsc-croc send and sends to tsc-croc receive; verified', { skip }, async () => {
  const noStream = () => Object.defineProperty(window, 'WebSocketStream', { value: undefined });
  const src = join(dir, 'fallback');
  const out = join(dir, 'fallback-out');
  await mkdir(src);
  await mkdir(out);
  const file = join(src, 'f.bin');
  await writeFile(file, randomBytes(20 * 1000 * 1000 + 3));
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const { page } = await openPage(browser, relay, `/?save=download#${code}`, noStream);
  assert.equal(await page.evaluate(() => typeof window.WebSocketStream), 'undefined');
  const saved = join(src, 'got.bin');
  await acceptDownload(page, 'f.bin', saved);
  assert.equal(await sender.exit(60_000), 0, sender.stderr());
  assert.equal(await sha256File(saved), await sha256File(file));
  // and the other way
  await page.goto(`${relay.url}/#send`);
  await page.getByTestId('file-input').setInputFiles([file]);
  const shown = page.getByTestId('code');
  await shown.filter({ hasText: /^\d+-[a-z]+-[a-z]+-[a-z]+$/ }).waitFor({ timeout: 30_000 });
  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', (await shown.textContent())!]);
  assert.equal(await recipient.exit(60_000), 0, recipient.stderr());
  await statusIs(page, /^done$/);
  assert.deepEqual(await readdir(out), ['f.bin']);
  assert.equal(await sha256File(join(out, 'f.bin')), await sha256File(file));
  await page.context().close();
});
