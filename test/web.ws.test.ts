/**
 * The stapler over a WebSocket (src/relay/ws-stapler.ts), with real sockets: a WebSocket peer is
 * stapled to a TCP peer or to another WebSocket peer, bytes go both ways with half-closes, and the
 * hello, admission and limits refuse a WebSocket exactly as they refuse a TCP connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { EARLY_BYTES_LIMIT, type Relay } from '../src/relay/index.js';
import { MAX_WS_MESSAGE } from '../src/relay/ws-stapler.js';
import { WEB_CSP } from '../src/relay/web-page.js';
import { Client, seat, stateUntil, until, withRelay, type Seats } from './relay-helpers.js';
import { WsClient } from './web-helpers.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const httpPort = (relay: Relay): number => (relay.app.server.address() as { port: number }).port;

/** Send `data` in pieces of up to 64 KiB (WebSocket messages or TCP writes), then end. */
function sendAll(peer: Client | WsClient, data: Buffer): void {
  for (let off = 0; off < data.length; off += 65_536) {
    const piece = data.subarray(off, off + 65_536);
    if (peer instanceof WsClient) peer.send(piece);
    else peer.socket.write(piece);
  }
  if (peer instanceof WsClient) peer.end();
  else peer.socket.end();
}

const KINDS = [
  ['tcp', 'ws'],
  ['ws', 'tcp'],
  ['ws', 'ws'],
] as const;

for (const [senderKind, recipientKind] of KINDS) {
  test(
    `ws stapler: a ${senderKind} sender and a ${recipientKind} recipient are stapled; 3 MiB each way, half-closes, the channel closes "done"`,
    withRelay({}, async (relay) => {
      const seats = await seat(relay);
      const connect = async (kind: 'tcp' | 'ws', uuid: string) => {
        const c = kind === 'ws' ? await WsClient.connect(httpPort(relay)) : await Client.connect(seats.tcpPort, { allowHalfOpen: true });
        c.hello(seats.channel, uuid);
        return c;
      };
      const a = await connect(senderKind, seats.sender);
      const b = await connect(recipientKind, seats.recipient);
      assert.deepEqual(await a.reply(), { v: 1, type: 'stapled' });
      assert.deepEqual(await b.reply(), { v: 1, type: 'stapled' });
      const ab = randomBytes(3 * 1024 * 1024 + 17);
      const ba = randomBytes(3 * 1024 * 1024 + 5);
      sendAll(a, ab);
      sendAll(b, ba);
      const bDone = () => b.ended && b.data.length >= ab.length;
      const aDone = () => a.ended && a.data.length >= ba.length;
      await b.until(bDone, 'the recipient to get everything and the end');
      await a.until(aDone, 'the sender to get everything and the end');
      assert.equal(sha(b.data), sha(ab));
      assert.equal(sha(a.data), sha(ba));
      await stateUntil(relay, seats.channel, (s) => s?.closed === true, 'the channel to close');
      assert.equal((await relay.store.get(seats.channel))?.closeReason, 'done');
      if (a instanceof WsClient) await a.until(() => a.closed && a.closeCode === 1000, 'a clean close');
      if (b instanceof WsClient) await b.until(() => b.closed && b.closeCode === 1000, 'a clean close');
    }),
  );
}

/** Each way a hello is refused: the same code over TCP and over a WebSocket. */
const REFUSALS: { name: string; code: string; options?: object; prepare: (s: Seats) => { channel: string; uuid: string; raw?: Buffer; password?: string }; handshake?: boolean }[] = [
  { name: 'a frame that is not JSON', code: 'ERR_HELLO', prepare: () => ({ channel: '', uuid: '', raw: Buffer.from([0, 3, 0x7b, 0x7b, 0x7b]) }) },
  { name: 'an oversize frame length', code: 'ERR_HELLO', prepare: () => ({ channel: '', uuid: '', raw: Buffer.from([0xff, 0xff]) }) },
  { name: 'an unknown uuid', code: 'ERR_UNKNOWN_PARTICIPANT', prepare: (s) => ({ channel: s.channel, uuid: '00000000-0000-4000-8000-000000000000' }) },
  { name: 'no such channel', code: 'ERR_CHANNEL_NOT_FOUND', prepare: (s) => ({ channel: 'zz9', uuid: s.sender }) },
  { name: 'a hello before the key confirmation', code: 'ERR_OUT_OF_ORDER', handshake: false, prepare: (s) => ({ channel: s.channel, uuid: s.sender }) },
  { name: 'a wrong relay password', code: 'ERR_UNAUTHORIZED', options: { password: 'relay-pw' }, prepare: (s) => ({ channel: s.channel, uuid: s.sender, password: 'wrong-pw' }) },
];

for (const r of REFUSALS) {
  test(
    `ws stapler: ${r.name} is refused with ${r.code}, as over TCP`,
    withRelay(r.options ?? {}, async (relay) => {
      const pw = (r.options as { password?: string } | undefined)?.password;
      const seats = await seat(relay, { handshake: r.handshake ?? true, ...(pw === undefined ? {} : { password: pw }) });
      const h = r.prepare(seats);
      const got: string[] = [];
      for (const kind of ['tcp', 'ws'] as const) {
        const c = kind === 'ws' ? await WsClient.connect(httpPort(relay)) : await Client.connect(seats.tcpPort);
        if (h.raw !== undefined) (c instanceof WsClient ? c.send(h.raw) : c.socket.write(h.raw));
        else c.hello(h.channel, h.uuid, h.password === undefined ? undefined : { password: h.password });
        const reply = await c.reply();
        got.push(reply.type === 'error' ? reply.code : reply.type);
        await c.until(() => c.closed, `the ${kind} connection to close`);
      }
      assert.deepEqual(got, [r.code, r.code]);
    }),
  );
}

/** The sender's seat over a WebSocket, the recipient's over TCP: both told `stapled`. */
async function wsToTcp(relay: Relay, seats: Seats): Promise<{ a: WsClient; b: Client }> {
  const a = await WsClient.connect(httpPort(relay));
  a.hello(seats.channel, seats.sender);
  const b = await Client.connect(seats.tcpPort);
  b.hello(seats.channel, seats.recipient);
  assert.deepEqual(await a.reply(), { v: 1, type: 'stapled' });
  assert.deepEqual(await b.reply(), { v: 1, type: 'stapled' });
  return { a, b };
}

test(
  'ws stapler: early bytes beyond the limit, a hello timeout and the pending cap refuse a WebSocket as TCP; TCP and WebSocket share the cap',
  withRelay({ helloTimeoutMs: 300, maxPendingSocketsPerAddress: 2 }, async (relay) => {
    const seats = await seat(relay);
    // early bytes: a hello with more than EARLY_BYTES_LIMIT behind it, before any partner
    const early = await WsClient.connect(httpPort(relay));
    early.hello(seats.channel, seats.sender, { data: randomBytes(EARLY_BYTES_LIMIT + 1) });
    const e = await early.reply();
    assert.equal(e.type === 'error' && e.code, 'ERR_OUT_OF_ORDER');
    await early.until(() => early.closed, 'the close');
    // a WebSocket and a TCP connection wait without a hello: the third from this address is refused, whichever kind
    const w1 = await WsClient.connect(httpPort(relay));
    const t1 = await Client.connect(seats.tcpPort);
    await until(() => relay.tcp.pendingCount === 2, 'two pending');
    const w2 = await WsClient.connect(httpPort(relay));
    const over = await w2.reply();
    assert.equal(over.type === 'error' && over.code, 'ERR_TOO_MANY_CONNECTIONS');
    // the two silent ones time out
    for (const c of [w1, t1]) {
      const r = await c.reply();
      assert.equal(r.type === 'error' && r.code, 'ERR_HELLO');
    }
    // and the seat is still there: a legitimate pair staples after all that
    await wsToTcp(relay, seats);
  }),
);

test(
  'ws stapler: a text message, bytes after the end and a message over the size limit cut the WebSocket; the partner is cut too',
  withRelay({}, async (relay) => {
    for (const abuse of ['text', 'after-end', 'oversize'] as const) {
      const seats = await seat(relay);
      const { a, b } = await wsToTcp(relay, seats);
      if (abuse === 'text') a.ws.send('hello', { binary: false });
      else if (abuse === 'after-end') {
        a.end();
        a.send(Buffer.from('more'));
      } else a.send(Buffer.alloc(MAX_WS_MESSAGE + 1));
      await a.until(() => a.closed, `the WebSocket to be cut (${abuse})`);
      await b.until(() => b.closed, `the TCP partner to be cut (${abuse})`);
      await stateUntil(relay, seats.channel, (s) => s?.closed === true, 'the channel to close');
      assert.equal((await relay.store.get(seats.channel))?.closeReason, 'error', abuse);
    }
  }),
);

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test(
  'web page: / serves the page under a strict CSP; /v1/stream without an upgrade answers 426',
  withRelay({}, async (relay) => {
    const page = await get(httpPort(relay), '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-security-policy'], WEB_CSP);
    assert.match(WEB_CSP, /script-src 'self';/);
    assert.doesNotMatch(WEB_CSP, /unsafe|\*/);
    assert.match(page.body, /<script type="module" src="\/app\.js"><\/script>/);
    const js = await get(httpPort(relay), '/app.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    const plain = await get(httpPort(relay), '/v1/stream');
    assert.equal(plain.status, 426);
  }),
);

test(
  'web page: web: false (relay --no-web) serves neither the page nor the WebSocket',
  withRelay({ web: false }, async (relay) => {
    assert.equal((await get(httpPort(relay), '/')).status, 404);
    await assert.rejects(WsClient.connect(httpPort(relay)), /HTTP 404|socket hang up|Unexpected server response/);
  }),
);
