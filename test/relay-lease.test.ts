/**
 * The stapled lease (docs/relay-api.md "Stores"): a stapled channel records the relay process
 * whose stapler holds its sockets; every sweep of that process beats, and any process's sweep
 * closes a stapled channel whose owner stopped beating, freeing its name and its addresses'
 * quota. A live owner's channels stay. Injected clocks; two stores on one backend stand for two
 * processes (the memory backend shared in one process, and two relays on one real redis-server).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ChannelStore, type ChannelStoreConfig } from '../src/relay/channels.js';
import { MemoryBackend } from '../src/relay/store-memory.js';
import { buildRelay } from '../src/relay/index.js';
import { RedisServer, redisSkip } from './helpers/redis.js';
import { post, seat, stapleSeats, until } from './relay-helpers.js';
import type { JoinResponse } from '../src/core/relay-api.js';

const LEASE = 60_000;
const T = { timeout: 30_000 };

function twoProcesses(start: number) {
  let now = start;
  const backend = new MemoryBackend({ maxChannels: 100, maxChannelsPerAddress: 1 });
  const config = (instanceId: string): ChannelStoreConfig => ({
    now: () => now,
    randomInt: (min) => min,
    maxChannels: 100,
    maxChannelsPerAddress: 1,
    channelTtlMs: 600_000,
    closedRetentionMs: 60_000,
    recipientTimeoutMs: 60_000,
    maxAttempts: 3,
    instanceId,
    stapledLeaseMs: LEASE,
  });
  return { a: new ChannelStore(config('a'), backend), b: new ChannelStore(config('b'), backend), at: (t: number) => (now = t) };
}

describe('the stapled lease', () => {
  test("a stapled channel outlives its lease while its process beats, and is closed once it stops, freeing the name and the quota", async () => {
    const t0 = 1_000_000;
    const { a, b, at } = twoProcesses(t0);
    await Promise.all([a.start(), b.start()]);
    const s = await a.join({ role: 'sender', channel: 'abc' }, '10.0.0.1');
    await b.join({ role: 'recipient', channel: 'abc' }, '10.0.0.2');
    await a.markStapled('abc');
    // the quota of one open channel per address is taken
    await assert.rejects(b.join({ role: 'sender', channel: 'other' }, '10.0.0.1'), { code: 'ERR_RATE_LIMITED' });

    // A sweeps (and beats) every half lease; B's sweeps renew the lease instead of closing
    for (let t = t0; t <= t0 + 3 * LEASE; t += LEASE / 2) {
      at(t);
      await a.expire(t);
      const r = await b.expire(t);
      assert.deepEqual(r.closed, [], `closed at t0 + ${t - t0} ms although its process beats`);
      assert.equal((await b.get('abc'))?.closed, false);
    }
    // A stops (killed): B closes the channel within two leases
    let closedAt: number | undefined;
    for (let t = t0 + 3 * LEASE + 1; t <= t0 + 6 * LEASE && closedAt === undefined; t += 5_000) {
      at(t);
      if ((await b.expire(t)).closed.includes('abc')) closedAt = t;
    }
    assert.ok(closedAt !== undefined, 'never closed');
    assert.ok(closedAt - (t0 + 3 * LEASE) <= 2 * LEASE + 5_000, `closed ${closedAt - (t0 + 3 * LEASE)} ms after the last beat`);
    const st = await b.read({ channel: 'abc', uuid: s.participant.uuid }, '10.0.0.1');
    assert.deepEqual([st.closed, st.closeReason], [true, 'expired']);
    // the name is free for a new sender, and the address's quota with it
    assert.equal((await b.join({ role: 'sender', channel: 'abc' }, '10.0.0.1')).state.closed, false);
  });

  test("a process's own sweep never closes its own stapled channels", async () => {
    const t0 = 5_000_000;
    const { a, at } = twoProcesses(t0);
    await a.start();
    await a.join({ role: 'sender', channel: 'own' }, '10.0.0.1');
    await a.join({ role: 'recipient', channel: 'own' }, '10.0.0.2');
    await a.markStapled('own');
    // even with sweeps far apart (its beat lapsing between them)
    for (let t = t0; t <= t0 + 10 * LEASE; t += 3 * LEASE) {
      at(t);
      assert.deepEqual((await a.expire(t)).closed, []);
    }
    assert.equal((await a.get('own'))?.closed, false);
  });
});

const skip = redisSkip();
describe('the stapled lease across relay processes on Redis', skip === undefined ? {} : { skip }, () => {
  let server: RedisServer;
  before(async () => {
    server = await RedisServer.start();
  });
  after(async () => {
    await server?.stop();
  });

  test("B closes the stapled channel of a process that stopped beating: A's stapler drops the sockets, the name is free", T, async () => {
    let now = Date.now();
    const o = { store: server.url, storePrefix: `lease${process.pid}:`, now: () => now, stapledLeaseMs: LEASE, sweepIntervalMs: 3_600_000, host: '127.0.0.1', port: 0, tcpPort: 0 };
    const a = buildRelay(o);
    const b = buildRelay(o);
    await a.listen();
    await b.app.ready();
    try {
      const seats = await stapleSeats(await seat(a));
      // A beats; a check by B after the lease renews it
      now += LEASE / 2;
      await a.store.expire(now);
      now += LEASE / 2 + 1;
      assert.deepEqual((await b.store.expire(now)).closed, []);
      assert.equal(seats.a.closed || seats.b.closed, false);
      // A stops beating: B closes the channel, and A's stapler (told through Redis) drops both sockets
      now += 2 * LEASE + 1;
      assert.deepEqual((await b.store.expire(now)).closed, [seats.channel]);
      await until(() => seats.a.closed && seats.b.closed, 'the stapled sockets to be closed');
      const again = await post<JoinResponse>(b, '/join', { role: 'sender', channel: seats.channel });
      assert.equal(again.status, 200, JSON.stringify(again.body));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
