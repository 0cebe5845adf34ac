/**
 * Dropping files and folders on the page's send view, in a real headless Chromium: a real drop
 * (DevTools' Input.dispatchDragEvent with paths on disk: dragEnter, dragOver, drop on the drop
 * zone), the page's own drop handler walking the folder with directory readers, and
 * `tsc-croc receive` (the built CLI) getting everything, compared by hash, the empty folder too.
 * (DevTools' dropped folders are listable on a real origin such as the relay's; on an opaque one,
 * about:blank or setContent, readEntries fails with EncodingError.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { browserSkip } from './helpers/browser.js';
import { runCli, sha256File } from './helpers/cli.js';
import { openPage, statusIs, type CliRelay, webFixture } from './web-helpers.js';

const skip = browserSkip();
let browser: Browser;
let relay: CliRelay;
let dir: string;
webFixture('tsc-croc-web-drop-', (f) => ({ browser, relay, dir } = f));

/** A real drag of `paths` (files and folders on disk) onto the page's drop zone, through DevTools. */
async function dropPaths(page: Page, paths: string[]): Promise<void> {
  const box = await page.getByTestId('drop-zone').boundingBox();
  assert.ok(box, 'the drop zone is on screen');
  const cdp = await page.context().newCDPSession(page);
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const data = { items: [], files: paths, dragOperationsMask: 1 };
  for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
}

test('web drop: a folder (nested, an empty subfolder) and a file dropped on the send view reach tsc-croc receive; every file by hash, the empty folder too', { skip }, async () => {
  const src = join(dir, 'src');
  const out = join(dir, 'out');
  const tree = join(src, 'holiday');
  await mkdir(join(tree, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(tree, 'empty'));
  await mkdir(out);
  const files: Record<string, Buffer> = { 'a.txt': Buffer.from('aaa\n'), 'sub/b.bin': randomBytes(1_300_000), 'sub/deeper/c.txt': Buffer.from('sea\n'), 'sub/deeper/zero': Buffer.alloc(0) };
  // more than one reader batch (Chromium lists 100 entries at a time): read until an empty batch
  await mkdir(join(tree, 'many'));
  for (let i = 0; i < 150; i++) files[`many/f${String(i).padStart(3, '0')}.txt`] = Buffer.from(`file ${i}\n`);
  for (const [p, b] of Object.entries(files)) await writeFile(join(tree, p), b);
  const loose = join(src, 'loose.bin');
  await writeFile(loose, randomBytes(200_000));

  const { page, offOrigin } = await openPage(browser, relay, '/#send');
  await dropPaths(page, [tree, loose]);
  const code = page.getByTestId('code');
  await code.filter({ hasText: /^\d+-[a-z]+-[a-z]+-[a-z]+$/ }).waitFor({ timeout: 30_000 });
  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', (await code.textContent())!]);
  assert.equal(await recipient.exit(60_000), 0, recipient.stderr());
  await statusIs(page, /^done$/);
  assert.deepEqual((await readdir(out)).sort(), ['holiday', 'loose.bin']);
  for (const p of Object.keys(files)) assert.equal(await sha256File(join(out, 'holiday', p)), await sha256File(join(tree, p)), p);
  assert.equal(await sha256File(join(out, 'loose.bin')), await sha256File(loose));
  assert.equal((await readdir(join(out, 'holiday', 'many'))).length, 150);
  assert.ok((await stat(join(out, 'holiday', 'empty'))).isDirectory(), 'the empty folder came too');
  assert.deepEqual(await readdir(join(out, 'holiday', 'empty')), []);
  assert.deepEqual(offOrigin, []);
  await page.context().close();
});
