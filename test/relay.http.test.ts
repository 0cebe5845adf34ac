/**
 * The relay's HTTP side: the channel state machine through app.inject() (no port), plus the
 * long-poll against a real listening relay. No sleeps: waits are on events, bounded by test timeouts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { CHANNEL_PATTERN, MAX_WAIT_MS, RELAY_PROTOCOL_VERSION, type ChannelState, type JoinResponse } from '../src/core/relay-api.js';
import { resolveRelayOptions, RELAY_DEFAULTS, type Relay } from '../src/relay/index.js';
import { forEachStore, stateUntil } from './relay-helpers.js';

const X = 'a1'.repeat(32);
const Y = 'b2'.repeat(32);
const HH_K = 'c3'.repeat(32);
const H_K = 'd4'.repeat(32);
const T = { timeout: 10_000 };

interface Answer<B = Record<string, unknown>> {
  status: number;
  body: B;
}

async function post<B = Record<string, unknown>>(relay: Relay, url: string, payload: unknown, remoteAddress?: string): Promise<Answer<B>> {
  const res = await relay.app.inject({ method: 'POST', url, payload: payload as object, ...(remoteAddress ? { remoteAddress } : {}) });
  return { status: res.statusCode, body: res.json() as B };
}

const join = (relay: Relay, body: object, remoteAddress?: string) => post<JoinResponse>(relay, '/join', body, remoteAddress);
const channel = (relay: Relay, body: object, remoteAddress?: string) => post<ChannelState>(relay, '/channel', body, remoteAddress);

/** A relay with a sender and a recipient seated in one channel. */
async function seated(relay: Relay): Promise<{ ch: string; s: string; r: string }> {
  const s = await join(relay, { role: 'sender' });
  assert.equal(s.status, 200);
  const r = await join(relay, { role: 'recipient', channel: s.body.channel });
  assert.equal(r.status, 200);
  return { ch: s.body.channel, s: s.body.uuid, r: r.body.uuid };
}

function expectError(a: Answer<unknown>, status: number, code: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal((a.body as { code: string }).code, code);
  assert.equal(typeof (a.body as { message: string }).message, 'string');
  assert.deepEqual(Object.keys(a.body as object).sort(), ['code', 'message']);
}

/** Resolve once `pred` holds, checking after each turn of the event loop; reject after `ms`. */
async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const lines: string[] = [];
function collect(): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
}

describe('options', () => {
  test('defaults live in RELAY_DEFAULTS and are returned untouched', () => {
    const o = resolveRelayOptions();
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.port, 9009);
    assert.equal(o.tcpPort, 9010);
    assert.equal(o.bodyLimit, RELAY_DEFAULTS.bodyLimit);
    assert.equal(o.logger, false);
  });
  test('bad options throw naming the option', () => {
    assert.throws(() => resolveRelayOptions({ port: 70_000 }), (e: Error) => e instanceof RangeError && /port/.test(e.message));
    assert.throws(() => resolveRelayOptions({ helloTimeoutMs: 1.5 }), (e: Error) => e instanceof TypeError && /helloTimeoutMs/.test(e.message));
    assert.throws(() => resolveRelayOptions({ host: '' }), /host/);
    assert.throws(() => resolveRelayOptions({ port: 9000, tcpPort: 9000 }), /tcpPort/);
    assert.throws(() => resolveRelayOptions({ maxChannels: 0 }), /maxChannels/);
    assert.throws(() => resolveRelayOptions({ bodyLimit: 10 }), /bodyLimit/);
    assert.throws(() => resolveRelayOptions({ logger: 'yes' as never }), /logger/);
    assert.throws(() => resolveRelayOptions({ now: 5 as never }), /now/);
    assert.throws(() => resolveRelayOptions({ prot: 1 } as never), /unknown relay option "prot"/);
  });
});

forEachStore((S) => {
  describe('startRelay', () => {
    test('listens on port 0 and reports where', T, async () => {
      const running = await S.start({ port: 0, tcpPort: 0 });
      try {
        assert.equal(running.httpUrl, `http://127.0.0.1:${running.httpPort}`);
        assert.notEqual(running.tcpPort, 0);
        const res = await fetch(`${running.httpUrl}/join`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ role: 'sender' }),
        });
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as JoinResponse).tcpPort, running.tcpPort);
      } finally {
        await running.close();
      }
    });

    test('the sweep started by listen() closes stale channels', T, async () => {
      const relay = S.build({ port: 0, tcpPort: 0, channelTtlMs: 1, sweepIntervalMs: 5 });
      await relay.listen();
      try {
        const ch = (await join(relay, { role: 'sender' })).body.channel;
        await stateUntil(relay, ch, (st) => st?.closed === true, 'the sweep');
        assert.equal((await relay.store.get(ch))?.closeReason, 'expired');
        const metrics = (await relay.app.inject({ method: 'GET', url: '/metrics' })).body;
        assert.match(metrics, /^tsc_croc_relay_timeouts_total\{limit="channel_ttl"\} 1$/m);
      } finally {
        await relay.close();
      }
    });
  });

  describe('POST /join', () => {
    test('GET /health answers ok and the protocol version', S.inject({}, async (relay) => {
      const res = await relay.app.inject({ method: 'GET', url: '/health' });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { ok: true, version: RELAY_PROTOCOL_VERSION });
    }));

    test('a sender without a channel gets a relay-picked one matching CHANNEL_PATTERN', S.inject({}, async (relay) => {
      const a = await join(relay, { role: 'sender' });
      assert.equal(a.status, 200);
      assert.match(a.body.channel, new RegExp(CHANNEL_PATTERN));
      assert.match(a.body.channel, /^[1-9][0-9]{0,3}$/);
      assert.match(a.body.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const { state, ...rest } = a.body;
      assert.deepEqual({ ...rest, channel: 'c', uuid: 'u' }, {
        version: RELAY_PROTOCOL_VERSION, channel: 'c', uuid: 'u', role: 'sender', curve: 'ed25519', tcpPort: 9010, web: true,
      });
      // the channel as /channel answers it right after the join
      assert.deepEqual(state, (await channel(relay, { channel: a.body.channel, uuid: a.body.uuid })).body);
    }));

    test("a recipient's join answer carries the channel with the sender's x", S.inject({}, async (relay) => {
      const a = await join(relay, { role: 'sender' });
      const x = 'ab'.repeat(32);
      assert.equal((await channel(relay, { channel: a.body.channel, uuid: a.body.uuid, x })).status, 200);
      const b = await join(relay, { role: 'recipient', channel: a.body.channel });
      assert.equal(b.status, 200);
      assert.equal(b.body.state?.x, x);
      assert.equal(b.body.state?.recipient, true);
      assert.equal(b.body.state?.y, null);
      assert.equal(b.body.state?.channel, a.body.channel);
    }));

    test('the picker retries on a taken name', S.inject({ randomInt: sequence([5, 5, 7]) }, async (relay) => {
      assert.equal((await join(relay, { role: 'sender' })).body.channel, '5');
      assert.equal((await join(relay, { role: 'sender' })).body.channel, '7');
    }));

    test('the picker widens the range when a range is crowded, and terminates', async () => {
      const ranges: number[] = [];
      const relay = S.build({ randomInt: (min, max) => (ranges.push(max), max - 1) });
      try {
        assert.equal((await join(relay, { role: 'sender' })).body.channel, '9999');
        // 8 picks in a row hit the taken name: the range widens to 5 digits
        assert.equal((await join(relay, { role: 'sender' })).body.channel, '99999');
        assert.deepEqual(ranges, [10_000, ...Array(8).fill(10_000), 100_000]);
      } finally {
        await relay.close();
      }
      const stuck = S.build({ randomInt: () => 1 });
      try {
        assert.equal((await join(stuck, { role: 'sender' })).body.channel, '1');
        expectError(await join(stuck, { role: 'sender' }), 503, 'ERR_TOO_MANY_CHANNELS');
      } finally {
        await stuck.close();
      }
    });

    test('a sender may name its channel and pick the curve', S.inject({}, async (relay) => {
      const a = await join(relay, { role: 'sender', channel: 'abc123', curve: 'p256' });
      assert.equal(a.status, 200);
      assert.equal(a.body.channel, 'abc123');
      assert.equal(a.body.curve, 'p256');
      const b = await join(relay, { role: 'recipient', channel: 'abc123' });
      assert.equal(b.body.curve, 'p256');
    }));

    test('occupied channel: 409 ERR_CHANNEL_OCCUPIED', S.inject({}, async (relay) => {
      await join(relay, { role: 'sender', channel: 'taken' });
      expectError(await join(relay, { role: 'sender', channel: 'taken' }), 409, 'ERR_CHANNEL_OCCUPIED');
    }));

    test('maxChannels: 503 ERR_TOO_MANY_CHANNELS', S.inject({ maxChannels: 1 }, async (relay) => {
      assert.equal((await join(relay, { role: 'sender' })).status, 200);
      expectError(await join(relay, { role: 'sender' }), 503, 'ERR_TOO_MANY_CHANNELS');
    }));

    test('recipient without a channel: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      expectError(await join(relay, { role: 'recipient' }), 400, 'ERR_BAD_REQUEST');
    }));

    test('recipient of an unknown channel: 404 ERR_CHANNEL_NOT_FOUND', S.inject({}, async (relay) => {
      expectError(await join(relay, { role: 'recipient', channel: 'nope' }), 404, 'ERR_CHANNEL_NOT_FOUND');
    }));

    test('third participant: 409 ERR_CHANNEL_FULL', S.inject({}, async (relay) => {
      const { ch } = await seated(relay);
      expectError(await join(relay, { role: 'recipient', channel: ch }), 409, 'ERR_CHANNEL_FULL');
      expectError(await join(relay, { role: 'sender', channel: ch }), 409, 'ERR_CHANNEL_OCCUPIED');
    }));

    test('recipients racing for one seat (requests in flight together): one takes it, the others get 409 ERR_CHANNEL_FULL', S.inject({}, async (relay) => {
      const s = await join(relay, { role: 'sender' });
      const answers = await Promise.all(['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => join(relay, { role: 'recipient', channel: s.body.channel }, a)));
      assert.deepEqual(answers.map((a) => a.status).sort(), [200, 409, 409]);
      for (const a of answers.filter((x) => x.status !== 200)) expectError(a, 409, 'ERR_CHANNEL_FULL');
      assert.equal((await relay.store.get(s.body.channel))?.version, 2);
    }));

    test('recipient with another curve than the channel: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      const s = await join(relay, { role: 'sender', curve: 'ed25519' });
      expectError(await join(relay, { role: 'recipient', channel: s.body.channel, curve: 'p256' }), 400, 'ERR_BAD_REQUEST');
      assert.equal((await join(relay, { role: 'recipient', channel: s.body.channel, curve: 'ed25519' })).status, 200);
    }));

    test('recipient of a closed channel: 404 ERR_CHANNEL_NOT_FOUND (a closed channel no longer holds its name)', S.inject({}, async (relay) => {
      const s = await join(relay, { role: 'sender' });
      await channel(relay, { channel: s.body.channel, uuid: s.body.uuid, close: true, reason: 'cancelled' });
      expectError(await join(relay, { role: 'recipient', channel: s.body.channel }), 404, 'ERR_CHANNEL_NOT_FOUND');
    }));
  });

  describe('POST /channel', () => {
    test('the whole exchange in protocol order, one version per change', S.inject({}, async (relay) => {
      const s = await join(relay, { role: 'sender' });
      const ch = s.body.channel;
      let a = await channel(relay, { channel: ch, uuid: s.body.uuid });
      assert.deepEqual(a.body, {
        channel: ch, curve: 'ed25519', version: 1, sender: true, recipient: false,
        x: null, y: null, hh_k: null, h_k: null, stapled: false, closed: false, closeReason: null, attempts: 0, maxAttempts: 5,
      });
      a = await channel(relay, { channel: ch, uuid: s.body.uuid, x: X });
      assert.equal(a.body.version, 2);
      const r = await join(relay, { role: 'recipient', channel: ch });
      a = await channel(relay, { channel: ch, uuid: r.body.uuid });
      assert.equal(a.body.version, 3);
      assert.equal(a.body.recipient, true);
      assert.equal(a.body.x, X);
      a = await channel(relay, { channel: ch, uuid: r.body.uuid, y: Y, hh_k: HH_K });
      assert.equal(a.body.version, 4);
      a = await channel(relay, { channel: ch, uuid: s.body.uuid, h_k: H_K });
      assert.equal(a.body.version, 5);
      assert.deepEqual([a.body.x, a.body.y, a.body.hh_k, a.body.h_k], [X, Y, HH_K, H_K]);
      a = await channel(relay, { channel: ch, uuid: r.body.uuid, close: true });
      assert.equal(a.status, 200);
      assert.equal(a.body.version, 6);
      assert.equal(a.body.closed, true);
      assert.equal(a.body.closeReason, 'done');
    }));

    test('wrong role: 403 ERR_WRONG_ROLE', S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      expectError(await channel(relay, { channel: ch, uuid: r, x: X }), 403, 'ERR_WRONG_ROLE');
      await channel(relay, { channel: ch, uuid: s, x: X });
      expectError(await channel(relay, { channel: ch, uuid: s, y: Y, hh_k: HH_K }), 403, 'ERR_WRONG_ROLE');
      await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K });
      expectError(await channel(relay, { channel: ch, uuid: r, h_k: H_K }), 403, 'ERR_WRONG_ROLE');
    }));

    test('a field written twice: 409 ERR_FIELD_ALREADY_SET', S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      await channel(relay, { channel: ch, uuid: s, x: X });
      expectError(await channel(relay, { channel: ch, uuid: s, x: X }), 409, 'ERR_FIELD_ALREADY_SET');
      await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K });
      expectError(await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K }), 409, 'ERR_FIELD_ALREADY_SET');
      await channel(relay, { channel: ch, uuid: s, h_k: H_K });
      expectError(await channel(relay, { channel: ch, uuid: s, h_k: H_K }), 409, 'ERR_FIELD_ALREADY_SET');
    }));

    test("fin: the recipient's proof, after h_k, once, also into a closed channel; the sender reads it", S.inject({}, async (relay) => {
      const FIN = 'e5'.repeat(32);
      const { ch, s, r } = await seated(relay);
      await channel(relay, { channel: ch, uuid: s, x: X });
      await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K });
      expectError(await channel(relay, { channel: ch, uuid: r, fin: FIN }), 409, 'ERR_OUT_OF_ORDER');
      await channel(relay, { channel: ch, uuid: s, h_k: H_K });
      expectError(await channel(relay, { channel: ch, uuid: s, fin: FIN }), 403, 'ERR_WRONG_ROLE');
      expectError(await channel(relay, { channel: ch, uuid: r, fin: 'E5'.repeat(32) }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: s, reject: true, fin: FIN }), 400, 'ERR_BAD_REQUEST');
      assert.equal((await channel(relay, { channel: ch, uuid: s })).body.fin, undefined);
      // the sender closes first (its connection dropped), then the recipient says goodbye with its proof
      assert.equal((await channel(relay, { channel: ch, uuid: s, close: true, reason: 'error' })).body.closed, true);
      const version = (await channel(relay, { channel: ch, uuid: s })).body.version;
      const a = await channel(relay, { channel: ch, uuid: r, close: true, reason: 'done', fin: FIN });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      const seen = await channel(relay, { channel: ch, uuid: s });
      assert.deepEqual([seen.body.fin, seen.body.closed, seen.body.closeReason, seen.body.version], [FIN, true, 'error', version]);
      // once: the same value again changes nothing, another is refused
      assert.equal((await channel(relay, { channel: ch, uuid: r, fin: FIN })).status, 200);
      expectError(await channel(relay, { channel: ch, uuid: r, fin: 'f6'.repeat(32) }), 409, 'ERR_FIELD_ALREADY_SET');
    }));

    test('out of order: y before x, h_k before y: 409 ERR_OUT_OF_ORDER', S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      expectError(await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K }), 409, 'ERR_OUT_OF_ORDER');
      expectError(await channel(relay, { channel: ch, uuid: s, h_k: H_K }), 409, 'ERR_OUT_OF_ORDER');
      expectError(await channel(relay, { channel: ch, uuid: s, x: X, h_k: H_K }), 409, 'ERR_OUT_OF_ORDER');
      // All or nothing: the refused request did not write x.
      assert.equal((await channel(relay, { channel: ch, uuid: s })).body.x, null);
    }));

    test('y without hh_k, hh_k without y: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      await channel(relay, { channel: ch, uuid: s, x: X });
      expectError(await channel(relay, { channel: ch, uuid: r, y: Y }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: r, hh_k: HH_K }), 400, 'ERR_BAD_REQUEST');
    }));

    test('unknown uuid: 403 ERR_UNKNOWN_PARTICIPANT; unknown channel: 404 ERR_CHANNEL_NOT_FOUND', S.inject({}, async (relay) => {
      const { ch, s } = await seated(relay);
      expectError(await channel(relay, { channel: ch, uuid: crypto.randomUUID() }), 403, 'ERR_UNKNOWN_PARTICIPANT');
      expectError(await channel(relay, { channel: 'zzz', uuid: s }), 404, 'ERR_CHANNEL_NOT_FOUND');
    }));

    test("a participant's uuid on another channel: 403 ERR_UNKNOWN_PARTICIPANT", S.inject({}, async (relay) => {
      const one = await seated(relay);
      const two = await seated(relay);
      expectError(await channel(relay, { channel: two.ch, uuid: one.s, x: X }), 403, 'ERR_UNKNOWN_PARTICIPANT');
      expectError(await channel(relay, { channel: two.ch, uuid: one.r }), 403, 'ERR_UNKNOWN_PARTICIPANT');
    }));

    test("the other participant's uuid from the other's address cannot write the other's fields", S.inject({}, async (relay) => {
      const s = await join(relay, { role: 'sender' }, '10.1.2.3');
      const r = await join(relay, { role: 'recipient', channel: s.body.channel }, '10.1.2.4');
      const ch = s.body.channel;
      // The recipient, holding the sender's uuid, is refused by address; with its own uuid, by role.
      expectError(await channel(relay, { channel: ch, uuid: s.body.uuid, x: X }, '10.1.2.4'), 403, 'ERR_ADDRESS_MISMATCH');
      expectError(await channel(relay, { channel: ch, uuid: r.body.uuid, x: X }, '10.1.2.4'), 403, 'ERR_WRONG_ROLE');
      assert.equal((await relay.store.get(ch))?.x, null);
    }));

    test('a uuid used from another address: 403 ERR_ADDRESS_MISMATCH', S.inject({}, async (relay) => {
      const s = await join(relay, { role: 'sender' }, '10.1.2.3');
      const ch = s.body.channel;
      expectError(await channel(relay, { channel: ch, uuid: s.body.uuid, x: X }, '10.1.2.4'), 403, 'ERR_ADDRESS_MISMATCH');
      assert.equal((await channel(relay, { channel: ch, uuid: s.body.uuid, x: X }, '10.1.2.3')).status, 200);
      // An IPv4 peer seen through a dual-stack socket is the same peer.
      assert.equal((await channel(relay, { channel: ch, uuid: s.body.uuid }, '::ffff:10.1.2.3')).status, 200);
    }));

    test('closed channel: writes get 410, reads and a second close still answer', S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      const closed = await channel(relay, { channel: ch, uuid: s, close: true, reason: 'wrong-code' });
      assert.equal(closed.body.closeReason, 'wrong-code');
      expectError(await channel(relay, { channel: ch, uuid: s, x: X }), 410, 'ERR_CHANNEL_CLOSED');
      const read = await channel(relay, { channel: ch, uuid: r });
      assert.equal(read.status, 200);
      assert.equal(read.body.closed, true);
      assert.equal(read.body.closeReason, 'wrong-code');
      const again = await channel(relay, { channel: ch, uuid: r, close: true });
      assert.equal(again.status, 200);
      assert.equal(again.body.version, closed.body.version);
      assert.equal(again.body.closeReason, 'wrong-code');
    }));

    test('reason without close: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      const { ch, s } = await seated(relay);
      expectError(await channel(relay, { channel: ch, uuid: s, reason: 'done' }), 400, 'ERR_BAD_REQUEST');
    }));

    test('expiry: an unstapled channel closes after channelTtlMs, a closed one is removed after closedRetentionMs', async () => {
      let now = 1_000;
      const relay = S.build({ now: () => now, channelTtlMs: 100, closedRetentionMs: 50 });
      try {
        const { ch, s } = await seated(relay);
        now += 99;
        assert.deepEqual((await relay.store.expire(now)), { closed: [], removed: [], evicted: [] });
        now += 1;
        assert.deepEqual((await relay.store.expire(now)), { closed: [ch], removed: [], evicted: [] });
        const a = await channel(relay, { channel: ch, uuid: s });
        assert.equal(a.body.closed, true);
        assert.equal(a.body.closeReason, 'expired');
        now += 50;
        assert.deepEqual((await relay.store.expire(now)), { closed: [], removed: [ch], evicted: [] });
        expectError(await channel(relay, { channel: ch, uuid: s }), 404, 'ERR_CHANNEL_NOT_FOUND');
      } finally {
        await relay.close();
      }
    });
  });

  describe('malformed requests', () => {
    test('malformed JSON: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      const res = await relay.app.inject({ method: 'POST', url: '/join', headers: { 'content-type': 'application/json' }, payload: '{"role":' });
      expectError({ status: res.statusCode, body: res.json() }, 400, 'ERR_BAD_REQUEST');
      const empty = await relay.app.inject({ method: 'POST', url: '/join', headers: { 'content-type': 'application/json' }, payload: '' });
      expectError({ status: empty.statusCode, body: empty.json() }, 400, 'ERR_BAD_REQUEST');
    }));

    test('body over bodyLimit: 413 ERR_BODY_TOO_LARGE', S.inject({}, async (relay) => {
      const res = await relay.app.inject({ method: 'POST', url: '/join', payload: { role: 'sender', pad: 'x'.repeat(5000) } });
      expectError({ status: res.statusCode, body: res.json() }, 413, 'ERR_BODY_TOO_LARGE');
    }));

    test('unknown field, wrong type, bad pattern, bad enum, wait out of range: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      const { ch, s } = await seated(relay);
      expectError(await join(relay, { role: 'sender', extra: 1 }), 400, 'ERR_BAD_REQUEST');
      expectError(await join(relay, { role: 'boss' }), 400, 'ERR_BAD_REQUEST');
      expectError(await join(relay, { role: 'sender', channel: 'has-dash' }), 400, 'ERR_BAD_REQUEST');
      expectError(await join(relay, { role: 'sender', curve: 'p384' }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: s, extra: true }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: s, x: 'XYZ' }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: s, wait: '5' }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: s, wait: MAX_WAIT_MS + 1 }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch, uuid: 'not-a-uuid' }), 400, 'ERR_BAD_REQUEST');
      expectError(await channel(relay, { channel: ch }), 400, 'ERR_BAD_REQUEST');
      const noBody = await relay.app.inject({ method: 'POST', url: '/join' });
      expectError({ status: noBody.statusCode, body: noBody.json() }, 400, 'ERR_BAD_REQUEST');
    }));

    test('a body that is not JSON: 400 ERR_BAD_REQUEST', S.inject({}, async (relay) => {
      for (const type of ['text/plain', 'application/xml']) {
        const res = await relay.app.inject({ method: 'POST', url: '/join', headers: { 'content-type': type }, payload: 'role=sender' });
        expectError({ status: res.statusCode, body: res.json() }, 400, 'ERR_BAD_REQUEST');
      }
    }));

    test('unknown route or method: 404 ERR_NOT_FOUND', S.inject({}, async (relay) => {
      for (const [method, url] of [['GET', '/nope'], ['GET', '/join'], ['DELETE', '/channel']] as const) {
        const res = await relay.app.inject({ method, url });
        expectError({ status: res.statusCode, body: res.json() }, 404, 'ERR_NOT_FOUND');
      }
    }));

    test('an unexpected failure: 500 ERR_INTERNAL with a generic message', S.inject({}, async (relay) => {
      relay.store.join = () => {
        throw new Error('secret detail');
      };
      const res = await relay.app.inject({ method: 'POST', url: '/join', payload: { role: 'sender' } });
      expectError({ status: res.statusCode, body: res.json() }, 500, 'ERR_INTERNAL');
      assert.doesNotMatch(res.body, /secret detail/);
    }));
  });

  describe('long-poll', () => {
    test('answers as soon as the other side writes', T, S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      const before = (await channel(relay, { channel: ch, uuid: r })).body.version;
      const poll = channel(relay, { channel: ch, uuid: r, wait: MAX_WAIT_MS, since: before });
      await until(() => relay.store.watcherCount(ch) === 1, 'the poll to subscribe');
      await channel(relay, { channel: ch, uuid: s, x: X });
      const a = await poll;
      assert.equal(a.status, 200);
      assert.equal(a.body.version, before + 1);
      assert.equal(a.body.x, X);
      assert.equal(relay.store.watcherCount(ch), 0);
    }));

    test('answers the unchanged state when the wait elapses', T, S.inject({}, async (relay) => {
      const { ch, r } = await seated(relay);
      const a = await channel(relay, { channel: ch, uuid: r, wait: 50 });
      assert.equal(a.status, 200);
      assert.equal(a.body.version, 2);
      assert.equal(relay.store.watcherCount(ch), 0);
    }));

    test('answers at once when the version is already past `since`', T, S.inject({}, async (relay) => {
      const { ch, r } = await seated(relay);
      const a = await channel(relay, { channel: ch, uuid: r, wait: MAX_WAIT_MS, since: 0 });
      assert.equal(a.body.version, 2);
    }));

    test('a close wakes the poll of the other peer, which learns the reason', T, S.inject({}, async (relay) => {
      const { ch, s, r } = await seated(relay);
      // (the sender's close ends the channel; a recipient's before h_k only frees its seat: relay-lifecycle.test.ts)
      const poll = channel(relay, { channel: ch, uuid: r, wait: MAX_WAIT_MS, since: 2 });
      await until(() => relay.store.watcherCount(ch) === 1, 'the poll to subscribe');
      await channel(relay, { channel: ch, uuid: s, close: true, reason: 'cancelled' });
      const a = await poll;
      assert.equal(a.body.closed, true);
      assert.equal(a.body.closeReason, 'cancelled');
    }));

    test('a removed channel ends the poll with 404', T, S.inject({}, async (relay) => {
      const { ch, s } = await seated(relay);
      const poll = channel(relay, { channel: ch, uuid: s, wait: MAX_WAIT_MS, since: 2 });
      await until(() => relay.store.watcherCount(ch) === 1, 'the poll to subscribe');
      (await relay.store.remove(ch));
      expectError(await poll, 404, 'ERR_CHANNEL_NOT_FOUND');
    }));

    test('a client that disconnects while waiting is unsubscribed', T, S.inject({ port: 0, tcpPort: 0 }, async (relay) => {
      const { httpPort } = await relay.listen();
      const { ch, s } = await seated(relay);
      const req = http.request({ host: '127.0.0.1', port: httpPort, method: 'POST', path: '/channel', headers: { 'content-type': 'application/json' } });
      req.on('error', () => {});
      req.end(JSON.stringify({ channel: ch, uuid: s, wait: MAX_WAIT_MS, since: 2 }));
      await until(() => relay.store.watcherCount(ch) === 1, 'the poll to subscribe');
      req.destroy();
      await until(() => relay.store.watcherCount(ch) === 0, 'the poll to unsubscribe');
    }));

    test('closing the relay answers pending polls', T, async () => {
      const relay = S.build({ port: 0, tcpPort: 0 });
      const { httpPort } = await relay.listen();
      const { ch, s } = await seated(relay);
      const poll = fetch(`http://127.0.0.1:${httpPort}/channel`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ channel: ch, uuid: s, wait: MAX_WAIT_MS, since: 2 }),
      });
      await until(() => relay.store.watcherCount(ch) === 1, 'the poll to subscribe');
      await relay.close();
      const res = await poll;
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as ChannelState).version, 2);
    });
  });

  describe('logging', () => {
    test('never logs a PAKE field or a uuid', S.inject({ logger: { level: 'debug', stream: collect() } }, async (relay) => {
      const { ch, s, r } = await seated(relay);
      await channel(relay, { channel: ch, uuid: s, x: X });
      await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K });
      await channel(relay, { channel: ch, uuid: s, h_k: H_K });
      await channel(relay, { channel: ch, uuid: s, h_k: H_K }); // refused: logged as an error
      await channel(relay, { channel: ch, uuid: r, close: true });
      const logs = lines.join('');
      assert.match(logs, /"channel":"\d+"/);
      for (const secret of [X, Y, HH_K, H_K, s, r]) assert.equal(logs.includes(secret), false, `log leaks ${secret}`);
    }));
  });

  /** A deterministic randomInt: the given values in order, then the last one forever. */
  function sequence(values: number[]): (min: number, max: number) => number {
    let i = 0;
    return () => values[Math.min(i++, values.length - 1)]!;
  }
});
