/** A raw WebSocket peer of the stapler (GET /v1/stream), the WebSocket twin of relay-helpers' Client. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { WebSocket } from 'ws';
import { formatCode, generateSecret } from '../src/core/code-phrase.js';
import { senderPake } from '../src/transfer/pake.js';
import { RelayClient } from '../src/transfer/relay-client.js';
import { SecureChannel } from '../src/transfer/secure-channel.js';
import { connectStapled } from '../src/transfer/tcp.js';
import { browserSkip, launchChromium } from './helpers/browser.js';
import { startCliRelay } from './helpers/cli.js';
import { StaplerPeer } from './relay-helpers.js';

export class WsClient extends StaplerPeer {
  readonly ws: WebSocket;
  closeCode = 0;

  private constructor(ws: WebSocket) {
    super(true);
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      if (data.length === 0) this.ended = true; // the relay ended its direction (an empty binary message)
      this.took(data);
    });
    ws.on('close', (code: number) => {
      this.closed = true;
      this.closeCode = code;
      this.notify();
    });
    ws.on('error', () => {});
  }

  static connect(httpPort: number, options: { localAddress?: string; path?: string } = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${httpPort}${options.path ?? '/v1/stream'}`, {
        perMessageDeflate: false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  write(data: Uint8Array): void {
    this.ws.send(data, { binary: true });
  }

  /** Bytes as one binary message. */
  send(data: Uint8Array): void {
    this.write(data);
  }

  /** End our direction (the WebSocket's half-close). */
  end(): void {
    this.ws.send(new Uint8Array(0), { binary: true });
  }
}

/** The CLI relay the page tests use (test/helpers/cli.ts startCliRelay). */
export interface PageRelay {
  url: string;
  httpPort: number;
}

/**
 * A page of the relay in a fresh browser context; `offOrigin` collects every request off the
 * relay's origin (the tests want none). `init` runs before the page's own script.
 */
export async function openPage(browser: Browser, relay: PageRelay, path: string, init?: () => void): Promise<{ page: Page; offOrigin: string[] }> {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  if (init) await page.addInitScript(init);
  const offOrigin: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(`${relay.url}/`) && !r.url().startsWith(`ws://127.0.0.1:${relay.httpPort}/`) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) offOrigin.push(r.url());
  });
  await page.goto(`${relay.url}${path}`);
  return { page, offOrigin };
}

/** Wait until the page's status line reads `text` (bounded); the failure says what it reads. */
export async function statusIs(page: Page, text: RegExp | string, timeout = 60_000): Promise<void> {
  const status = page.getByTestId('status');
  try {
    await status.filter({ hasText: text }).waitFor({ timeout });
  } catch (e) {
    throw new Error(`the page's status did not read ${String(text)}: it reads ${JSON.stringify(await status.textContent())}`, { cause: e });
  }
}

/**
 * A sender of our own making (the library's lower layers: join, SPAKE2, the stapled TCP stream)
 * for the page at `path` (its `#code` added): the test scripts what it sends, lies included.
 */
/** Accepts the offer naming `name` (download mode), saves its one download to `saveAs`, and waits for the page's `done`. */
export async function acceptDownload(page: Page, name: string, saveAs: string): Promise<void> {
  await page.getByTestId('offer').filter({ hasText: name }).waitFor({ timeout: 30_000 });
  const download = page.waitForEvent('download', { timeout: 60_000 });
  await page.getByTestId('accept').click();
  await (await download).saveAs(saveAs);
  await statusIs(page, /^done$/);
}

export async function scriptedSenderToPage(browser: Browser, relay: PageRelay, path: string, init?: () => void): Promise<{ page: Page; channel: SecureChannel }> {
  const client = new RelayClient(relay.url);
  const join = await client.join({ role: 'sender' });
  const secret = generateSecret();
  const { page } = await openPage(browser, relay, `${path}#${formatCode({ channel: join.channel, secret })}`, init);
  const { keys } = await senderPake([{ client, join, via: 'relay' }], secret, { waitForPeerMs: 30_000, stepMs: 30_000 }, () => {});
  const s = await connectStapled({ host: '127.0.0.1', port: join.tcpPort, channel: join.channel, uuid: join.uuid, timeoutMs: 30_000 });
  const channel = new SecureChannel(s.socket, s.leftover, keys.senderToRecipient, keys.recipientToSender, undefined, s.tap);
  s.socket.resume();
  return { page, channel };
}

export type CliRelay = Awaited<ReturnType<typeof startCliRelay>>;

/**
 * What a web test file runs against, started before its tests and stopped after them: headless
 * Chromium, a `tsc-croc relay` (with `env`) and a scratch folder named `prefix...`. `take` gets
 * them once started; `check` runs on the relay before it is stopped. Nothing starts when the
 * browser is missing (browserSkip()).
 */
export function webFixture(
  prefix: string,
  take: (f: { browser: Browser; relay: CliRelay; dir: string }) => void,
  opts: { env?: NodeJS.ProcessEnv; check?: (relay: CliRelay) => void } = {},
): void {
  let f: { browser: Browser; relay: CliRelay; dir: string } | undefined;
  before(async () => {
    if (browserSkip()) return;
    const dir = await mkdtemp(join(tmpdir(), prefix));
    const relay = await startCliRelay(opts.env);
    f = { dir, relay, browser: await launchChromium() };
    take(f);
  });
  after(async () => {
    if (f === undefined) return;
    await f.browser.close();
    assert.equal(await f.relay.stop(), 0, f.relay.proc.stderr());
    opts.check?.(f.relay);
    await rm(f.dir, { recursive: true, force: true });
  });
}
