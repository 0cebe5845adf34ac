/**
 * A relay with a password and the page: the relay refuses the page's join without it, the page
 * asks for it in a field (never in the address), sends it on /join and in the WebSocket hello as
 * the CLI does, and the transfer goes through both ways. Real headless Chromium, the built CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { browserSkip } from './helpers/browser.js';
import { runCli, sha256File } from './helpers/cli.js';
import { acceptDownload, openPage, statusIs, type CliRelay, webFixture } from './web-helpers.js';

const PASSWORD = 'correct horse battery staple';
const env = { TSC_CROC_RELAY_PASSWORD: PASSWORD };
const REFUSED = 'the relay needs a password, or refused the one given [ERR_RELAY]';

const skip = browserSkip();
let browser: Browser;
let relay: CliRelay;
let dir: string;
webFixture('tsc-croc-web-pw-', (f) => ({ browser, relay, dir } = f), { env: env, check: (r) => assert.ok(!r.proc.output().includes(PASSWORD), 'the relay printed the password') });

/** Do `act`, and wait for the relay's answer to the page's next /join: its HTTP status. */
async function joinAnswer(page: Page, act: () => Promise<void>): Promise<number> {
  const answer = page.waitForResponse((r) => r.url() === `${relay.url}/join`, { timeout: 30_000 });
  await act();
  return (await answer).status();
}

test('web password: the page asks for the relay\'s password in a field (a wrong one is refused), then receives from tsc-croc send; verified', { skip }, async () => {
  const src = join(dir, 'recv');
  await mkdir(src);
  const file = join(src, 'p.bin');
  await writeFile(file, randomBytes(2_000_000));
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file], { env });
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const requests: string[] = [];
  const { page, offOrigin } = await openPage(browser, relay, `/?save=download#${code}`);
  page.on('request', (r) => requests.push(r.url()));
  await statusIs(page, REFUSED);
  const field = page.getByTestId('password');
  await field.waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await field.getAttribute('type'), 'password');
  await field.fill('not it');
  assert.equal(await joinAnswer(page, () => page.getByTestId('receive').click()), 401);
  await statusIs(page, REFUSED);
  await field.fill(PASSWORD);
  assert.equal(await joinAnswer(page, () => page.getByTestId('receive').click()), 200);
  const saved = join(src, 'got.bin');
  await acceptDownload(page, 'p.bin', saved);
  assert.equal(await sender.exit(60_000), 0, sender.stderr());
  assert.equal(await sha256File(saved), await sha256File(file));
  assert.ok(!page.url().includes(PASSWORD) && !requests.some((u) => u.includes(encodeURIComponent(PASSWORD)) || u.includes(PASSWORD)), 'the password went into an address');
  assert.deepEqual(offOrigin, []);
  await page.context().close();
});

test('web password: the page sending to a relay with a password asks for it, then sends the same files to tsc-croc receive; verified', { skip }, async () => {
  const src = join(dir, 'send');
  const out = join(dir, 'send-out');
  await mkdir(src);
  await mkdir(out);
  const file = join(src, 's.bin');
  await writeFile(file, randomBytes(1_500_000));
  const { page } = await openPage(browser, relay, '/#send');
  assert.equal(await joinAnswer(page, () => page.getByTestId('file-input').setInputFiles([file])), 401);
  await statusIs(page, REFUSED);
  await page.getByTestId('password-form').waitFor({ state: 'visible', timeout: 10_000 });
  await page.getByTestId('password').fill(PASSWORD);
  assert.equal(await joinAnswer(page, () => page.getByTestId('password-send').click()), 200);
  const code = page.getByTestId('code');
  await code.filter({ hasText: /^\d+-[a-z]+-[a-z]+-[a-z]+$/ }).waitFor({ timeout: 30_000 });
  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', (await code.textContent())!], { env });
  assert.equal(await recipient.exit(60_000), 0, recipient.stderr());
  await statusIs(page, /^done$/);
  assert.deepEqual(await readdir(out), ['s.bin']);
  assert.equal(await sha256File(join(out, 's.bin')), await sha256File(file));
  await page.context().close();
});
