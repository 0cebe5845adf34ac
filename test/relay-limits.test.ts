/**
 * The relay's limits and operator features against a real relay on 127.0.0.1, port 0: admission
 * only after the key confirmation, early bytes, idle stapled pairs, quotas, the pending-socket cap,
 * the relay password, rate limits, trust-proxy, /metrics, the CLI configuration, the drain.
 * Regression tests for the security review are named after the finding (S2, S6).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { TscCrocError } from '../src/core/errors.js';
import { RELAY_PROTOCOL_VERSION, isTcpHello, type JoinResponse } from '../src/core/relay-api.js';
import { relayConfig } from '../src/relay/config.js';
import { EARLY_BYTES_LIMIT, type Relay } from '../src/relay/index.js';
import {
  Client,
  H_K,
  HH_K,
  X,
  Y,
  expectError,
  expectRefused,
  metric,
  post,
  seat,
  staple,
  stapleSeats,
  until,
  forEachStore,
} from './relay-helpers.js';

const T = { timeout: 20_000 };

/** After a refusal the relay still staples and relays a fresh pair. */
async function stillServes(relay: Relay, password?: string): Promise<void> {
  const { a, b } = await staple(relay, password === undefined ? {} : { password });
  a.socket.end(Buffer.from('ping'));
  await b.until(() => b.ended, 'b to receive ping');
  assert.equal(b.data.toString(), 'ping');
  b.socket.end();
  await a.until(() => a.closed, 'a to close');
}

forEachStore((S) => {
  describe('S2: nobody staples without the PAKE, stapled pairs do not live forever', () => {
    test('a hello before h_k is written: ERR_OUT_OF_ORDER (at every earlier step)', T, S.withRelay({}, async (relay) => {
      const seats = await seat(relay, { handshake: false });
      const steps = [
        { uuid: seats.sender, x: X },
        { uuid: seats.recipient, y: Y, hh_k: HH_K },
      ];
      for (const step of [undefined, ...steps]) {
        if (step !== undefined) assert.equal((await post(relay, '/channel', { channel: seats.channel, ...step })).status, 200);
        for (const uuid of [seats.sender, seats.recipient]) {
          const c = await Client.connect(seats.tcpPort);
          c.hello(seats.channel, uuid);
          await expectRefused(c, 'ERR_OUT_OF_ORDER');
        }
      }
      assert.equal((await post(relay, '/channel', { channel: seats.channel, uuid: seats.sender, h_k: H_K })).status, 200);
      const { a, b } = await stapleSeats(seats);
      a.socket.destroy();
      await b.until(() => b.closed, 'b to close');
    }));

    test(`more than ${EARLY_BYTES_LIMIT} bytes before stapled: ERR_OUT_OF_ORDER, the seat is freed`, T, S.withRelay({}, async (relay) => {
      const seats = await seat(relay);
      const c = await Client.connect(seats.tcpPort);
      c.hello(seats.channel, seats.sender, { data: Buffer.alloc(EARLY_BYTES_LIMIT + 1) });
      await expectRefused(c, 'ERR_OUT_OF_ORDER');
      const d = await Client.connect(seats.tcpPort);
      d.hello(seats.channel, seats.sender);
      await until(() => relay.tcp.waitingCount === 1, 'the relay to seat d');
      d.socket.write(Buffer.alloc(EARLY_BYTES_LIMIT));
      d.socket.write(Buffer.alloc(1));
      await expectRefused(d, 'ERR_OUT_OF_ORDER');
      await until(() => relay.tcp.waitingCount === 0, 'the seat to be freed');
      await stillServes(relay);
    }));

    test('a stapled pair idle for stapledIdleMs is closed (reason expired); traffic keeps it alive', T, async () => {
      let now = 1_000;
      const relay = S.build({ port: 0, tcpPort: 0, now: () => now, stapledIdleMs: 60_000 });
      await relay.listen();
      try {
        const { a, b, channel } = await staple(relay);
        now += 59_999;
        assert.deepEqual(await relay.tcp.sweepIdle(now), []);
        a.socket.write(Buffer.from('keepalive'));
        await b.until(() => b.data.length === 9, 'the bytes');
        now += 59_999;
        assert.deepEqual(await relay.tcp.sweepIdle(now), [], 'bytes reset the idle clock');
        now += 1;
        assert.deepEqual(await relay.tcp.sweepIdle(now), [channel]);
        await a.until(() => a.closed, 'a to be closed');
        await b.until(() => b.closed, 'b to be closed');
        assert.equal((await relay.store.get(channel))?.closeReason, 'expired');
        assert.equal(relay.tcp.stapledCount, 0);
        assert.equal(await metric(relay, 'tsc_croc_relay_timeouts_total{limit="stapled_idle"}'), 1);
      } finally {
        await relay.close();
      }
    });

    test('stapled channels count toward maxChannels until removed', T, S.withRelay({ maxChannels: 1 }, async (relay) => {
      const { a, b } = await staple(relay);
      expectError(await post(relay, '/join', { role: 'sender' }), 503, 'ERR_TOO_MANY_CHANNELS');
      a.socket.destroy();
      await b.until(() => b.closed, 'b to close');
    }));

    test('maxChannelsPerAddress: a join beyond it gets 429 ERR_RATE_LIMITED; closing frees a slot', T, S.withRelay({ maxChannelsPerAddress: 2 }, async (relay) => {
      const from = (remoteAddress: string) => ({ remoteAddress });
      const one = await post<JoinResponse>(relay, '/join', { role: 'sender' }, from('10.0.0.1'));
      assert.equal((await post(relay, '/join', { role: 'sender' }, from('10.0.0.1'))).status, 200);
      expectError(await post(relay, '/join', { role: 'sender' }, from('10.0.0.1')), 429, 'ERR_RATE_LIMITED');
      // A recipient join counts for the recipient's address too.
      const other = await post<JoinResponse>(relay, '/join', { role: 'sender' }, from('10.0.0.2'));
      expectError(await post(relay, '/join', { role: 'recipient', channel: other.body.channel }, from('10.0.0.1')), 429, 'ERR_RATE_LIMITED');
      assert.equal((await relay.store.openCountOf('10.0.0.1')), 2);
      assert.equal((await post(relay, '/channel', { channel: one.body.channel, uuid: one.body.uuid, close: true }, from('10.0.0.1'))).status, 200);
      assert.equal((await relay.store.openCountOf('10.0.0.1')), 1);
      assert.equal((await post(relay, '/join', { role: 'recipient', channel: other.body.channel }, from('10.0.0.1'))).status, 200);
      assert.equal(await metric(relay, 'tsc_croc_relay_rejections_total{source="http",code="ERR_RATE_LIMITED"}'), 2);
    }));

    test('maxPendingSockets: a socket beyond it gets ERR_TOO_MANY_CONNECTIONS; the relay keeps serving', T, S.withRelay({ maxPendingSockets: 2 }, async (relay) => {
      const silent = [await Client.connect(relay.tcp.port!), await Client.connect(relay.tcp.port!)];
      await until(() => relay.tcp.pendingCount === 2, 'two pending sockets');
      const third = await Client.connect(relay.tcp.port!);
      await expectRefused(third, 'ERR_TOO_MANY_CONNECTIONS');
      for (const c of silent) c.socket.destroy();
      await until(() => relay.tcp.pendingCount === 0, 'the pending sockets to go');
      await stillServes(relay);
      assert.equal(await metric(relay, 'tsc_croc_relay_rejections_total{source="tcp",code="ERR_TOO_MANY_CONNECTIONS"}'), 1);
    }));
  });

  describe('pending sockets per address', () => {
    test('maxPendingSocketsPerAddress: a socket beyond it gets ERR_TOO_MANY_CONNECTIONS; another address is not affected', T, S.withRelay({ maxPendingSocketsPerAddress: 2 }, async (relay) => {
      const silent = [await Client.connect(relay.tcp.port!), await Client.connect(relay.tcp.port!)];
      await until(() => relay.tcp.pendingCount === 2, 'two pending sockets');
      const third = await Client.connect(relay.tcp.port!);
      await expectRefused(third, 'ERR_TOO_MANY_CONNECTIONS');
      const other = await Client.connect(relay.tcp.port!, { localAddress: '127.0.0.2' }).catch(() => undefined);
      if (other !== undefined) {
        // (Linux routes all of 127/8 to loopback; elsewhere this part is skipped.)
        await until(() => relay.tcp.pendingCount === 3, 'the other address to be pending');
        other.socket.destroy();
      }
      for (const c of silent) c.socket.destroy();
      await until(() => relay.tcp.pendingCount === 0, 'the pending sockets to go');
      await stillServes(relay);
    }));
  });

  describe('S6: peers post only the peer close reasons', () => {
    test('reason "expired" from a peer: 400 ERR_BAD_REQUEST, the channel stays open', S.withRelay({}, async (relay) => {
      const seats = await seat(relay, { handshake: false });
      expectError(await post(relay, '/channel', { channel: seats.channel, uuid: seats.sender, close: true, reason: 'expired' }), 400, 'ERR_BAD_REQUEST');
      assert.equal((await relay.store.get(seats.channel))?.closed, false);
    }));
  });

  describe('relay password', () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString('utf8'));
        cb();
      },
    });
    const PW = 'correct horse battery staple';

    test('join: missing or wrong 401 ERR_UNAUTHORIZED; right 200; never logged', T, S.withRelay({ password: PW, logger: { level: 'debug', stream } }, async (relay) => {
      expectError(await post(relay, '/join', { role: 'sender' }), 401, 'ERR_UNAUTHORIZED');
      expectError(await post(relay, '/join', { role: 'sender', password: 'wrong' }), 401, 'ERR_UNAUTHORIZED');
      expectError(await post(relay, '/join', { role: 'sender', password: PW.slice(0, -1) }), 401, 'ERR_UNAUTHORIZED');
      expectError(await post(relay, '/join', { role: 'sender', password: 'x'.repeat(257) }), 400, 'ERR_BAD_REQUEST');
      expectError(await post(relay, '/join', { role: 'sender', password: '' }), 400, 'ERR_BAD_REQUEST');
      const s = await post<JoinResponse>(relay, '/join', { role: 'sender', password: PW });
      assert.equal(s.status, 200);
      expectError(await post(relay, '/join', { role: 'recipient', channel: s.body.channel }), 401, 'ERR_UNAUTHORIZED');
      assert.equal((await post(relay, '/join', { role: 'recipient', channel: s.body.channel, password: PW })).status, 200);
      assert.equal(await metric(relay, 'tsc_croc_relay_rejections_total{source="http",code="ERR_UNAUTHORIZED"}'), 4);
      assert.ok(lines.length > 0);
      assert.ok(!lines.join('').includes(PW.slice(0, 10)), 'the password is never logged');
    }));

    test('TCP hello: missing or wrong ERR_UNAUTHORIZED; right staples', T, S.withRelay({ password: PW, logger: { level: 'debug', stream } }, async (relay) => {
      const seats = await seat(relay, { password: PW });
      for (const extra of [{}, { password: 'wrong' }]) {
        const c = await Client.connect(seats.tcpPort);
        c.hello(seats.channel, seats.sender, extra);
        await expectRefused(c, 'ERR_UNAUTHORIZED');
      }
      await stillServes(relay, PW);
      assert.ok(!lines.join('').includes(PW.slice(0, 10)), 'the password is never logged');
    }));

    test('isTcpHello accepts exactly {v, channel, uuid} or {v, channel, uuid, password}', () => {
      const base = { v: RELAY_PROTOCOL_VERSION, channel: 'abc', uuid: crypto.randomUUID() };
      assert.ok(isTcpHello(base));
      assert.ok(isTcpHello({ ...base, password: 'p' }));
      assert.ok(isTcpHello({ ...base, password: 'p'.repeat(256) }));
      assert.ok(!isTcpHello({ ...base, password: '' }));
      assert.ok(!isTcpHello({ ...base, password: 'p'.repeat(257) }));
      assert.ok(!isTcpHello({ ...base, password: 1 }));
      assert.ok(!isTcpHello({ ...base, other: 'p' }));
      assert.ok(!isTcpHello({ ...base, password: 'p', other: 1 }));
    });
  });

  describe('rate limits', () => {
    test('joins beyond joinRateLimit per address: 429 ERR_RATE_LIMITED; another address is not affected', T, S.withRelay({ joinRateLimit: 3 }, async (relay) => {
      for (let i = 0; i < 3; i++) assert.equal((await post(relay, '/join', { role: 'sender' }, { remoteAddress: '10.0.0.7' })).status, 200);
      const limited = await post(relay, '/join', { role: 'sender' }, { remoteAddress: '10.0.0.7' });
      expectError(limited, 429, 'ERR_RATE_LIMITED');
      assert.ok(limited.headers['retry-after'] !== undefined);
      assert.equal((await post(relay, '/join', { role: 'sender' }, { remoteAddress: '10.0.0.8' })).status, 200);
    }));

    test('the join window: retry-after says when it ends, and then the address may join again', T, async () => {
      let now = 1_000_000;
      const relay = S.build({ joinRateLimit: 2, rateWindowMs: 60_000, now: () => now });
      try {
        const at = { remoteAddress: '10.0.0.9' };
        assert.equal((await post(relay, '/join', { role: 'sender' }, at)).status, 200);
        now += 20_000;
        assert.equal((await post(relay, '/join', { role: 'sender' }, at)).status, 200);
        const limited = await post(relay, '/join', { role: 'sender' }, at);
        expectError(limited, 429, 'ERR_RATE_LIMITED');
        assert.equal(limited.headers['retry-after'], '40'); // the window started with the first join
        now += 39_999;
        expectError(await post(relay, '/join', { role: 'sender' }, at), 429, 'ERR_RATE_LIMITED');
        now += 1;
        assert.equal((await post(relay, '/join', { role: 'sender' }, at)).status, 200);
        // The /channel limit is separate: joins do not count toward it.
        const s = await post<JoinResponse>(relay, '/join', { role: 'sender' }, { remoteAddress: '10.0.0.10' });
        assert.equal((await post(relay, '/channel', { channel: s.body.channel, uuid: s.body.uuid }, { remoteAddress: '10.0.0.10' })).status, 200);
      } finally {
        await relay.close();
      }
    });

    test('/channel beyond channelRateLimit per address: 429 ERR_RATE_LIMITED', T, S.withRelay({ channelRateLimit: 2 }, async (relay) => {
      const seats = await seat(relay, { handshake: false });
      const read = { channel: seats.channel, uuid: seats.sender };
      assert.equal((await post(relay, '/channel', read)).status, 200);
      assert.equal((await post(relay, '/channel', read)).status, 200);
      expectError(await post(relay, '/channel', read), 429, 'ERR_RATE_LIMITED');
    }));
  });

  describe('trust-proxy', () => {
    test('without it X-Forwarded-For is ignored', S.withRelay({}, async (relay) => {
      const s = await post<JoinResponse>(relay, '/join', { role: 'sender' }, { headers: { 'x-forwarded-for': '203.0.113.9' } });
      assert.equal((await relay.store.participant(s.body.channel, 'sender'))?.address, '127.0.0.1');
    }));

    test('with it the forwarded address is the peer: bound to the uuid, checked on /channel', S.withRelay({ trustProxy: true }, async (relay) => {
      const xff = (a: string) => ({ headers: { 'x-forwarded-for': a } });
      const s = await post<JoinResponse>(relay, '/join', { role: 'sender' }, xff('203.0.113.9'));
      assert.equal((await relay.store.participant(s.body.channel, 'sender'))?.address, '203.0.113.9');
      const ref = { channel: s.body.channel, uuid: s.body.uuid };
      assert.equal((await post(relay, '/channel', ref, xff('203.0.113.9'))).status, 200);
      expectError(await post(relay, '/channel', ref, xff('198.51.100.1')), 403, 'ERR_ADDRESS_MISMATCH');
    }));
  });

  describe('GET /metrics', () => {
    test('counts joins, staples, bytes, sockets; loopback only by default', T, S.withRelay({}, async (relay) => {
      const { a, b } = await staple(relay);
      a.socket.write(Buffer.alloc(1000));
      await b.until(() => b.data.length === 1000, 'the bytes');
      assert.equal(await metric(relay, 'tsc_croc_relay_joins_total{role="sender"}'), 1);
      assert.equal(await metric(relay, 'tsc_croc_relay_joins_total{role="recipient"}'), 1);
      assert.equal(await metric(relay, 'tsc_croc_relay_staples_total'), 1);
      assert.equal(await metric(relay, 'tsc_croc_relay_stapled_pairs'), 1);
      assert.equal(await metric(relay, 'tsc_croc_relay_tcp_sockets'), 2);
      assert.equal(await metric(relay, 'tsc_croc_relay_bytes_relayed_total'), 1000);
      assert.equal(await metric(relay, 'tsc_croc_relay_channels_open'), 1);
      const res = await relay.app.inject({ method: 'GET', url: '/metrics' });
      assert.match(String(res.headers['content-type']), /^text\/plain/);
      const remote = await relay.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.1.1.1' });
      expectError({ status: remote.statusCode, body: remote.json(), headers: {} }, 404, 'ERR_NOT_FOUND');
      a.socket.end();
      b.socket.end();
      await a.until(() => a.closed, 'a to close');
      await b.until(() => b.closed, 'b to close');
      await until(() => relay.tcp.stapledCount === 0, 'the pair to finish');
      assert.equal(await metric(relay, 'tsc_croc_relay_channels_closed_total{reason="done"}'), 1);
    }));

    test('public answers everyone; off answers nobody', async () => {
      for (const [mode, status] of [['public', 200], ['off', 404]] as const) {
        const relay = S.build({ metrics: mode });
        try {
          assert.equal((await relay.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.1.1.1' })).statusCode, status);
          assert.equal((await relay.app.inject({ method: 'GET', url: '/metrics' })).statusCode, status);
        } finally {
          await relay.close();
        }
      }
    });
  });

  describe('relay command configuration', () => {
    const usage = (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_INVALID_ARGUMENT';

    test('flags over environment over defaults; durations in seconds', () => {
      const c = relayConfig({ maxChannels: '50', idleTimeout: '7' }, {
        TSC_CROC_RELAY_MAX_CHANNELS: '99',
        TSC_CROC_RELAY_CHANNEL_TTL: '120',
        TSC_CROC_RELAY_PASSWORD: 'pw',
        TSC_CROC_RELAY_TRUST_PROXY: '10.0.0.1, 10.0.0.2',
        TSC_CROC_RELAY_SHUTDOWN_GRACE: '5',
        TSC_CROC_RELAY_QUIET: '1',
      });
      assert.equal(c.options.maxChannels, 50);
      assert.equal(c.options.stapledIdleMs, 7000);
      assert.equal(c.options.channelTtlMs, 120_000);
      assert.equal(c.options.password, 'pw');
      assert.equal(c.passwordOnArgv, false);
      assert.equal(c.options.trustProxy, '10.0.0.1, 10.0.0.2');
      assert.equal(c.options.host, '0.0.0.0');
      assert.equal(c.options.logger, false);
      assert.equal(c.graceMs, 5000);
      assert.equal(relayConfig({ trustProxy: true }, {}).options.trustProxy, true);
      assert.equal(relayConfig({}, { TSC_CROC_RELAY_TRUST_PROXY: 'false' }).options.trustProxy, false);
      assert.equal(relayConfig({}, {}).graceMs, 30_000);
      assert.equal(relayConfig({ password: 'x' }, {}).passwordOnArgv, true);
    });

    test('bad values are usage errors naming the flag and the variable', () => {
      assert.throws(() => relayConfig({}, { TSC_CROC_RELAY_PORT: 'abc' }), (e: Error) => usage(e) && /--port \(env TSC_CROC_RELAY_PORT\)/.test(e.message));
      assert.throws(() => relayConfig({ maxChannels: '0' }, {}), usage);
      assert.throws(() => relayConfig({ maxChannels: '1.5' }, {}), usage);
      assert.throws(() => relayConfig({ idleTimeout: '-1' }, {}), usage);
      assert.throws(() => relayConfig({ port: '70000' }, {}), usage);
      assert.throws(() => relayConfig({ port: '9000', tcpPort: '9000' }, {}), usage);
      assert.throws(() => relayConfig({ metrics: 'yes' }, {}), usage);
      assert.throws(() => relayConfig({}, { TSC_CROC_RELAY_QUIET: 'maybe' }), usage);
      assert.throws(() => relayConfig({ password: 'p'.repeat(257) }, {}), usage);
      assert.throws(() => relayConfig({ trustProxy: 'evil.example' }, {}), usage);
    });
  });

  describe('graceful close (in process)', () => {
    test('close({graceMs}) refuses joins and new sockets, lets the stapled pair finish, then closes', T, async () => {
      const relay = S.build({ port: 0, tcpPort: 0 });
      await relay.listen();
      const { a, b, channel, recipient } = await staple(relay);
      const waiting = await seat(relay);
      const w = await Client.connect(waiting.tcpPort);
      w.hello(waiting.channel, waiting.sender);
      await until(() => relay.tcp.waitingCount === 1, 'the waiting peer');
      let closed = false;
      const closing = relay.close({ graceMs: 10_000 }).then(() => {
        closed = true;
      });
      assert.equal(relay.draining, true);
      await w.until(() => w.closed, 'the unstapled peer to be dropped');
      expectError(await post(relay, '/join', { role: 'sender' }), 503, 'ERR_SHUTTING_DOWN');
      await assert.rejects(Client.connect(waiting.tcpPort), 'no new TCP connections');
      // The stapled pair still relays, and may still read its channel over HTTP.
      a.socket.write(Buffer.from('in flight'));
      await b.until(() => b.data.length === 9, 'the bytes in flight');
      assert.equal(closed, false);
      assert.equal((await post(relay, '/channel', { channel, uuid: recipient })).status, 200);
      a.socket.end();
      b.socket.end();
      await closing;
      assert.equal(closed, true);
      await b.until(() => b.closed, 'b to close');
    });
  });
});
