/**
 * The relay's TCP stapler against real sockets on 127.0.0.1, port 0. No sleeps: every wait is on a
 * socket event or a store change, bounded by a deadline.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { MAX_HELLO_BYTES, type JoinResponse } from '../src/core/relay-api.js';
import type { Relay } from '../src/relay/index.js';
import { Client, expectRefused, seat, forEachStore, stateUntil, staple, stapleSeats, until } from './relay-helpers.js';

const T = { timeout: 15_000 };

async function join(relay: Relay, body: object, remoteAddress?: string): Promise<JoinResponse> {
  const res = await relay.app.inject({ method: 'POST', url: '/join', payload: body, ...(remoteAddress ? { remoteAddress } : {}) });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as JoinResponse;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

forEachStore((S) => {
  describe('stapling', () => {
    test('two peers staple and exchange 1 MB each way', T, S.withRelay({}, async (relay) => {
      const { a, b, channel } = await staple(relay);
      const toB = randomBytes(1 << 20);
      const toA = randomBytes(1 << 20);
      a.socket.end(toB);
      b.socket.end(toA);
      await a.until(() => a.ended, 'a to receive everything');
      await b.until(() => b.ended, 'b to receive everything');
      assert.equal(sha256(a.data), sha256(toA));
      assert.equal(sha256(b.data), sha256(toB));
      assert.equal(relay.tcp.bytesRelayed, 2 << 20);
      // Both sides done: the channel is closed with reason 'done' and its sockets are gone.
      await stateUntil(relay, channel, (s) => s?.closed === true, 'the channel to close');
      assert.equal((await relay.store.get(channel))?.closeReason, 'done');
      assert.equal((await relay.store.get(channel))?.stapled, true);
      await a.until(() => a.closed, 'a to close');
      await b.until(() => b.closed, 'b to close');
    }));

    test('bytes sent right after the hello, before the partner arrives, are forwarded after stapled', T, S.withRelay({}, async (relay) => {
      const seats = await seat(relay);
      const early = Buffer.from('early bytes');
      const a = await Client.connect(seats.tcpPort);
      a.hello(seats.channel, seats.sender, { data: early });
      await until(() => relay.tcp.waitingCount === 1, 'the relay to seat a');
      const before = (await relay.store.get(seats.channel))!.version;
      const b = await Client.connect(seats.tcpPort);
      b.hello(seats.channel, seats.recipient);
      assert.deepEqual(await b.reply(), { v: 1, type: 'stapled' });
      await b.until(() => b.data.length >= early.length, 'the early bytes');
      assert.deepEqual(b.data, early);
      assert.deepEqual(await a.reply(), { v: 1, type: 'stapled' });
      const state = (await relay.store.get(seats.channel))!;
      assert.equal(state.stapled, true);
      assert.equal(state.version, before + 1);
      a.socket.destroy();
      b.socket.destroy();
    }));

    test('one side ending ends the other; the other may still answer (half-close)', T, S.withRelay({}, async (relay) => {
      const { a, b, channel } = await staple(relay, { allowHalfOpen: true });
      a.socket.end(Buffer.from('request'));
      await b.until(() => b.ended, 'b to see the end');
      assert.equal(b.data.toString(), 'request');
      assert.equal((await relay.store.get(channel))?.closed, false);
      b.socket.end(Buffer.from('response'));
      await a.until(() => a.ended, 'a to see the end');
      assert.equal(a.data.toString(), 'response');
      await stateUntil(relay, channel, (s) => s?.closed === true, 'the channel to close');
      assert.equal((await relay.store.get(channel))?.closeReason, 'done');
    }));

    test('one side reset destroys the other', T, S.withRelay({}, async (relay) => {
      const { a, b, channel } = await staple(relay);
      a.socket.resetAndDestroy();
      await b.until(() => b.closed, 'b to be closed');
      await stateUntil(relay, channel, (s) => s?.closed === true, 'the channel to close');
      assert.equal((await relay.store.get(channel))?.closeReason, 'error');
    }));

    test('closing the channel over HTTP destroys the stapled sockets', T, S.withRelay({}, async (relay) => {
      const { a, b, channel, recipient } = await staple(relay);
      const res = await relay.app.inject({ method: 'POST', url: '/channel', payload: { channel, uuid: recipient, close: true, reason: 'cancelled' } });
      assert.equal(res.statusCode, 200);
      await a.until(() => a.closed, 'a to be closed');
      await b.until(() => b.closed, 'b to be closed');
      assert.equal((await relay.store.get(channel))?.closeReason, 'cancelled');
    }));

    test('expiry takes a peer waiting for its partner down', T, async () => {
      let now = 0;
      const relay = S.build({ port: 0, tcpPort: 0, now: () => now, channelTtlMs: 1000 });
      await relay.listen();
      try {
        const seats = await seat(relay);
        const a = await Client.connect(seats.tcpPort);
        a.hello(seats.channel, seats.sender);
        await until(() => relay.tcp.waitingCount === 1, 'the relay to seat a');
        now = 1000;
        assert.deepEqual((await relay.store.expire(now)).closed, [seats.channel]);
        await a.until(() => a.closed, 'a to be closed');
      } finally {
        await relay.close();
      }
    });

    test('a peer that leaves before its partner arrives frees its seat', T, S.withRelay({}, async (relay) => {
      const seats = await seat(relay);
      const first = await Client.connect(seats.tcpPort);
      first.hello(seats.channel, seats.sender);
      await until(() => relay.tcp.waitingCount === 1, 'the relay to seat the first socket');
      first.socket.destroy();
      await until(() => relay.tcp.waitingCount === 0, 'the relay to free the seat');
      const { a, b } = await stapleSeats(seats);
      a.socket.destroy();
      b.socket.destroy();
    }));
  });

  describe('refused hellos', () => {
    /** After every refusal the relay still staples a fresh pair. */
    async function stillServes(relay: Relay): Promise<void> {
      const { a, b } = await staple(relay);
      a.socket.end(Buffer.from('ping'));
      await b.until(() => b.ended, 'b to receive ping');
      assert.equal(b.data.toString(), 'ping');
      b.socket.end();
      await a.until(() => a.closed, 'a to close');
    }

    test('garbage: ERR_HELLO', T, S.withRelay({}, async (relay) => {
      const c = await Client.connect(relay.tcp.port!);
      c.socket.write('GET / HTTP/1.1\r\nHost: relay\r\n\r\n');
      await expectRefused(c, 'ERR_HELLO');
      const d = await Client.connect(relay.tcp.port!);
      d.socket.write(Buffer.concat([Buffer.from([0, 5]), Buffer.from('hello')]));
      await expectRefused(d, 'ERR_HELLO');
      const e = await Client.connect(relay.tcp.port!);
      const notHello = Buffer.from(JSON.stringify({ v: 1, channel: 'abc' }));
      e.socket.write(Buffer.concat([Buffer.from([0, notHello.length]), notHello]));
      await expectRefused(e, 'ERR_HELLO');
      await stillServes(relay);
    }));

    test('oversize: ERR_HELLO', T, S.withRelay({}, async (relay) => {
      const c = await Client.connect(relay.tcp.port!);
      const big = Buffer.alloc(2 + MAX_HELLO_BYTES + 1, 0x20);
      big.writeUInt16BE(MAX_HELLO_BYTES + 1, 0);
      c.socket.write(big);
      await expectRefused(c, 'ERR_HELLO');
      await stillServes(relay);
    }));

    test('slow (no complete hello within helloTimeoutMs): ERR_HELLO', T, S.withRelay({ helloTimeoutMs: 100 }, async (relay) => {
      const c = await Client.connect(relay.tcp.port!);
      c.socket.write(Buffer.from([0]));
      await expectRefused(c, 'ERR_HELLO');
      const silent = await Client.connect(relay.tcp.port!);
      await expectRefused(silent, 'ERR_HELLO');
      await stillServes(relay);
    }));

    test('ended before the hello: ERR_HELLO', T, S.withRelay({}, async (relay) => {
      const c = await Client.connect(relay.tcp.port!, { allowHalfOpen: true });
      c.socket.end(Buffer.from([0, 40]));
      await expectRefused(c, 'ERR_HELLO');
    }));

    test('unknown channel: ERR_CHANNEL_NOT_FOUND', T, S.withRelay({}, async (relay) => {
      const c = await Client.connect(relay.tcp.port!);
      c.hello('nosuch', crypto.randomUUID());
      await expectRefused(c, 'ERR_CHANNEL_NOT_FOUND');
      await stillServes(relay);
    }));

    test('wrong uuid: ERR_UNKNOWN_PARTICIPANT', T, S.withRelay({}, async (relay) => {
      const seats = await seat(relay);
      const c = await Client.connect(seats.tcpPort);
      c.hello(seats.channel, crypto.randomUUID());
      await expectRefused(c, 'ERR_UNKNOWN_PARTICIPANT');
      await stillServes(relay);
    }));

    test('a uuid joined from another address: ERR_ADDRESS_MISMATCH', T, S.withRelay({}, async (relay) => {
      const s = await join(relay, { role: 'sender' }, '10.9.8.7');
      const c = await Client.connect(s.tcpPort);
      c.hello(s.channel, s.uuid);
      await expectRefused(c, 'ERR_ADDRESS_MISMATCH');
    }));

    test('a closed channel: ERR_CHANNEL_CLOSED', T, S.withRelay({}, async (relay) => {
      const seats = await seat(relay);
      (await relay.store.close(seats.channel, 'cancelled'));
      const c = await Client.connect(seats.tcpPort);
      c.hello(seats.channel, seats.sender);
      await expectRefused(c, 'ERR_CHANNEL_CLOSED');
    }));

    test('a third socket for a stapled pair: ERR_CHANNEL_FULL, the pair keeps working', T, S.withRelay({}, async (relay) => {
      const { a, b, channel, sender, recipient, tcpPort } = await staple(relay);
      for (const uuid of [sender, recipient]) {
        const c = await Client.connect(tcpPort);
        c.hello(channel, uuid);
        await expectRefused(c, 'ERR_CHANNEL_FULL');
      }
      a.socket.end(Buffer.from('still here'));
      await b.until(() => b.ended, 'b to receive');
      assert.equal(b.data.toString(), 'still here');
      b.socket.end();
      await stillServes(relay);
    }));
  });
});
