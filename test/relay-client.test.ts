/**
 * The relay client's HTTP layer (http1.ts, kept-alive connections) against node's own HTTP
 * server on loopback: connection reuse, the one retry after a kept-alive connection the server
 * dropped, and no retry otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RELAY_PROTOCOL_VERSION } from '../src/core/relay-api.js';
import { RelayClient, senderPollPauseMs } from '../src/transfer/relay-client.js';
import { TscCrocError } from '../src/core/errors.js';

const JOIN = { version: RELAY_PROTOCOL_VERSION, channel: '7', uuid: '00000000-0000-4000-8000-000000000000', role: 'sender', curve: 'ed25519', tcpPort: 9 };
const STATE = { channel: '7', curve: 'ed25519', version: 1, sender: true, recipient: false, x: null, y: null, hh_k: null, h_k: null, stapled: false, closed: false, closeReason: null };

/** `drop(socketRequestIndex, connectionIndex)`: destroy the connection instead of answering. */
async function server(drop: (nthOnSocket: number, connection: number) => boolean) {
  const perSocket = new WeakMap<Socket, number>();
  let connections = 0;
  let requests = 0;
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      requests++;
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (drop(n, connections)) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url === '/join' ? JOIN : STATE));
    });
  });
  srv.on('connection', () => connections++);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => ({ connections, requests }),
    close: () => new Promise<void>((r) => (srv.closeAllConnections(), srv.close(() => r()))),
  };
}

test('requests share one kept-alive connection', async () => {
  const s = await server(() => false);
  const client = new RelayClient(s.url);
  await client.join({ role: 'sender', curve: 'ed25519' });
  for (let i = 0; i < 3; i++) await client.channel({ channel: '7', uuid: JOIN.uuid });
  assert.deepEqual(s.counts(), { connections: 1, requests: 4 });
  await s.close();
});

test('a kept-alive connection the relay drops is replaced once, on a new connection', async () => {
  // the second request on the first connection is dropped; the retry goes to a second connection
  const s = await server((nth, connection) => connection === 1 && nth === 2);
  const client = new RelayClient(s.url);
  await client.join({ role: 'sender', curve: 'ed25519' });
  const state = await client.channel({ channel: '7', uuid: JOIN.uuid });
  assert.equal(state.channel, '7');
  assert.deepEqual(s.counts(), { connections: 2, requests: 3 });
  await s.close();
});

test('a request dropped on a fresh connection, or dropped again, is not retried', async () => {
  const fresh = await server(() => true);
  await assert.rejects(new RelayClient(fresh.url).join({ role: 'sender', curve: 'ed25519' }), (e) => e instanceof TscCrocError && e.code === 'ERR_RELAY_UNREACHABLE');
  assert.deepEqual(fresh.counts(), { connections: 1, requests: 1 });
  await fresh.close();

  // the relay drops the retry too: the request fails after one retry
  const again = await server((nth, connection) => (connection === 1 && nth === 2) || connection === 2);
  const client = new RelayClient(again.url);
  await client.join({ role: 'sender', curve: 'ed25519' });
  await assert.rejects(client.channel({ channel: '7', uuid: JOIN.uuid }), (e) => e instanceof TscCrocError && e.code === 'ERR_RELAY_UNREACHABLE');
  assert.deepEqual(again.counts(), { connections: 2, requests: 3 }, 'one retry, not more');
  await again.close();
});

test('an abort ends a long-poll at once, as a cancel', async () => {
  const hold = await server(() => false);
  const ac = new AbortController();
  const client = new RelayClient(hold.url, { signal: ac.signal });
  await client.join({ role: 'sender', curve: 'ed25519' });
  const waiting = client.waitFor({ channel: '7', uuid: JOIN.uuid }, (st) => st.y !== null, 60_000, 'waiting');
  setImmediate(() => ac.abort());
  await assert.rejects(waiting, (e) => e instanceof TscCrocError && e.code === 'ERR_CANCELLED');
  await hold.close();
});

test('a recipient waiting for its sender asks again soon at first, then every 2 s, within the relay\'s default join limit', () => {
  assert.deepEqual(Array.from({ length: 8 }, (_, i) => senderPollPauseMs(i)), [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
  // joins in the first minute (the first one, then one after each pause): under the relay's 60 a minute
  let t = 0;
  let joins = 1;
  for (let i = 0; t + senderPollPauseMs(i) < 60_000; i++) {
    t += senderPollPauseMs(i);
    joins++;
  }
  assert.equal(joins, 34);
  assert.ok(joins <= 60);
});
