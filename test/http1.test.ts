/**
 * The relay client's own HTTP/1.1 (src/transfer/http1.ts): the answer reader fed bytes directly
 * (every split of an answer, hostile heads and bodies), then the connection pool and the
 * RelayClient against raw TCP servers on loopback that answer exactly the bytes a test gives.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { RELAY_PROTOCOL_VERSION } from '../src/core/relay-api.js';
import { TscCrocError } from '../src/core/errors.js';
import { AnswerReader, Http1Connections, MAX_HEAD_BYTES } from '../src/transfer/http1.js';
import { RelayClient } from '../src/transfer/relay-client.js';

const JOIN = { version: RELAY_PROTOCOL_VERSION, channel: '7', uuid: '00000000-0000-4000-8000-000000000000', role: 'sender', curve: 'ed25519', tcpPort: 9 };

function read(bytes: Buffer | string, max = 1024, splitAt: number[] = []): AnswerReader {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
  const r = new AnswerReader(max);
  let from = 0;
  for (const at of [...splitAt, b.length]) {
    r.push(b.subarray(from, at));
    from = at;
  }
  return r;
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a":"bcd"}';
const CHUNKED = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{"a"\r\n7\r\n:"bcd"}\r\n0\r\nX-Trailer: 1\r\n\r\n';

test('an answer is read whole however the bytes are split: by length, chunked, after a 100 Continue', () => {
  for (const [answer, body] of [
    [OK, '{"a":"bcd"}'],
    [CHUNKED, '{"a":"bcd"}'],
    [`HTTP/1.1 100 Continue\r\n\r\n${OK}`, '{"a":"bcd"}'],
    ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', ''],
  ] as const) {
    for (let i = 0; i <= answer.length; i++) {
      const r = read(answer, 1024, [i]);
      assert.ok(r.done, `split at ${i}`);
      assert.equal(r.body().toString(), body, `split at ${i}`);
      assert.equal(r.keepAlive, true);
      assert.equal(r.extra, 0);
    }
    // one byte at a time
    const r = read(answer, 1024, [...Array(answer.length).keys()].slice(1));
    assert.ok(r.done);
    assert.equal(r.body().toString(), body);
  }
  const status = read('HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}');
  assert.equal(status.status, 404);
});

test('a connection is kept only after a complete HTTP/1.1 answer with nothing after it', () => {
  assert.equal(read('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}').keepAlive, false);
  assert.equal(read('HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\n{}').keepAlive, false);
  assert.equal(read('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}').keepAlive, false);
  const extra = read(`${OK}HTTP/1.1 200`);
  assert.ok(extra.done);
  assert.equal(extra.keepAlive, false);
  assert.equal(extra.extra, 'HTTP/1.1 200'.length);
  // no length: the body runs to the connection's end, which then completes it
  const toEnd = read('HTTP/1.1 200 OK\r\n\r\n{"x":1}');
  assert.equal(toEnd.done, false);
  toEnd.end();
  assert.ok(toEnd.done);
  assert.equal(toEnd.body().toString(), '{"x":1}');
  assert.equal(toEnd.keepAlive, false);
  // an end anywhere else is a hang-up
  assert.throws(() => read(OK.slice(0, -3)).end(), { code: 'ECONNRESET' });
  assert.throws(() => read('HTTP/1.1 200 OK\r\nContent-').end(), { code: 'ECONNRESET' });
});

test('a hostile answer is refused with an HPE_ code (or as oversized), never read past its limits', () => {
  const refused: [string, string | RegExp][] = [
    ['SSH-2.0-OpenSSH_9.2\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/1.1 2000 OK\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/2 200\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/1.1 200 OK\r\nBad Header\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\n: empty\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XY', 'HPE_STRICT'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n', 'ERR_ANSWER_TOO_LARGE'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n', 'ERR_ANSWER_TOO_LARGE'],
    [`HTTP/1.1 200 OK\r\n${'X-A: b\r\n'.repeat(101)}\r\n`, 'HPE_HEADER_OVERFLOW'],
  ];
  for (const [answer, code] of refused) assert.throws(() => read(answer), { code }, JSON.stringify(answer.slice(0, 60)));
  // not HTTP at all: refused at the first byte that cannot begin "HTTP/1.", without waiting for a head
  for (const first of ['X', 'H\x00', 'HTTP/2', '\x00\x01']) assert.throws(() => new AnswerReader(1024).push(Buffer.from(first, 'latin1')), { code: 'HPE_INVALID_CONSTANT' }, JSON.stringify(first));
  assert.equal(new AnswerReader(1024).push(Buffer.from('HTTP/1')), false, 'a prefix of HTTP/1. waits for more');
  // a head that never ends is refused once it passes the limit, not buffered on
  const r = new AnswerReader(1024);
  const line = Buffer.from(`X-Pad: ${'a'.repeat(1000)}\r\n`);
  assert.throws(() => {
    r.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
    for (let i = 0; i < 100; i++) r.push(line);
  }, { code: 'HPE_HEADER_OVERFLOW' });
  assert.ok(line.length * 17 > MAX_HEAD_BYTES);
  // the body limit holds for bodies that run to the end too
  assert.throws(() => read(`HTTP/1.1 200 OK\r\n\r\n${'x'.repeat(1025)}`), { code: 'ERR_ANSWER_TOO_LARGE' });
});

/** A TCP server that answers each request (a whole head and body read) with `answer(n, connection)`. */
async function rawServer(answer: (nth: number, connection: number) => string | null | { text: string; thenEnd: true }) {
  let connections = 0;
  let requests = 0;
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    const connection = ++connections;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let buf = '';
    let n = 0;
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        seen.push(buf.slice(0, end + 4 + len));
        buf = buf.slice(end + 4 + len);
        requests++;
        const a = answer(++n, connection);
        if (a === null) s.destroy();
        else if (typeof a === 'string') s.write(a);
        else s.end(a.text);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    counts: () => ({ connections, requests }),
    close: () => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), srv.close(() => r()))),
  };
}

const json = (body: unknown, extra = '') => {
  const b = JSON.stringify(body);
  return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
};

test('the request on the wire: POST, Host with its port, the JSON body, keep-alive; one connection for several requests', async () => {
  const s = await rawServer(() => json(JOIN));
  const conns = new Http1Connections('127.0.0.1', s.port, `127.0.0.1:${s.port}`);
  for (let i = 0; i < 3; i++) {
    const ex = conns.post('/join', 'application/json', Buffer.from('{"role":"sender"}'), 1024);
    assert.equal(ex.reused, i > 0);
    await ex.sent;
    const a = await ex.answer;
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body.toString()), JOIN);
  }
  assert.deepEqual(s.counts(), { connections: 1, requests: 3 });
  assert.equal(s.seen[0], `POST /join HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nContent-Type: application/json\r\nContent-Length: 17\r\nConnection: keep-alive\r\n\r\n{"role":"sender"}`);
  conns.close();
  await s.close();
});

test('Connection: close, or a byte after the answer: the next request opens a new connection', async () => {
  const s = await rawServer((nth) => (nth === 1 ? json(JOIN, 'Connection: close\r\n') : `${json(JOIN)}X`));
  const client = new RelayClient(s.url);
  await client.join({ role: 'sender', curve: 'ed25519' });
  await client.join({ role: 'sender', curve: 'ed25519' });
  await client.join({ role: 'sender', curve: 'ed25519' });
  assert.deepEqual(s.counts(), { connections: 3, requests: 3 });
  await s.close();
});

test('the relay client over raw answers: chunked works; a non-HTTP answer or an oversized one is a clear error', async () => {
  const chunkedJoin = (() => {
    const b = JSON.stringify(JOIN);
    return `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${(5).toString(16)}\r\n${b.slice(0, 5)}\r\n${(b.length - 5).toString(16)}\r\n${b.slice(5)}\r\n0\r\n\r\n`;
  })();
  const chunked = await rawServer(() => chunkedJoin);
  assert.equal((await new RelayClient(chunked.url).join({ role: 'sender', curve: 'ed25519' })).channel, '7');
  await chunked.close();

  const ssh = await rawServer(() => 'SSH-2.0-OpenSSH_9.2\r\n\r\n');
  await assert.rejects(new RelayClient(ssh.url).join({ role: 'sender', curve: 'ed25519' }), (e) => e instanceof TscCrocError && e.code === 'ERR_RELAY_UNREACHABLE' && /answered, but not as a tsc-croc relay/.test(e.message));
  await ssh.close();

  const big = await rawServer(() => `HTTP/1.1 200 OK\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
  await assert.rejects(new RelayClient(big.url).join({ role: 'sender', curve: 'ed25519' }), (e) => e instanceof TscCrocError && e.code === 'ERR_RELAY' && /oversized/.test(e.message));
  await big.close();

  // half an answer, then the connection ends
  const half = await rawServer(() => ({ text: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"version"', thenEnd: true }));
  await assert.rejects(new RelayClient(half.url).join({ role: 'sender', curve: 'ed25519' }), (e) => e instanceof TscCrocError && e.code === 'ERR_RELAY_UNREACHABLE' && /broke while it answered/.test(e.message));
  await half.close();
});
