/**
 * The Redis store across relay processes (docs/relay-api.md "Stores"): two relays (each its own
 * Redis connections, as two processes would have) on one real redis-server. A channel created
 * through A is joined, read and written through B; two recipients racing through A and B: one
 * wins; a long-poll on A is woken by a write on B; the rate windows and quotas hold fleet-wide;
 * a Redis restart: 503 with Retry-After meanwhile, /health fails, then the relays serve again
 * without a restart; keys carry TTLs; a whole transfer (library send/receive) through a relay
 * with the Redis store. Skipped with a message when redis-server is not installed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { ChannelState, JoinResponse } from '../src/core/relay-api.js';
import { receive, send } from '../src/index.js';
import { RedisBackend, buildRelay, startRelay, type Relay, type RelayOptions } from '../src/relay/index.js';
import { RedisServer, redisSkip } from './helpers/redis.js';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TscCrocError } from '../src/core/errors.js';
import { relayConfig } from '../src/relay/config.js';
import { HH_K, H_K, X, Y, expectError, post, seatOverHttp, spawnRelay, stateUntil, until } from './relay-helpers.js';
import { runCli } from './helpers/cli.js';

const T = { timeout: 30_000 };
const skip = redisSkip();

let server: RedisServer;
let prefixes = 0;

/** Two relays on one Redis, as two processes would be (each with its own connections); closed after `fn`. */
function fleet(options: Partial<RelayOptions>, fn: (a: Relay, b: Relay, prefix: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const prefix = `x${process.pid}-${++prefixes}:`;
    const o = { ...options, store: server.url, storePrefix: prefix };
    const a = buildRelay(o);
    const b = buildRelay(o);
    try {
      await Promise.all([a.app.ready(), b.app.ready()]);
      await fn(a, b, prefix);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  };
}

const join = (relay: Relay, body: object, remoteAddress = '127.0.0.1') => post<JoinResponse>(relay, '/join', body, { remoteAddress });
const channel = (relay: Relay, body: object, remoteAddress = '127.0.0.1') => post<ChannelState>(relay, '/channel', body, { remoteAddress });

describe('the Redis store across relay processes', skip === undefined ? {} : { skip }, () => {
  before(async () => {
    server = await RedisServer.start();
  });
  after(async () => {
    await server?.stop();
  });

  test('a channel created through A is joined, read and written through B; the whole exchange alternates', T, fleet({}, async (a, b) => {
    const s = await join(a, { role: 'sender' });
    assert.equal(s.status, 200);
    const ch = s.body.channel;
    const r = await join(b, { role: 'recipient', channel: ch });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await channel(b, { channel: ch, uuid: s.body.uuid, x: X })).body.version, 3);
    assert.equal((await channel(a, { channel: ch, uuid: r.body.uuid, y: Y, hh_k: HH_K })).body.y, Y);
    const done = await channel(b, { channel: ch, uuid: s.body.uuid, h_k: H_K });
    assert.deepEqual([done.body.x, done.body.y, done.body.hh_k, done.body.h_k, done.body.version], [X, Y, HH_K, H_K, 5]);
    // read through either: the same state
    assert.deepEqual((await channel(a, { channel: ch, uuid: r.body.uuid })).body, done.body);
    // the rules hold across: a third participant through A, the name taken through B
    expectError(await join(a, { role: 'recipient', channel: ch }), 409, 'ERR_CHANNEL_FULL');
    expectError(await join(b, { role: 'sender', channel: ch }), 409, 'ERR_CHANNEL_OCCUPIED');
    // a close through A frees the name for a sender through B at once
    await channel(a, { channel: ch, uuid: s.body.uuid, close: true });
    assert.equal((await join(b, { role: 'sender', channel: ch })).status, 200);
    // the old channel's participants still read it (closed) through either
    assert.equal((await channel(b, { channel: ch, uuid: r.body.uuid })).body.closed, true);
  }));

  test('two recipients racing through A and B: exactly one takes the seat, the other gets 409 ERR_CHANNEL_FULL (50 races)', T, fleet({ joinRateLimit: 10_000, maxChannelsPerAddress: 1000 }, async (a, b) => {
    for (let i = 0; i < 50; i++) {
      const ch = `race${i}`;
      assert.equal((await join(a, { role: 'sender', channel: ch })).status, 200);
      const answers = await Promise.all([join(a, { role: 'recipient', channel: ch }, '10.0.0.1'), join(b, { role: 'recipient', channel: ch }, '10.0.0.2')]);
      const won = answers.filter((x) => x.status === 200);
      assert.equal(won.length, 1, JSON.stringify(answers.map((x) => x.body)));
      expectError(answers.find((x) => x.status !== 200)!, 409, 'ERR_CHANNEL_FULL');
      assert.equal((await a.store.participant(ch, 'recipient'))?.uuid, won[0]!.body.uuid);
    }
  }));

  test('two senders racing for one name through A and B: one gets it, the other 409 ERR_CHANNEL_OCCUPIED; racing writes of x: one is set', T, fleet({ joinRateLimit: 10_000, maxChannelsPerAddress: 1000 }, async (a, b) => {
    for (let i = 0; i < 20; i++) {
      const answers = await Promise.all([join(a, { role: 'sender', channel: `name${i}` }), join(b, { role: 'sender', channel: `name${i}` })]);
      assert.deepEqual(answers.map((x) => x.status).sort(), [200, 409]);
      const s = answers.find((x) => x.status === 200)!;
      const X2 = 'e5'.repeat(32);
      const writes = await Promise.all([channel(a, { channel: `name${i}`, uuid: s.body.uuid, x: X }), channel(b, { channel: `name${i}`, uuid: s.body.uuid, x: X2 })]);
      assert.deepEqual(writes.map((w) => w.status).sort(), [200, 409]);
      assert.equal((await a.store.get(`name${i}`))?.version, 2, 'one change, one version');
    }
  }));

  test('a long-poll on A is woken by a write on B, and by a close on B', T, fleet({}, async (a, b) => {
    const s = await join(a, { role: 'sender' });
    const ch = s.body.channel;
    const r = await join(b, { role: 'recipient', channel: ch });
    const poll = channel(a, { channel: ch, uuid: r.body.uuid, wait: 20_000, since: 2 });
    await until(() => a.store.watcherCount(ch) === 1, 'the poll to subscribe');
    await channel(b, { channel: ch, uuid: s.body.uuid, x: X });
    const woke = await poll;
    assert.deepEqual([woke.status, woke.body.version, woke.body.x], [200, 3, X]);
    const poll2 = channel(a, { channel: ch, uuid: s.body.uuid, wait: 20_000, since: 3 });
    await until(() => a.store.watcherCount(ch) === 1, 'the second poll to subscribe');
    await channel(b, { channel: ch, uuid: r.body.uuid, close: true, reason: 'cancelled' });
    const woke2 = await poll2;
    // a recipient that leaves before h_k frees its seat: the sender is woken and the channel stays open
    assert.deepEqual([woke2.body.recipient, woke2.body.closed, woke2.body.version], [false, false, 4]);
    assert.equal(a.store.watcherCount(), 0);
  }));

  test('expiry by any process: a channel created on A, closed by B\'s sweep, wakes A\'s poll; a close is counted once', T, async () => {
    let now = 1_000_000;
    await fleet({ now: () => now, channelTtlMs: 1_000, closedRetentionMs: 500 }, async (a, b) => {
      const s = await join(a, { role: 'sender' });
      const ch = s.body.channel;
      const poll = channel(a, { channel: ch, uuid: s.body.uuid, wait: 20_000, since: 1 });
      await until(() => a.store.watcherCount(ch) === 1, 'the poll to subscribe');
      now += 1_000;
      assert.deepEqual(await b.store.expire(now), { closed: [ch], removed: [], evicted: [] });
      assert.deepEqual(await a.store.expire(now), { closed: [], removed: [], evicted: [] }, 'done once, by one process');
      const woke = await poll;
      assert.deepEqual([woke.body.closed, woke.body.closeReason], [true, 'expired']);
      now += 500;
      assert.deepEqual(await a.store.expire(now), { closed: [], removed: [ch], evicted: [] });
      assert.equal(await b.store.get(ch), undefined);
      assert.equal(await a.store.heldCount(), 0);
    })();
  });

  test('rate windows and quotas are fleet-wide: joins, channels per address, join misses', T, fleet({ joinRateLimit: 3, maxChannelsPerAddress: 2, joinMissLimit: 2 }, async (a, b) => {
    assert.equal((await join(a, { role: 'sender' }, '10.1.0.1')).status, 200);
    assert.equal((await join(b, { role: 'sender' }, '10.1.0.1')).status, 200);
    // the third open channel of that address, through either process: over maxChannelsPerAddress
    expectError(await join(a, { role: 'sender' }, '10.1.0.1'), 429, 'ERR_RATE_LIMITED');
    assert.equal(await b.store.openCountOf('10.1.0.1'), 2);
    // a fourth join in the window: over joinRateLimit, with Retry-After
    const over = await b.app.inject({ method: 'POST', url: '/join', payload: { role: 'sender' }, remoteAddress: '10.1.0.1' });
    assert.equal(over.statusCode, 429);
    assert.ok(Number(over.headers['retry-after']) >= 1);
    // misses: two distinct names through A and B, then every recipient join is refused
    expectError(await join(a, { role: 'recipient', channel: 'nope1' }, '10.1.0.2'), 404, 'ERR_CHANNEL_NOT_FOUND');
    expectError(await join(b, { role: 'recipient', channel: 'nope2' }, '10.1.0.2'), 404, 'ERR_CHANNEL_NOT_FOUND');
    expectError(await join(a, { role: 'recipient', channel: 'nope3' }, '10.1.0.2'), 429, 'ERR_RATE_LIMITED');
    // another address is not affected
    assert.equal((await join(b, { role: 'sender' }, '10.1.0.3')).status, 200);
  }));

  test('maxChannels holds across processes', T, fleet({ maxChannels: 2 }, async (a, b) => {
    assert.equal((await join(a, { role: 'sender' })).status, 200);
    assert.equal((await join(b, { role: 'sender' }, '10.2.0.1')).status, 200);
    expectError(await join(a, { role: 'sender' }, '10.2.0.2'), 503, 'ERR_TOO_MANY_CHANNELS');
  }));

  test('every key the relay writes has a TTL; /metrics has the store round trips', T, fleet({}, async (a, b, prefix) => {
    const s = await join(a, { role: 'sender' });
    const ch = s.body.channel;
    const r = await join(b, { role: 'recipient', channel: ch });
    await channel(a, { channel: ch, uuid: s.body.uuid, x: X });
    await channel(b, { channel: ch, uuid: r.body.uuid, y: Y, hh_k: HH_K });
    await channel(a, { channel: ch, uuid: s.body.uuid, h_k: H_K });
    expectError(await join(a, { role: 'recipient', channel: 'gone' }, '10.3.0.1'), 404, 'ERR_CHANNEL_NOT_FOUND');
    const redis = new Redis(server.url);
    try {
      const keys = await redis.keys(`${prefix}*`);
      assert.ok(keys.length >= 8, keys.join(' '));
      for (const k of keys) assert.ok((await redis.pttl(k)) > 0, `${k} has a TTL`);
    } finally {
      redis.disconnect();
    }
    const m = (await a.app.inject({ method: 'GET', url: '/metrics' })).body;
    const count = Number(/^tsc_croc_relay_store_seconds_count (\d+)$/m.exec(m)?.[1]);
    assert.ok(count >= 6, `store round trips counted: ${count}`);
    assert.match(m, /^tsc_croc_relay_store_errors_total 0$/m);
    assert.match(m, /^tsc_croc_relay_channels 1$/m);
  }));

  test('a record Redis let expire (a crashed fleet): its name reads as free, the sweep forgets its deadline, the counts drop it', T, async () => {
    let now = 5_000_000;
    await fleet({ now: () => now, channelTtlMs: 1_000 }, async (a, b, prefix) => {
      const s = await join(a, { role: 'sender' }, '10.4.0.1');
      const ch = s.body.channel;
      const redis = new Redis(server.url);
      try {
        // what the record's TTL does after a crash, done at once
        const ids = await redis.lrange(`${prefix}n:${ch}`, 0, -1);
        assert.equal(ids.length, 1);
        await redis.del(`${prefix}c:${ids[0]}`);
        assert.equal(await b.store.get(ch), undefined);
        assert.equal((await join(b, { role: 'sender', channel: ch })).status, 200, 'the name is free again');
        now += 1_000;
        const swept = await a.store.expire(now);
        assert.deepEqual(swept.closed, [ch], 'the new channel expires; the lost one is just forgotten');
        assert.equal(await redis.zscore(`${prefix}due`, `${ch} ${ids[0]}`), null);
      } finally {
        redis.disconnect();
      }
    })();
  });

  test('Redis restarted: 503 ERR_STORE_UNAVAILABLE with Retry-After and /health 503 meanwhile; then A and B serve new channels without a restart', T, fleet({}, async (a, b) => {
    const s = await join(a, { role: 'sender' });
    const r = await join(b, { role: 'recipient', channel: s.body.channel });
    // a poll held through the outage ends at its time (or at a change after it), never hangs
    const poll = channel(a, { channel: s.body.channel, uuid: r.body.uuid, wait: 3_000, since: 2 });
    await until(() => a.store.watcherCount() === 1, 'the poll to subscribe');
    await server.kill();
    for (const relay of [a, b]) {
      const j = await relay.app.inject({ method: 'POST', url: '/join', payload: { role: 'sender' } });
      assert.equal(j.statusCode, 503);
      assert.equal(j.json().code, 'ERR_STORE_UNAVAILABLE');
      assert.equal(j.headers['retry-after'], '2');
      const h = await relay.app.inject({ method: 'GET', url: '/health' });
      assert.equal(h.statusCode, 503);
      assert.equal(h.json().code, 'ERR_STORE_UNAVAILABLE');
    }
    expectError(await channel(b, { channel: s.body.channel, uuid: s.body.uuid, x: X }), 503, 'ERR_STORE_UNAVAILABLE');
    const m = (await a.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.ok(Number(/^tsc_croc_relay_store_errors_total (\d+)$/m.exec(m)?.[1]) >= 1, 'store errors counted');
    assert.match(m, /^tsc_croc_relay_channels NaN$/m, 'a gauge the store cannot answer reads NaN');
    // the same port, empty data (no persistence): the old channel is gone, new ones work
    await server.restart();
    for (const relay of [a, b]) {
      // ioredis reconnects within a second (bounded by the test's timeout); then /health passes
      await (relay.store.backend as RedisBackend).whenUp();
      assert.equal((await relay.app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
    }
    const polled = await poll;
    assert.ok(polled.status === 404 || polled.status === 503, `the poll ends: ${polled.status}`);
    const s2 = await join(a, { role: 'sender' });
    assert.equal(s2.status, 200);
    const r2 = await join(b, { role: 'recipient', channel: s2.body.channel });
    assert.equal(r2.status, 200);
    // pub/sub is back too: a poll on B is woken by a write on A
    const poll2 = channel(b, { channel: s2.body.channel, uuid: r2.body.uuid, wait: 20_000, since: 2 });
    await until(() => b.store.watcherCount(s2.body.channel) === 1, 'the poll to subscribe');
    await channel(a, { channel: s2.body.channel, uuid: s2.body.uuid, x: X });
    assert.equal((await poll2).body.x, X);
    await stateUntil(a, s2.body.channel, (st) => st?.x === X, 'A to read x');
  }));
});

describe('a whole transfer through a relay with the Redis store', skip === undefined ? {} : { skip }, () => {
  let root: string;
  before(async () => {
    server = await RedisServer.start();
    root = await mkdtemp(pjoin(tmpdir(), 'tsc-croc-redis-'));
  });
  after(async () => {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('library send and receive (lan off): the file arrives intact (hashed)', { timeout: 60_000 }, async () => {
    const relay = await startRelay({ port: 0, tcpPort: 0, store: server.url, storePrefix: `tr${process.pid}:` });
    try {
      const data = randomBytes(2 * 1024 * 1024 + 7);
      const file = pjoin(root, 'data.bin');
      await writeFile(file, data);
      const out = pjoin(root, 'out');
      await mkdir(out);
      let gotCode!: (c: string) => void;
      const code = new Promise<string>((res) => (gotCode = res));
      const sent = send({ relay: relay.httpUrl, lan: 'off', files: [file], onEvent: (e) => e.type === 'code' && gotCode(e.code) });
      const got = await receive({ relay: relay.httpUrl, lan: 'off', code: await code, outDir: out, accept: () => true });
      assert.equal((await sent).bytes, data.length);
      assert.equal(got.files.length, 1);
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      assert.equal(sha(await readFile(pjoin(out, 'data.bin'))), sha(data));
    } finally {
      await relay.close();
    }
  });
});

describe('tsc-croc relay --store', () => {
  test('the flag and TSC_CROC_RELAY_STORE give the store URL; a bad one is a usage error naming both', () => {
    assert.equal(relayConfig({ store: 'redis://127.0.0.1:6379/2' }, {}).options.store, 'redis://127.0.0.1:6379/2');
    assert.equal(relayConfig({}, { TSC_CROC_RELAY_STORE: 'rediss://:pw@redis.example:6380' }).options.store, 'rediss://:pw@redis.example:6380');
    assert.equal(relayConfig({}, {}).options.store, undefined);
    assert.equal(relayConfig({ storePrefix: 'fleet-b:' }, {}).options.storePrefix, 'fleet-b:');
    const usage = (re: RegExp) => (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_INVALID_ARGUMENT' && re.test(e.message);
    assert.throws(() => relayConfig({ store: 'http://127.0.0.1:6379' }, {}), usage(/--store \(env TSC_CROC_RELAY_STORE\) must be a redis:\/\/ or rediss:\/\/ URL/));
    assert.throws(() => relayConfig({}, { TSC_CROC_RELAY_STORE: 'localhost' }), usage(/--store .*URL/));
    assert.throws(() => relayConfig({ store: 'redis://127.0.0.1:6379/abc' }, {}), usage(/database number/));
    assert.throws(() => relayConfig({ storePrefix: 'a b' }, {}), usage(/--store-prefix/));
  });

  test('the CLI bundle loads ioredis only on demand: nothing on the start-up path of tsc-croc (send, receive, --version, a relay without --store) imports it', () => {
    const dist = fileURLToPath(new URL('../', import.meta.url));
    // the bundle (scripts/bundle.mjs): the executable, and the CLI it loads; ioredis is in neither,
    // only required inside a promise's callback, which runs when a store is given (node resolves it
    // in node_modules then)
    const [bin, cli] = [`${dist}tsc-croc.cjs`, `${dist}tsc-croc-cli.cjs`].map((f) => readFileSync(f, 'utf8'));
    assert.doesNotMatch(bin!, /ioredis|defineCommand|ClusterAllFailedError/, 'the executable holds or loads the Redis client');
    assert.doesNotMatch(cli!, /ClusterAllFailedError/, 'the CLI bundle holds the Redis client');
    const requires = [...cli!.matchAll(/(.{0,60})require\(["']ioredis["']\)/g)];
    assert.equal(requires.length, 1, 'the CLI bundle requires the Redis client in one place');
    assert.match(requires[0]![1]!, /Promise\.resolve\(\)\.then\(\(\) => __toESM\($/, 'the CLI bundle requires the Redis client on demand only');
    assert.doesNotMatch(cli!, /from ?["']ioredis["']/);
    // the library: store-redis.js imports it dynamically, nothing imports it statically
    for (const f of readdirSync(`${dist}src/relay`).filter((n) => n.endsWith('.js')))
      assert.doesNotMatch(readFileSync(`${dist}src/relay/${f}`, 'utf8'), /from ['"]ioredis['"]/, f);
  });

  test('a relay process with --store (the bundled CLI, as installed): serves a handshake, /health fails while Redis is down', { ...T, skip }, async () => {
    const redis = await RedisServer.start();
    const bundle = fileURLToPath(new URL('../tsc-croc.cjs', import.meta.url));
    const relay = await spawnRelay(['--store', redis.url, '--store-prefix', `cli${process.pid}:`, '--quiet'], { TSC_CROC_RELAY_HOST: '127.0.0.1', TSC_CROC_RELAY_PORT: '0', TSC_CROC_RELAY_TCP_PORT: '0' }, bundle).catch(async (e: unknown) => {
      await redis.stop();
      throw e;
    });
    try {
      assert.equal((await fetch(`${relay.url}/health`)).status, 200);
      const seats = await seatOverHttp(relay.url);
      assert.match(seats.channel, /^\d+$/);
      await redis.kill();
      const h = await fetch(`${relay.url}/health`);
      assert.equal(h.status, 503);
      assert.equal(((await h.json()) as { code: string }).code, 'ERR_STORE_UNAVAILABLE');
      const j = await fetch(`${relay.url}/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"role":"sender"}' });
      assert.deepEqual([j.status, j.headers.get('retry-after')], [503, '2']);
      // a peer meanwhile: one plain line, the network exit code
      const sender = runCli(['send', '--no-local', '--relay', relay.url, '--text', 'hello']);
      assert.equal(await sender.exit(), 5, sender.output());
      assert.match(sender.stderr(), /the relay cannot reach its channel store \(its operator's Redis\) right now: try again in a moment \[ERR_RELAY_UNREACHABLE\]/);
    } finally {
      relay.child.kill('SIGTERM');
      await relay.exit();
      await redis.stop();
    }
  });
});
