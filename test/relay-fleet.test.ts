/**
 * A relay fleet's TCP stapling (docs/relay-api.md "TCP stapling"): the process that creates a channel
 * records its advertised TCP address (--advertise-tcp) in the shared store, and every join answer of
 * the channel names it, whichever process answers. Real redis-server, real relays, real sockets;
 * then a real HAProxy round-robin over three relay processes and concurrent CLI transfers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { JoinResponse } from '../src/core/relay-api.js';
import { isLoopbackHost, parseAdvertiseTcp, tcpHostProblem, tcpHostRefusal } from '../src/core/tcp-host.js';
import { TscCrocError } from '../src/core/errors.js';
import { receive, send } from '../src/index.js';
import { buildRelay, type Relay, type RelayOptions } from '../src/relay/index.js';
import { relayConfig } from '../src/relay/config.js';
import { RelayClient } from '../src/transfer/relay-client.js';
import { RedisServer, freePort, redisSkip } from './helpers/redis.js';
import { HAPROXY, haproxyConfig } from './helpers/haproxy.js';
import { runCli, sha256File, spawnWatched, startCliRelay } from './helpers/cli.js';
import { httpPost, metric, post, seatOverHttp, stapleSeats } from './relay-helpers.js';

const redisMissing = redisSkip();
const haproxyMissing =
  redisMissing ?? (spawnSync(HAPROXY, ['-v'], { stdio: 'ignore' }).status === 0 ? undefined : `${HAPROXY} is not installed (apt-get install haproxy): the HAProxy fleet test is skipped`);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('tcpHost: what a peer accepts, what --advertise-tcp takes', () => {
  test('host names and unicast IP literals pass; multicast, broadcast, unspecified and malformed hosts do not', () => {
    for (const ok of ['relay.example.org', 'r1', 'a-b.c', '10.0.0.5', '127.0.0.1', '::1', '2001:db8::7', 'relay.example.org.'])
      assert.equal(tcpHostProblem(ok), null, ok);
    const bad = ['', 'a'.repeat(254), '224.0.0.1', '239.255.255.250', '255.255.255.255', '0.0.0.0', '240.0.0.1', 'ff02::1', '::', '::ffff:224.0.0.1',
      '-a.org', 'a_b.org', 'a..b', 'x y', 'host:80', '[::1]', '1.2.3', '999.1.1.1', 'a.b.c.1', 'http://x', 'é.org', '1.2.3.4\n'];
    for (const b of bad) assert.notEqual(tcpHostProblem(b), null, JSON.stringify(b));
    assert.ok(isLoopbackHost('localhost') && isLoopbackHost('127.9.0.1') && isLoopbackHost('::1') && isLoopbackHost('::ffff:127.0.0.1'));
    assert.ok(!isLoopbackHost('10.0.0.1') && !isLoopbackHost('relay.example.org'));
    // loopback only from a relay on loopback itself
    assert.equal(tcpHostRefusal('127.0.0.1', '127.0.0.1'), null);
    assert.equal(tcpHostRefusal('10.0.0.5', 'relay.example.org'), null);
    assert.match(tcpHostRefusal('127.0.0.1', 'relay.example.org') ?? '', /loopback/);
    assert.match(tcpHostRefusal('localhost', '203.0.113.9') ?? '', /loopback/);
    assert.match(tcpHostRefusal(42, 'relay.example.org') ?? '', /not a string/);
  });

  test('HOST[:PORT] with IPv6 bracketed; the CLI flag and its variable, a bad one a usage error naming both', () => {
    assert.deepEqual(parseAdvertiseTcp('10.0.0.5:9010'), { host: '10.0.0.5', port: 9010 });
    assert.deepEqual(parseAdvertiseTcp('relay-1.internal'), { host: 'relay-1.internal', port: undefined });
    assert.deepEqual(parseAdvertiseTcp('[2001:db8::7]:9010'), { host: '2001:db8::7', port: 9010 });
    assert.deepEqual(parseAdvertiseTcp('2001:db8::7'), { host: '2001:db8::7', port: undefined });
    for (const bad of ['10.0.0.5:0', '10.0.0.5:70000', 'x:y', '224.0.0.1:9010', '[relay]:1', '']) assert.throws(() => parseAdvertiseTcp(bad), RangeError, bad);
    assert.equal(relayConfig({ advertiseTcp: 'r1:9010' }, {}).options.advertiseTcp, 'r1:9010');
    assert.equal(relayConfig({}, { TSC_CROC_RELAY_ADVERTISE_TCP: '10.0.0.5' }).options.advertiseTcp, '10.0.0.5');
    assert.equal(relayConfig({}, {}).options.advertiseTcp, undefined);
    assert.throws(
      () => relayConfig({ advertiseTcp: '255.255.255.255:9010' }, {}),
      (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_INVALID_ARGUMENT' && /--advertise-tcp \(env TSC_CROC_RELAY_ADVERTISE_TCP\)/.test(e.message),
    );
  });

  test('a relay whose join answer names a multicast or malformed tcpHost, or loopback while it is not on this machine, is refused (ERR_RELAY)', async () => {
    let tcpHost: unknown;
    const server: Server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ version: 1, channel: '1234', uuid: '0b8f1f0e-8b5c-4a55-9a4e-1f2a3b4c5d6e', role: 'sender', curve: 'ed25519', tcpPort: 9010, tcpHost }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
    const port = (server.address() as { port: number }).port;
    try {
      const at = (host: string) => new RelayClient(`http://${host}:${port}`);
      const refused = (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_RELAY';
      for (const h of ['224.0.0.1', 'a b', 42, 'x'.repeat(300)]) {
        tcpHost = h;
        await assert.rejects(at('127.0.0.2').join({ role: 'sender' }), refused, String(h));
      }
      // the answer itself is well-formed: it names one of the forms a peer accepts
      tcpHost = '10.1.2.3';
      const ok = await at('127.0.0.2').join({ role: 'sender' });
      assert.equal(ok.tcpHost, '10.1.2.3');
      assert.equal(at('127.0.0.2').tcpHostOf(ok), '10.1.2.3');
      tcpHost = undefined;
      const old = await at('127.0.0.2').join({ role: 'sender' });
      assert.equal(at('127.0.0.2').tcpHostOf(old), '127.0.0.2');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('two relays on one Redis: the channel creator\'s advertised TCP address', redisMissing === undefined ? {} : { skip: redisMissing }, () => {
  let server: RedisServer;
  let root: string;
  let n = 0;
  before(async () => {
    server = await RedisServer.start();
    root = await mkdtemp(pjoin(tmpdir(), 'tsc-croc-fleet-'));
  });
  after(async () => {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  /** Relays A and B listening on loopback, sharing the store; A advertises the bare host (its bound port), B HOST:PORT. */
  const tcpOf = new Map<Relay, number>();
  async function pair(advertise: boolean, fn: (a: Relay, b: Relay) => Promise<void>): Promise<void> {
    const o: Partial<RelayOptions> = { port: 0, tcpPort: 0, store: server.url, storePrefix: `f${process.pid}-${++n}:` };
    const bPort = await freePort();
    const a = buildRelay({ ...o, advertiseTcp: advertise ? '127.0.0.1' : undefined });
    const b = buildRelay({ ...o, tcpPort: bPort, advertiseTcp: advertise ? `127.0.0.1:${bPort}` : undefined });
    try {
      const [pa, pb] = await Promise.all([a.listen(), b.listen()]);
      tcpOf.set(a, pa.tcpPort).set(b, pb.tcpPort);
      assert.equal(pb.tcpPort, bPort);
      await fn(a, b);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }
  const portOf = (r: Relay) => (r.app.server.address() as { port: number }).port;

  test('the sender joins through A, the recipient through B: both answers name A\'s TCP address', { timeout: 30_000 }, () =>
    pair(true, async (a, b) => {
      const s = await post<JoinResponse>(a, '/join', { role: 'sender' });
      assert.equal(s.status, 200);
      const r = await post<JoinResponse>(b, '/join', { role: 'recipient', channel: s.body.channel });
      assert.equal(r.status, 200);
      const aTcp = tcpOf.get(a);
      assert.notEqual(aTcp, tcpOf.get(b));
      assert.deepEqual([s.body.tcpHost, s.body.tcpPort], ['127.0.0.1', aTcp]);
      assert.deepEqual([r.body.tcpHost, r.body.tcpPort], ['127.0.0.1', aTcp]);
      // and the other way round: a channel created through B staples on B
      const s2 = await post<JoinResponse>(b, '/join', { role: 'sender' });
      const r2 = await post<JoinResponse>(a, '/join', { role: 'recipient', channel: s2.body.channel });
      assert.deepEqual([s2.body.tcpHost, s2.body.tcpPort, r2.body.tcpHost, r2.body.tcpPort], ['127.0.0.1', tcpOf.get(b), '127.0.0.1', tcpOf.get(b)]);
      assert.equal(await metric(b, 'tsc_croc_relay_joins_elsewhere_total{role="recipient"}'), 1);
      assert.equal(await metric(a, 'tsc_croc_relay_joins_elsewhere_total{role="recipient"}'), 1);
    }));

  test('without --advertise-tcp: no tcpHost, each process names its own port (today\'s single-process answer)', { timeout: 30_000 }, () =>
    pair(false, async (a, b) => {
      const s = await post<JoinResponse>(a, '/join', { role: 'sender' });
      const r = await post<JoinResponse>(b, '/join', { role: 'recipient', channel: s.body.channel });
      assert.equal(s.body.tcpHost, undefined);
      assert.equal(r.body.tcpHost, undefined);
      assert.equal(s.body.tcpPort, tcpOf.get(a));
      assert.equal(r.body.tcpPort, tcpOf.get(b));
    }));

  test('library send through A, receive through B (lan off): both staple on A, the file arrives (hashed)', { timeout: 60_000 }, () =>
    pair(true, async (a, b) => {
      const data = randomBytes(1024 * 1024 + 13);
      const file = pjoin(root, 'data.bin');
      await writeFile(file, data);
      const out = pjoin(root, 'out');
      await mkdir(out);
      let gotCode!: (c: string) => void;
      const code = new Promise<string>((res) => (gotCode = res));
      const sent = send({ relay: `http://127.0.0.1:${portOf(a)}`, lan: 'off', files: [file], onEvent: (e) => e.type === 'code' && gotCode(e.code) });
      const got = await receive({ relay: `http://127.0.0.1:${portOf(b)}`, lan: 'off', code: await code, outDir: out, accept: () => true });
      assert.equal((await sent).bytes, data.length);
      assert.equal(got.files.length, 1);
      assert.equal(sha(await readFile(pjoin(out, 'data.bin'))), sha(data));
      assert.equal(await metric(a, 'tsc_croc_relay_staples_total'), 1);
      assert.equal(await metric(b, 'tsc_croc_relay_staples_total'), 0);
      assert.equal(await metric(b, 'tsc_croc_relay_joins_elsewhere_total{role="recipient"}'), 1);
    }));
});

type CliRelay = Awaited<ReturnType<typeof startCliRelay>>;

describe('HAProxy round-robin over three relay processes on one Redis', haproxyMissing === undefined ? {} : { skip: haproxyMissing }, () => {
  const TRANSFERS = 20;
  let redis: RedisServer;
  let root: string;
  let fleets = 0;
  const cleanups: (() => Promise<unknown>)[] = [];
  before(async () => {
    redis = await RedisServer.start();
    root = await mkdtemp(pjoin(tmpdir(), 'tsc-croc-haproxy-'));
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await redis?.stop();
    await rm(root, { recursive: true, force: true });
  });

  /**
   * Three `tsc-croc relay` processes (one Redis, each advertising 127.0.0.1 and its own TCP port)
   * and a real HAProxy in front of their HTTP ports: round-robin, /health checks, a request whose
   * server refuses the connection is sent to another one.
   */
  async function fleet(extra: Record<string, string> = {}): Promise<{ url: string; relays: CliRelay[] }> {
    const env = { TSC_CROC_RELAY_STORE: redis.url, TSC_CROC_RELAY_STORE_PREFIX: `h${process.pid}-${++fleets}:`, TSC_CROC_RELAY_ADVERTISE_TCP: '127.0.0.1', ...extra };
    const relays = await Promise.all([0, 1, 2].map(() => startCliRelay(env)));
    cleanups.push(() => Promise.allSettled(relays.map((r) => (r.proc.child.exitCode === null && r.proc.child.signalCode === null ? r.stop() : undefined))));
    const front = await freePort();
    const cfg = pjoin(root, `haproxy-${fleets}.cfg`);
    await writeFile(
      cfg,
      haproxyConfig(front, relays.map((r) => r.httpPort), { maxconn: 2000, timeoutS: 120 }),
    );
    // master-worker in the foreground: the master says "Loading success." once the worker listens
    const proxy = spawnWatched(HAPROXY, ['-W', '-db', '-f', cfg], { env: process.env, label: 'haproxy' });
    cleanups.push(async () => {
      if (proxy.child.exitCode !== null) return;
      proxy.child.kill('SIGTERM');
      await proxy.exit(10_000);
    });
    await proxy.waitFor(/Loading success/, 10_000);
    const url = `http://127.0.0.1:${front}`;
    assert.equal((await fetch(`${url}/health`)).status, 200);
    return { url, relays };
  }

  /** A counter from one process's /metrics (0 when it has no sample yet). */
  const scrape = async (r: CliRelay, name: string): Promise<number> => {
    const body = await (await fetch(`${r.url}/metrics`)).text();
    const line = body.split('\n').find((l) => l.startsWith(name + ' '));
    return line === undefined ? 0 : Number(line.slice(name.length + 1));
  };

  test(`${TRANSFERS} concurrent CLI transfers (--no-local) through one HAProxy address: all arrive (hashed), most pairs split across processes`, { timeout: 120_000 }, async () => {
    const { url, relays } = await fleet();
    const runs = Array.from({ length: TRANSFERS }, async (_, i) => {
      const dir = pjoin(root, `t${i}`);
      const out = pjoin(dir, 'out');
      await mkdir(out, { recursive: true });
      const file = pjoin(dir, `f${i}.bin`);
      await writeFile(file, randomBytes(64 * 1024 + i));
      const sender = runCli(['send', '--no-local', '--relay', url, file]);
      const [, code] = await sender.waitFor(/Code is: (\S+)/, 60_000);
      const recipient = runCli(['receive', '--no-local', '--relay', url, '--out', out, '--yes', code!]);
      assert.equal(await recipient.exit(90_000), 0, recipient.output());
      assert.equal(await sender.exit(90_000), 0, sender.output());
      assert.equal(await sha256File(pjoin(out, `f${i}.bin`)), await sha256File(file));
    });
    const results = await Promise.allSettled(runs);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(failed.length, 0, failed.map((f) => String(f.reason)).join('\n').slice(0, 4000));

    // from each process's /metrics: who stapled, and how many joins named another process's stapler
    const staples = await Promise.all(relays.map((r) => scrape(r, 'tsc_croc_relay_staples_total')));
    const elsewhere = await Promise.all(relays.map((r) => scrape(r, 'tsc_croc_relay_joins_elsewhere_total{role="recipient"}')));
    const split = elsewhere.reduce((x, y) => x + y, 0);
    process.stdout.write(`# fleet: staples per process ${JSON.stringify(staples)}, recipient joins through another process ${split} of ${TRANSFERS}\n`);
    assert.equal(staples.reduce((x, y) => x + y, 0), TRANSFERS);
    // round-robin over three processes, the requests of 20 transfers interleaved: about two pairs in three
    // split (14-15 of 20 measured); a quarter is far below any plausible draw, and proves the split happens
    assert.ok(split >= TRANSFERS / 4, `only ${split} of ${TRANSFERS} pairs were split across processes`);
  });

  test('kill -9 the process stapling a transfer: the peers reconnect through HAProxy to another process and the files arrive (hashed)', { timeout: 120_000 }, async () => {
    const { url, relays } = await fleet();
    const src = pjoin(root, 'killed');
    const out = pjoin(root, 'killed-out');
    await mkdir(src);
    await mkdir(out);
    await writeFile(pjoin(src, 'a.bin'), randomBytes(600_000));
    for (const n of ['b.bin', 'c.bin']) await writeFile(pjoin(src, n), randomBytes(48 * 1024 * 1024));
    const code = `${7000 + process.pid % 1000}-fleet-kill-test`;
    const sender = runCli(['send', '--no-local', '--json', '--relay', url, src], { env: { TSC_CROC_SECRET: code } });
    await sender.waitFor(/"event":"code"/);
    const recipient = runCli(['receive', '--no-local', '--json', '--yes', '--relay', url, '--out', out], { env: { TSC_CROC_SECRET: code } });
    try {
      // once b.bin is under way, pause the sender (so the transfer cannot finish meanwhile) and kill the stapling process
      await sender.waitFor(/"event":"file-start","path":"killed\/b\.bin"/, 60_000);
      sender.child.kill('SIGSTOP');
      const pairs = await Promise.all(relays.map((r) => scrape(r, 'tsc_croc_relay_stapled_pairs')));
      const victim = pairs.indexOf(1);
      assert.ok(victim >= 0 && pairs.filter((p) => p > 0).length === 1, `one process staples the transfer: ${JSON.stringify(pairs)}`);
      relays[victim]!.proc.child.kill('SIGKILL');
      await relays[victim]!.proc.exit();
      sender.child.kill('SIGCONT');
      assert.equal(await recipient.exit(90_000), 0, recipient.output().slice(-3000));
      assert.equal(await sender.exit(90_000), 0, sender.output().slice(-3000));
    } finally {
      sender.child.kill('SIGCONT');
    }
    for (const n of ['a.bin', 'b.bin', 'c.bin']) assert.equal(await sha256File(pjoin(out, 'killed', n)), await sha256File(pjoin(src, n)), n);
    assert.match(sender.stdout(), /"event":"reconnected"/);
    assert.match(recipient.stdout(), /"event":"reconnected"/);
    const survivors = relays.filter((_, i) => relays[i]!.proc.child.signalCode === null);
    const staples = await Promise.all(survivors.map((r) => scrape(r, 'tsc_croc_relay_staples_total')));
    process.stdout.write(`# fleet kill -9: staples on the surviving processes after the reconnect ${JSON.stringify(staples)}\n`);
    assert.equal(staples.reduce((x, y) => x + y, 0), 1, 'the reconnected session is stapled on a surviving process');
  });

  test("kill -9 the process stapling a pair whose peers are gone too: a survivor's sweep closes the orphaned channel, its name is usable again", { timeout: 60_000 }, async () => {
    // a 1 s stapled lease: the survivors' sweeps (every 5 s) find the killed process gone within seconds
    const { url, relays } = await fleet({ TSC_CROC_RELAY_STAPLED_LEASE: '1' });
    const seats = await stapleSeats(await seatOverHttp(url));
    const victim = relays.findIndex((r) => r.tcpPort === seats.tcpPort);
    assert.ok(victim >= 0, 'the pair is stapled on one of the three processes');
    relays[victim]!.proc.child.kill('SIGKILL');
    await relays[victim]!.proc.exit();
    seats.a.socket.destroy();
    seats.b.socket.destroy();
    // nobody is left to close it but the survivors: the name is taken until one of their sweeps does
    const joinName = () => httpPost<JoinResponse>(`${url}/join`, { role: 'sender', channel: seats.channel });
    let answer = await joinName();
    assert.equal(answer.status, 409, JSON.stringify(answer.body));
    for (const deadline = Date.now() + 30_000; answer.status !== 200 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 250)); // a bounded poll: at most 30 s, 4 joins a second
      answer = await joinName();
      assert.ok(answer.status === 200 || answer.status === 409, JSON.stringify(answer.body));
    }
    assert.equal(answer.status, 200, "the killed process's channel still holds its name");
  });
});
