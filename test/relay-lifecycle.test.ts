/**
 * The recipient seat before the key agreement completes (docs/relay-api.md "Transitions"): the
 * sender's reject, the recipient timeout, a recipient that leaves, the attempts cap, the evicted
 * uuid's view; and the space relay-picked channel names are drawn from.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChannelState, JoinResponse } from '../src/core/relay-api.js';
import type { Relay } from '../src/relay/index.js';
import { NAME_SPREAD, channelNameDigits } from '../src/relay/channels.js';
import { Client, HH_K, H_K, X, Y, expectError, expectRefused, forEachStore, post, staple, until } from './relay-helpers.js';

const STRANGER = '10.9.0.2';
const X2 = 'e5'.repeat(32);

async function join(relay: Relay, body: object, remoteAddress = '127.0.0.1') {
  return post<JoinResponse>(relay, '/join', body, { remoteAddress });
}
async function channel(relay: Relay, body: object, remoteAddress = '127.0.0.1') {
  return post<ChannelState>(relay, '/channel', body, { remoteAddress });
}

/** A sender (127.0.0.1) with x written and a recipient from STRANGER that wrote y + hh_k. */
async function guessed(relay: Relay, from = STRANGER): Promise<{ ch: string; s: string; r: string }> {
  const s = await join(relay, { role: 'sender' });
  const ch = s.body.channel;
  assert.equal((await channel(relay, { channel: ch, uuid: s.body.uuid, x: X })).status, 200);
  const r = await join(relay, { role: 'recipient', channel: ch }, from);
  assert.equal(r.status, 200);
  assert.equal((await channel(relay, { channel: ch, uuid: r.body.uuid, y: Y, hh_k: HH_K }, from)).status, 200);
  return { ch, s: s.body.uuid, r: r.body.uuid };
}

forEachStore((S) => {
  describe('reject: the sender refuses a recipient whose confirmation failed', () => {
    test('the recipient is evicted, x/y/hh_k are cleared, the attempt is counted, one version; a new recipient may join', async () => {
      await S.withRelay({}, async (relay) => {
        const { ch, s, r } = await guessed(relay);
        assert.equal((await relay.store.openCountOf(STRANGER)), 1);
        const before = (await relay.store.get(ch))!.version;
        const a = await channel(relay, { channel: ch, uuid: s, reject: true });
        assert.equal(a.status, 200, JSON.stringify(a.body));
        assert.deepEqual(
          { ...a.body, channel: 'c' },
          { channel: 'c', curve: 'ed25519', version: before + 1, sender: true, recipient: false, x: null, y: null, hh_k: null, h_k: null, stapled: false, closed: false, closeReason: null, attempts: 1, maxAttempts: 5 },
        );
        assert.equal((await relay.store.openCountOf(STRANGER)), 0, 'the seat no longer counts against the address');
        // the evicted uuid reads the channel as closed 'wrong-code', at the version of its eviction
        const view = await channel(relay, { channel: ch, uuid: r }, STRANGER);
        assert.equal(view.status, 200);
        assert.deepEqual([view.body.closed, view.body.closeReason, view.body.version, view.body.x], [true, 'wrong-code', before + 1, null]);
        // ...even when it long-polls: a closed view answers at once
        const polled = await channel(relay, { channel: ch, uuid: r, wait: 30_000, since: before + 1 }, STRANGER);
        assert.equal(polled.body.closed, true);
        // the sender writes a fresh x; the next recipient runs the exchange to the end
        assert.equal((await channel(relay, { channel: ch, uuid: s, x: X2 })).body.x, X2);
        const r2 = await join(relay, { role: 'recipient', channel: ch });
        assert.equal(r2.status, 200);
        assert.equal((await channel(relay, { channel: ch, uuid: r2.body.uuid, y: Y, hh_k: HH_K })).status, 200);
        const done = await channel(relay, { channel: ch, uuid: s, h_k: H_K });
        assert.deepEqual([done.body.x, done.body.h_k, done.body.attempts], [X2, H_K, 1]);
      })();
    });

    test('error table: wrong role, wrong state, with other fields, closed channel, evicted uuid', async () => {
      await S.withRelay({}, async (relay) => {
        const { ch, s, r } = await guessed(relay);
        expectError(await channel(relay, { channel: ch, uuid: r, reject: true }, STRANGER), 403, 'ERR_WRONG_ROLE');
        expectError(await channel(relay, { channel: ch, uuid: s, reject: true, x: X2 }), 400, 'ERR_BAD_REQUEST');
        expectError(await channel(relay, { channel: ch, uuid: s, reject: true, close: true }), 400, 'ERR_BAD_REQUEST');
        expectError(await channel(relay, { channel: ch, uuid: s, reject: 'yes' }), 400, 'ERR_BAD_REQUEST');
        assert.equal((await channel(relay, { channel: ch, uuid: s, reject: true })).status, 200);
        // no y any more: nothing to reject
        expectError(await channel(relay, { channel: ch, uuid: s, reject: true }), 409, 'ERR_OUT_OF_ORDER');
        // the evicted uuid: every write refused, from its address; from another, the address check first
        expectError(await channel(relay, { channel: ch, uuid: r, y: Y, hh_k: HH_K }, STRANGER), 410, 'ERR_CHANNEL_CLOSED');
        expectError(await channel(relay, { channel: ch, uuid: r, reject: true }, STRANGER), 410, 'ERR_CHANNEL_CLOSED');
        expectError(await channel(relay, { channel: ch, uuid: r }, '10.9.0.3'), 403, 'ERR_ADDRESS_MISMATCH');
        // its goodbye changes nothing
        const v = (await relay.store.get(ch))!.version;
        assert.equal((await channel(relay, { channel: ch, uuid: r, close: true, reason: 'wrong-code' }, STRANGER)).body.closed, true);
        assert.equal((await relay.store.get(ch))!.version, v);
        assert.equal((await relay.store.get(ch))!.closed, false);

        // after h_k the recipient is accepted: no reject any more
        await channel(relay, { channel: ch, uuid: s, x: X2 });
        const r2 = await join(relay, { role: 'recipient', channel: ch });
        await channel(relay, { channel: ch, uuid: r2.body.uuid, y: Y, hh_k: HH_K });
        await channel(relay, { channel: ch, uuid: s, h_k: H_K });
        expectError(await channel(relay, { channel: ch, uuid: s, reject: true }), 409, 'ERR_FIELD_ALREADY_SET');
        // a closed channel: 410
        await channel(relay, { channel: ch, uuid: s, close: true, reason: 'cancelled' });
        expectError(await channel(relay, { channel: ch, uuid: s, reject: true }), 410, 'ERR_CHANNEL_CLOSED');
      })();
    });

    test('an evicted uuid cannot connect over TCP', async () => {
      await S.withRelay({}, async (relay) => {
        const { ch, s, r } = await guessed(relay, '127.0.0.1');
        await channel(relay, { channel: ch, uuid: s, reject: true });
        const c = await Client.connect(relay.tcp.port!);
        c.hello(ch, r);
        await expectRefused(c, 'ERR_CHANNEL_CLOSED');
      })();
    });

    test('maxAttempts failed attempts close the channel "wrong-code"', async () => {
      await S.withRelay({ maxAttempts: 2 }, async (relay) => {
        const { ch, s } = await guessed(relay);
        assert.equal((await channel(relay, { channel: ch, uuid: s, reject: true })).body.attempts, 1);
        await channel(relay, { channel: ch, uuid: s, x: X2 });
        const r2 = await join(relay, { role: 'recipient', channel: ch }, '10.9.0.4');
        await channel(relay, { channel: ch, uuid: r2.body.uuid, y: Y, hh_k: HH_K }, '10.9.0.4');
        const last = await channel(relay, { channel: ch, uuid: s, reject: true });
        assert.deepEqual([last.body.closed, last.body.closeReason, last.body.attempts, last.body.maxAttempts], [true, 'wrong-code', 2, 2]);
        // the name is free again: no channel for a recipient until a sender comes back
        expectError(await join(relay, { role: 'recipient', channel: ch }), 404, 'ERR_CHANNEL_NOT_FOUND');
        assert.equal((await relay.store.openCountOf('127.0.0.1')), 0);
      })();
    });
  });

  describe('a recipient that closes before h_k leaves its seat', () => {
    test('before y: not an attempt; after y + hh_k: an attempt; the channel stays open and the sender is woken', async () => {
      await S.withRelay({}, async (relay) => {
        const s = await join(relay, { role: 'sender' });
        const ch = s.body.channel;
        await channel(relay, { channel: ch, uuid: s.body.uuid, x: X });
        const r = await join(relay, { role: 'recipient', channel: ch }, STRANGER);
        const poll = channel(relay, { channel: ch, uuid: s.body.uuid, wait: 30_000, since: (await relay.store.get(ch))!.version });
        await until(() => relay.store.watcherCount(ch) === 1, 'the poll to subscribe');
        const left = await channel(relay, { channel: ch, uuid: r.body.uuid, close: true, reason: 'cancelled' }, STRANGER);
        assert.deepEqual([left.body.closed, left.body.closeReason], [true, 'cancelled']);
        const woken = await poll;
        assert.deepEqual([woken.body.closed, woken.body.recipient, woken.body.x, woken.body.attempts], [false, false, null, 0]);

        await channel(relay, { channel: ch, uuid: s.body.uuid, x: X2 });
        const r2 = await join(relay, { role: 'recipient', channel: ch }, STRANGER);
        await channel(relay, { channel: ch, uuid: r2.body.uuid, y: Y, hh_k: HH_K }, STRANGER);
        await channel(relay, { channel: ch, uuid: r2.body.uuid, close: true, reason: 'wrong-code' }, STRANGER);
        const st = (await relay.store.get(ch))!;
        assert.deepEqual([st.closed, st.recipient, st.attempts], [false, false, 1]);
      })();
    });

    test('after h_k a recipient close ends the channel as before', async () => {
      await S.withRelay({}, async (relay) => {
        const { ch, s } = await guessed(relay);
        await channel(relay, { channel: ch, uuid: s, h_k: H_K });
        const r = (await relay.store.participant(ch, 'recipient'))!;
        const a = await channel(relay, { channel: ch, uuid: r.uuid, close: true, reason: 'error' }, STRANGER);
        assert.deepEqual([a.body.closed, a.body.closeReason, (await relay.store.get(ch))!.closed], [true, 'error', true]);
      })();
    });
  });

  describe('recipientTimeoutMs: a recipient that does not answer is evicted', () => {
    test('counted from x being there for it; by the sweep, or at once by the next recipient join; not an attempt', async () => {
      let now = 1_000_000;
      const relay = S.build({ recipientTimeoutMs: 30_000, now: () => now });
      try {
        const s = await join(relay, { role: 'sender' });
        const ch = s.body.channel;
        const r = await join(relay, { role: 'recipient', channel: ch }, STRANGER);
        now += 60_000; // no x yet: no deadline running
        assert.deepEqual((await relay.store.expire(now)).evicted, []);
        await channel(relay, { channel: ch, uuid: s.body.uuid, x: X });
        now += 29_999;
        assert.deepEqual((await relay.store.expire(now)).evicted, []);
        expectError(await join(relay, { role: 'recipient', channel: ch }), 409, 'ERR_CHANNEL_FULL');
        now += 1;
        assert.deepEqual((await relay.store.expire(now)).evicted, [ch]);
        const view = await channel(relay, { channel: ch, uuid: r.body.uuid }, STRANGER);
        assert.deepEqual([view.body.closed, view.body.closeReason], [true, 'expired']);
        const st = (await relay.store.get(ch))!;
        assert.deepEqual([st.closed, st.recipient, st.x, st.attempts], [false, false, null, 0]);

        // the lazy path: a recipient join after the deadline takes the seat at once
        await channel(relay, { channel: ch, uuid: s.body.uuid, x: X2 });
        await join(relay, { role: 'recipient', channel: ch }, '10.9.0.5');
        now += 30_000;
        const r3 = await join(relay, { role: 'recipient', channel: ch });
        assert.equal(r3.status, 200, JSON.stringify(r3.body));
        // y + hh_k written in time: no eviction
        await channel(relay, { channel: ch, uuid: s.body.uuid, x: X }); // x was cleared by the eviction
        await channel(relay, { channel: ch, uuid: r3.body.uuid, y: Y, hh_k: HH_K });
        now += 120_000;
        assert.deepEqual((await relay.store.expire(now)).evicted, []);
        assert.equal((await relay.store.participant(ch, 'recipient'))?.uuid, r3.body.uuid);
      } finally {
        await relay.close();
      }
    });
  });

  describe('relay-picked channel names: the space grows with the channels held', () => {
    test('digits: 4 while nearly alone, one more per tenfold (10^d >= NAME_SPREAD × (held + 1))', () => {
      assert.equal(NAME_SPREAD, 1000);
      assert.deepEqual([0, 1, 9, 10, 99, 100, 999, 1000, 9999].map(channelNameDigits), [4, 4, 4, 5, 5, 6, 6, 7, 7]);
    });

    test('a scanner: after joinMissLimit misses, every recipient join from its address is refused (held channels too) until the window ends; other addresses are not', async () => {
      let now = 1_000_000;
      const relay = S.build({ now: () => now, joinMissLimit: 3, channelTtlMs: 600_000 });
      try {
        const s = await join(relay, { role: 'sender' });
        const held = s.body.channel;
        const missing = (i: number) => String(((Number(held) + i) % 9000) + 1000);
        for (let i = 1; i <= 3; i++) expectError(await join(relay, { role: 'recipient', channel: missing(i) }, STRANGER), 404, 'ERR_CHANNEL_NOT_FOUND');
        // the 4th join from the scanner is refused even for the held channel: the answer tells nothing
        const refused = await join(relay, { role: 'recipient', channel: held }, STRANGER);
        expectError(refused, 429, 'ERR_RATE_LIMITED');
        assert.equal(refused.headers['retry-after'], '600');
        expectError(await join(relay, { role: 'recipient', channel: missing(4) }, STRANGER), 429, 'ERR_RATE_LIMITED');
        // a hit does not count as a miss, and another address is untouched: the real recipient joins
        const r = await join(relay, { role: 'recipient', channel: held }, '10.9.0.3');
        assert.equal(r.status, 200, JSON.stringify(r.body));
        // senders from the scanner's address are not affected
        assert.equal((await join(relay, { role: 'sender' }, STRANGER)).status, 200);
        // the window ends with the channel lifetime
        now += 600_000;
        expectError(await join(relay, { role: 'recipient', channel: missing(5) }, STRANGER), 404, 'ERR_CHANNEL_NOT_FOUND');
      } finally {
        await relay.close();
      }
    });

    test('with many open channels the picked names spread over the documented range', async () => {
      const ranges: number[] = [];
      const relay = S.build({
        maxChannelsPerAddress: 100_000,
        joinRateLimit: 1_000_000,
        randomInt: (min, max) => {
          ranges.push(max);
          return min + Math.floor(Math.random() * (max - min));
        },
      });
      try {
        const names: number[] = [];
        for (let i = 0; i < 1200; i++) {
          const a = await join(relay, { role: 'sender' }, `10.8.${i >> 8}.${i & 255}`);
          assert.equal(a.status, 200);
          names.push(Number(a.body.channel));
        }
        for (const [i, n] of names.entries()) assert.ok(n >= 1 && n < 10 ** channelNameDigits(i), `name ${n} with ${i} held`);
        assert.equal(ranges[0], 10_000);
        // 100..999 held: drawn from 1..999999; ten buckets of that range all used
        const mid = names.slice(100, 1000);
        const buckets = new Set(mid.map((n) => Math.floor(n / 100_000)));
        assert.equal(buckets.size, 10, `buckets ${[...buckets].sort().join(',')}`);
        // 1000+ held: 7 digits, and most names are beyond 6
        assert.ok(names.slice(1000).filter((n) => n >= 1_000_000).length > 150);
      } finally {
        await relay.close();
      }
    });
  });

  describe('a closed channel frees its name at once (a fixed code is used again right after)', () => {
    test('after a close: a sender joins the name again at once; the old participants still read their closed channel by uuid until closedRetentionMs', async () => {
      let now = 1_000_000;
      const relay = S.build({ now: () => now, closedRetentionMs: 60_000 });
      try {
        const a = await join(relay, { role: 'sender', channel: '5126' });
        assert.equal(a.status, 200);
        await channel(relay, { channel: '5126', uuid: a.body.uuid, x: X });
        const ra = await join(relay, { role: 'recipient', channel: '5126' }, STRANGER);
        // while it is open the name is taken
        expectError(await join(relay, { role: 'sender', channel: '5126' }, '10.9.0.5'), 409, 'ERR_CHANNEL_OCCUPIED');
        const closed = await channel(relay, { channel: '5126', uuid: a.body.uuid, close: true, reason: 'done' });
        assert.equal(closed.body.closed, true);

        const b = await join(relay, { role: 'sender', channel: '5126' });
        assert.equal(b.status, 200, JSON.stringify(b.body));
        assert.notEqual(b.body.uuid, a.body.uuid);
        assert.equal((await relay.store.heldCount()), 2);
        assert.equal((await relay.store.openCount()), 1);
        // the old participants read their own channel: closed, with its fields; a wait answers at once
        const oldView = await channel(relay, { channel: '5126', uuid: a.body.uuid, wait: 30_000, since: closed.body.version });
        assert.deepEqual([oldView.body.closed, oldView.body.closeReason, oldView.body.x, oldView.body.version], [true, 'done', X, closed.body.version]);
        const oldRecipient = await channel(relay, { channel: '5126', uuid: ra.body.uuid }, STRANGER);
        assert.equal(oldRecipient.body.closed, true);
        // and may write nothing, nor touch the new channel
        expectError(await channel(relay, { channel: '5126', uuid: a.body.uuid, x: X2 }), 410, 'ERR_CHANNEL_CLOSED');
        const fresh = await channel(relay, { channel: '5126', uuid: b.body.uuid });
        assert.deepEqual([fresh.body.closed, fresh.body.version, fresh.body.x, fresh.body.recipient], [false, 1, null, false]);
        // a recipient join finds the new channel
        const rb = await join(relay, { role: 'recipient', channel: '5126' }, STRANGER);
        assert.equal(rb.status, 200);
        assert.equal((await relay.store.get('5126'))!.recipient, true);
        // a long-poll of the new sender is woken by the new channel's changes, not the old one's
        const poll = channel(relay, { channel: '5126', uuid: b.body.uuid, wait: 30_000, since: (await relay.store.get('5126'))!.version });
        await until(() => relay.store.watcherCount('5126') === 1, 'the poll to subscribe');
        await channel(relay, { channel: '5126', uuid: ra.body.uuid, close: true }, STRANGER); // the old recipient's goodbye: harmless
        assert.equal(relay.store.watcherCount('5126'), 1);
        await channel(relay, { channel: '5126', uuid: b.body.uuid, x: X2 });
        assert.equal((await poll).body.x, X2);
        // after closedRetentionMs the old one is gone; its uuids are unknown now
        now += 60_000;
        assert.deepEqual((await relay.store.expire(now)).removed, ['5126']);
        assert.equal((await relay.store.heldCount()), 1);
        expectError(await channel(relay, { channel: '5126', uuid: a.body.uuid }), 403, 'ERR_UNKNOWN_PARTICIPANT');
        assert.equal((await relay.store.get('5126'))!.closed, false);
      } finally {
        await relay.close();
      }
    });

    test('after the last allowed wrong attempt closed it "wrong-code", a sender joins the name again at once', async () => {
      await S.withRelay({ maxAttempts: 1 }, async (relay) => {
        const { ch, s } = await guessed(relay);
        const last = await channel(relay, { channel: ch, uuid: s, reject: true });
        assert.deepEqual([last.body.closed, last.body.closeReason], [true, 'wrong-code']);
        const again = await join(relay, { role: 'sender', channel: ch });
        assert.equal(again.status, 200, JSON.stringify(again.body));
        assert.equal((await join(relay, { role: 'recipient', channel: ch }, '10.9.0.4')).status, 200);
      })();
    });

    test('a recipient asking again and again for a name the relay does not hold yet counts one miss; distinct names still count each', async () => {
      let now = 1_000_000;
      const relay = S.build({ now: () => now, joinMissLimit: 3, joinRateLimit: 1000 });
      try {
        for (let i = 0; i < 50; i++) expectError(await join(relay, { role: 'recipient', channel: '5126' }, STRANGER), 404, 'ERR_CHANNEL_NOT_FOUND');
        // the sender starts: the waiting recipient gets in
        assert.equal((await join(relay, { role: 'sender', channel: '5126' })).status, 200);
        assert.equal((await join(relay, { role: 'recipient', channel: '5126' }, STRANGER)).status, 200);
        // two more distinct names make three: the next recipient join from that address is refused
        expectError(await join(relay, { role: 'recipient', channel: '7001' }, STRANGER), 404, 'ERR_CHANNEL_NOT_FOUND');
        expectError(await join(relay, { role: 'recipient', channel: '7002' }, STRANGER), 404, 'ERR_CHANNEL_NOT_FOUND');
        expectError(await join(relay, { role: 'recipient', channel: '7001' }, STRANGER), 429, 'ERR_RATE_LIMITED');
        expectError(await join(relay, { role: 'recipient', channel: '7003' }, STRANGER), 429, 'ERR_RATE_LIMITED');
      } finally {
        await relay.close();
      }
    });
  });

  describe('the TCP side after a name is taken again', () => {
    test('a stapled pair dropped with its closed channel does not close the new channel of that name; an old uuid\'s hello is refused ERR_CHANNEL_CLOSED', async () => {
      await S.withRelay({}, async (relay) => {
        const old = await staple(relay);
        // closed, and the name taken again in the same turn of the event loop: the old sockets' close
        // events come after the new channel exists
        (await relay.store.close(old.channel, 'done'));
        const fresh = (await relay.store.join({ role: 'sender', channel: old.channel }, '127.0.0.1'));
        await old.a.until(() => old.a.closed, 'the old sender socket to close');
        await old.b.until(() => old.b.closed, 'the old recipient socket to close');
        await until(() => relay.tcp.connectionCount === 0, 'the relay to let the old sockets go');
        const st = (await relay.store.get(old.channel))!;
        assert.deepEqual([st.closed, st.version], [false, 1], 'the new channel is untouched');
        // a late hello of the old sender reaches its own (closed) channel
        const late = await Client.connect(old.tcpPort);
        late.hello(old.channel, old.sender);
        await expectRefused(late, 'ERR_CHANNEL_CLOSED');
        assert.equal((await relay.store.get(old.channel))!.closed, false);
        assert.notEqual(fresh.participant.uuid, old.sender);
      })();
    });
  });
});
