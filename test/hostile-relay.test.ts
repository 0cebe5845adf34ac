/**
 * A hostile relay (a plain HTTP server on loopback) against the real peers: whatever it answers,
 * the peer fails with a typed error and never crashes, spins or buffers without bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TscCrocError } from '../src/core/errors.js';
import { receive } from '../src/transfer/receive.js';
import { send } from '../src/transfer/send.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function fakeRelay(handler: Handler): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      n++;
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => n,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The local network through loopback only: nothing multicasts on the machine's real interfaces. */
const LO = ['lo'];
const json = (res: ServerResponse, body: unknown) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const join_ = (over: Record<string, unknown> = {}) => ({
  version: 1,
  channel: '7',
  uuid: '00000000-0000-4000-8000-000000000000',
  role: 'sender',
  curve: 'ed25519',
  tcpPort: 9,
  ...over,
});

async function aFile(): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-hrelay-'));
  const file = join(dir, 'a.txt');
  await writeFile(file, 'x');
  return { file, dir };
}

function isCode(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TscCrocError, String(e));
    assert.equal(e.code, code, e.message);
    assert.doesNotMatch(e.message, /[\u0000-\u001f]/);
    return true;
  };
}

test('a join answer with an oversized uuid or a channel with escape codes is refused, without a crash', async () => {
  const { file, dir } = await aFile();
  for (const bad of [{ uuid: 'a'.repeat(600) }, { channel: '\u001b[2J999' }, { tcpPort: 70000 }, { role: 'recipient' }]) {
    const relay = await fakeRelay((_req, _body, res) => json(res, join_(bad)));
    await assert.rejects(send({ relay: relay.url, interfaces: LO, files: [file] }), isCode('ERR_RELAY'));
    await relay.close();
  }
  await rm(dir, { recursive: true });
});

test("a recipient refuses a join answer whose channel state is malformed or another channel's", async () => {
  const state = { channel: '7', curve: 'ed25519', version: 2, sender: true, recipient: true, x: 'ab'.repeat(32), y: null, hh_k: null, h_k: null, stapled: false, closed: false, closeReason: null };
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-hrelay-'));
  // the x in it is not used (it would fail as a PAKE message, not as the relay's answer)
  for (const bad of ['x', { ...state, x: 'not hex' }, { ...state, x: 'ab'.repeat(32), channel: '8' }, { ...state, x: 'ab'.repeat(32), curve: 'p256' }, { ...state, x: 'ab'.repeat(32), version: -0.5 }]) {
    const relay = await fakeRelay((_req, _body, res) => json(res, join_({ role: 'recipient', state: bad })));
    await assert.rejects(receive({ relay: relay.url, lan: 'off', code: '7-abandon-ability-able', outDir: dir }), isCode('ERR_RELAY'));
    await relay.close();
  }
  await rm(dir, { recursive: true });
});

test('a recipient is refused a join answer for another channel than its code', async () => {
  const relay = await fakeRelay((_req, _body, res) => json(res, join_({ role: 'recipient', channel: '8' })));
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-hrelay-'));
  await assert.rejects(receive({ relay: relay.url, lan: 'off', code: '7-abandon-ability-able', outDir: dir }), isCode('ERR_RELAY'));
  await relay.close();
  await rm(dir, { recursive: true });
});

test('an endless answer is cut off at 64 KiB', async () => {
  const { file, dir } = await aFile();
  const relay = await fakeRelay((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      // bounded: a well-behaved client stops reading long before this
      while (sent < 64 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
      if (sent < 64 * 1024 * 1024) res.once('drain', pump);
      else res.end();
    };
    res.on('close', () => res.removeAllListeners('drain'));
    pump();
  });
  await assert.rejects(send({ relay: relay.url, interfaces: LO, files: [file] }), isCode('ERR_RELAY'));
  await relay.close();
  await rm(dir, { recursive: true });
});

test('a relay that answers every long-poll at once does not make the peer spin', async () => {
  const { file, dir } = await aFile();
  const state = { channel: '7', curve: 'ed25519', version: 2, sender: true, recipient: false, x: null, y: null, hh_k: null, h_k: null, stapled: false, closed: false, closeReason: null };
  const relay = await fakeRelay((req, _body, res) => json(res, req.url === '/join' ? join_() : state));
  const started = Date.now();
  await assert.rejects(send({ relay: relay.url, interfaces: LO, files: [file], timeouts: { waitForPeerMs: 2500 } }), isCode('ERR_TIMEOUT'));
  const secs = (Date.now() - started) / 1000;
  // join + the x post + at most about one poll per second
  assert.ok(relay.requests() <= 3 + Math.ceil(secs) + 1, `${relay.requests()} requests in ${secs.toFixed(1)} s`);
  await relay.close();
  await rm(dir, { recursive: true });
});

test('a relay error body is bounded and stripped of control characters', async () => {
  const { file, dir } = await aFile();
  const relay = await fakeRelay((_req, _body, res) => {
    res.writeHead(409, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'ERR_\u001b[31mX', message: `\u001b]0;pwned\u0007${'y'.repeat(5000)}` }));
  });
  const e = await send({ relay: relay.url, interfaces: LO, files: [file] }).catch((x: unknown) => x);
  isCode('ERR_RELAY')(e);
  assert.ok((e as Error).message.length < 400);
  await relay.close();
  await rm(dir, { recursive: true });
});
