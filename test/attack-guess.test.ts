/**
 * Strangers who know (or found) a channel name, against a real relay on loopback and the real
 * peers: a wrong guess, a squatter that sits in the recipient seat, guesses until the attempts run
 * out. Each attacker speaks the relay's HTTP API from its own address (127.0.0.2 and up, bound with
 * localAddress) and runs real SPAKE2 with a wrong secret. Each test proves that a legitimate
 * transfer succeeds during the attack, and is bounded to a minute.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToHex, hexToBytes } from '../src/core/assert.js';
import { recipientRespond } from '../src/core/handshake.js';
import { derivePasswordScalar } from '../src/core/password.js';
import type { ChannelState, CurveName } from '../src/core/relay-api.js';
import { receive, send, TscCrocError, type TransferEvent } from '../src/index.js';
import { buildRelay, type Relay, type RelayOptions } from '../src/relay/index.js';
import { SEAT_TAKEN_TEXT } from '../src/transfer/pake.js';
import { runCli } from './helpers/cli.js';
import { metric, until } from './relay-helpers.js';

const T = { timeout: 60_000 };

/** One POST from `from` (a loopback address of its own), on a fresh connection. */
function post(base: string, path: string, body: object, from: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const payload = Buffer.from(JSON.stringify(body));
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', localAddress: from, agent: false, timeout: 40_000, headers: { 'content-type': 'application/json', 'content-length': payload.length } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

type Auth = { channel: string; uuid: string };

/** Long-poll until `ready` (at most 10 rounds of 5 s). */
async function poll(base: string, auth: Auth, from: string, ready: (s: ChannelState) => boolean): Promise<ChannelState> {
  let since = 0;
  for (let round = 0; round < 10; round++) {
    const a = await post(base, '/channel', { ...auth, wait: 5000, since }, from);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const st = a.body as unknown as ChannelState;
    if (ready(st)) return st;
    since = st.version;
  }
  throw new Error('the channel did not change as expected');
}

/** Join `channel` as its recipient from `from`; the join answer's uuid and curve. */
async function joinAs(base: string, channel: string, from: string): Promise<{ auth: Auth; curve: CurveName }> {
  const j = await post(base, '/join', { role: 'recipient', channel }, from);
  assert.equal(j.status, 200, JSON.stringify(j.body));
  return { auth: { channel, uuid: j.body.uuid as string }, curve: j.body.curve as CurveName };
}

/**
 * A stranger's guess: joins as the recipient from `from`, answers the sender's x with a real share
 * and confirmation for `secret`, and returns the state that ends its seat (closed for it).
 */
async function guess(base: string, channel: string, secret: string, from: string): Promise<ChannelState & { auth: Auth }> {
  const { auth, curve } = await joinAs(base, channel, from);
  const ctx = { curve, channel };
  const w = await derivePasswordScalar(secret, ctx);
  const st = await poll(base, auth, from, (s) => s.x !== null || s.closed);
  assert.ok(st.x !== null, 'the sender offers an x to every new recipient');
  const hs = recipientRespond(w, ctx, hexToBytes(st.x, 'x'));
  const a = await post(base, '/channel', { ...auth, y: bytesToHex(hs.y), hh_k: bytesToHex(hs.hh_k) }, from);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return { ...(await poll(base, auth, from, (s) => s.closed || s.h_k !== null)), auth };
}

/** Another secret than the code's (same form: three words). */
function wrongSecret(code: string): string {
  const secret = code.split('-').slice(1).join('-');
  return secret === 'abandon-ability-able' ? 'zoo-zone-zero' : 'abandon-ability-able';
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function withAttackRelay(options: Partial<RelayOptions>, fn: (relay: Relay, base: string, dir: string) => Promise<void>): Promise<void> {
  const relay = buildRelay({ port: 0, tcpPort: 0, ...options });
  const { httpPort } = await relay.listen();
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-attack-'));
  try {
    await fn(relay, `http://127.0.0.1:${httpPort}`, dir);
  } finally {
    await relay.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** send() of a fresh random file: its code as soon as it is known, the outcome, the events. */
async function startSend(base: string, dir: string, name: string) {
  const data = randomBytes(256 * 1024 + 3);
  const file = join(dir, name);
  await writeFile(file, data);
  const events: TransferEvent[] = [];
  let gotCode!: (c: string) => void;
  const code = new Promise<string>((r) => (gotCode = r));
  const outcome = send({
    relay: base,
    lan: 'off',
    files: [file],
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'code') gotCode(e.code);
    },
  }).then(
    (r) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  return { data, events, outcome, code: await Promise.race([code, outcome.then((o) => Promise.reject(o.ok ? new Error('no code') : o.e))]) };
}

async function receiveInto(base: string, code: string, out: string, extra: Partial<Parameters<typeof receive>[0]> = {}) {
  await mkdir(out, { recursive: true });
  return receive({ relay: base, lan: 'off', code, outDir: out, accept: () => true, ...extra });
}

test("(a) a stranger's wrong guess before the real recipient: the sender reports it, keeps waiting, and the real recipient gets the file", T, async () => {
  await withAttackRelay({}, async (_relay, base, dir) => {
    const s = await startSend(base, dir, 'a.bin');
    const channel = s.code.split('-')[0]!;
    const end = await guess(base, channel, wrongSecret(s.code), '127.0.0.2');
    // the stranger learns only "wrong code": no h_k, nothing else
    assert.equal(end.closed, true);
    assert.equal(end.closeReason, 'wrong-code');
    assert.equal(end.h_k, null);
    await until(() => s.events.some((e) => e.type === 'wrong-code'), 'the failed attempt to be reported');
    assert.deepEqual(s.events.find((e) => e.type === 'wrong-code'), { type: 'wrong-code', attempt: 1, maxAttempts: 5 });
    // the stranger's uuid can no longer write anything
    const again = await post(base, '/channel', { ...end.auth, y: 'ab'.repeat(32), hh_k: 'cd'.repeat(32) }, '127.0.0.2');
    assert.equal(again.status, 410);
    assert.equal(again.body.code, 'ERR_CHANNEL_CLOSED');

    const out = join(dir, 'out');
    const result = await receiveInto(base, s.code, out);
    const sent = await s.outcome;
    assert.ok(sent.ok, sent.ok ? '' : String(sent.e));
    assert.equal(result.files.length, 1);
    assert.equal(sha(await readFile(join(out, 'a.bin'))), sha(s.data));
  });
});

test('(b) a squatter that joins as the recipient and sits is evicted after recipientTimeoutMs; the real recipient, refused meanwhile, then gets the file', T, async () => {
  await withAttackRelay({ recipientTimeoutMs: 1500, sweepIntervalMs: 100 }, async (relay, base, dir) => {
    const s = await startSend(base, dir, 'b.bin');
    const channel = s.code.split('-')[0]!;
    const squatter = await joinAs(base, channel, '127.0.0.3');
    assert.equal((await relay.store.openCountOf('127.0.0.3')), 1);
    // the real recipient comes while the seat is taken: refused at first, it tries again
    const out = join(dir, 'out');
    const receiving = receiveInto(base, s.code, out);
    const full = 'tsc_croc_relay_rejections_total{source="http",code="ERR_CHANNEL_FULL"}';
    const seen = await poll(base, squatter.auth, '127.0.0.3', (st) => st.closed);
    assert.equal(seen.closeReason, 'expired');
    assert.equal((await relay.store.openCountOf('127.0.0.3')), 0, 'the evicted address no longer counts against its quota');
    const result = await receiving;
    assert.ok(((await metric(relay, full)) ?? 0) >= 1, 'the real recipient was refused while the squatter sat');
    const sent = await s.outcome;
    assert.ok(sent.ok, sent.ok ? '' : String(sent.e));
    assert.equal(result.files.length, 1);
    assert.equal(sha(await readFile(join(out, 'b.bin'))), sha(s.data));
    // a seat that timed out is not a guess: nothing was reported as a wrong code
    assert.ok(!s.events.some((e) => e.type === 'wrong-code'));
  });
});

test('(b2) a real recipient that finds the seat taken for longer than it waits says so truthfully; once the squatter leaves, the transfer works', T, async () => {
  await withAttackRelay({}, async (_relay, base, dir) => {
    const s = await startSend(base, dir, 'b2.bin');
    const channel = s.code.split('-')[0]!;
    const squatter = await joinAs(base, channel, '127.0.0.4');
    const out = join(dir, 'out');
    const e = await receiveInto(base, s.code, out, { timeouts: { joinRetryMs: 2500 } }).catch((x: unknown) => x);
    assert.ok(e instanceof TscCrocError, String(e));
    assert.equal(e.code, 'ERR_CHANNEL_FULL');
    assert.ok(e.message.startsWith(SEAT_TAKEN_TEXT), e.message);
    assert.match(e.message, /someone else joined this channel first: if that was not you, the code may have been seen/);
    // a recipient that closes before the key agreement only leaves its seat: the sender still waits
    const left = await post(base, '/channel', { ...squatter.auth, close: true, reason: 'cancelled' }, '127.0.0.4');
    assert.equal(left.status, 200);
    assert.equal((left.body as unknown as ChannelState).closed, true);
    const result = await receiveInto(base, s.code, out);
    const sent = await s.outcome;
    assert.ok(sent.ok, sent.ok ? '' : String(sent.e));
    assert.equal(result.files.length, 1);
    assert.equal(sha(await readFile(join(out, 'b2.bin'))), sha(s.data));
  });
});

test('(c) guesses until the attempts run out: the sender (CLI) reports each one, then ends with the wrong-code error and exit code 3; nothing is published; another transfer meanwhile succeeds', T, async () => {
  await withAttackRelay({}, async (_relay, base, dir) => {
    const file = join(dir, 'c.bin');
    await writeFile(file, randomBytes(4096));
    const sender = runCli(['send', '--no-local', '--relay', base, file]);
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    const channel = code!.split('-')[0]!;
    // a legitimate transfer on the same relay, running through the attack
    const other = await startSend(base, dir, 'other.bin');
    const otherOut = join(dir, 'other-out');
    const otherDone = receiveInto(base, other.code, otherOut);

    for (let i = 1; i <= 4; i++) {
      const end = await guess(base, channel, wrongSecret(code!), `127.0.0.${10 + i}`);
      assert.equal(end.closeReason, 'wrong-code');
      await sender.waitFor(new RegExp(`Someone tried a wrong code \\(${i} of 5\\): still waiting for the right one`));
    }
    // the fifth, a real recipient that mistyped: told the truth, nothing written
    const out = join(dir, 'out');
    const fifth = await receiveInto(base, `${channel}-${wrongSecret(code!)}`, out).catch((x: unknown) => x);
    assert.ok(fifth instanceof TscCrocError && fifth.code === 'ERR_WRONG_CODE', String(fifth));
    assert.equal(await sender.exit(), 3, sender.stderr());
    assert.match(sender.stderr(), /Someone tried a wrong code \(5 of 5\)/);
    assert.match(sender.stderr(), /code is wrong: 5 attempts failed/);
    assert.deepEqual(await readdir(out), []);
    // the channel is closed and its name free: even the right code finds no sender now
    const late = await receiveInto(base, code!, out).catch((x: unknown) => x);
    assert.ok(late instanceof TscCrocError && late.code === 'ERR_CHANNEL_NOT_FOUND', String(late));
    assert.deepEqual(await readdir(out), []);

    await otherDone;
    const sent = await other.outcome;
    assert.ok(sent.ok, sent.ok ? '' : String(sent.e));
    assert.equal(sha(await readFile(join(otherOut, 'other.bin'))), sha(other.data));
  });
});

test('(e) 20 addresses scan relay-picked channel names: each is cut off after joinMissLimit misses (a channel a probe finds it only sits in for a moment), and the real recipient gets the file', T, async () => {
  await withAttackRelay({}, async (relay, base, dir) => {
    const s = await startSend(base, dir, 'e.bin');
    const victim = s.code.split('-')[0]!;
    assert.match(victim, /^[1-9][0-9]{0,3}$/, 'a quiet relay picks from 4 digits');
    const misses: number[] = [];
    const found: string[] = [];
    const scan = async (from: string): Promise<void> => {
      let missed = 0;
      // distinct names (a name asked again counts once: docs/relay-api.md), as a scanner would
      const names = new Set<string>();
      // bounded: the miss limit must stop the scanner well before 100 probes
      for (let probe = 0; probe < 100; probe++) {
        let name = String(1 + Math.floor(Math.random() * 9999));
        while (names.has(name)) name = String(1 + Math.floor(Math.random() * 9999));
        names.add(name);
        const j = await post(base, '/join', { role: 'recipient', channel: name }, from);
        if (j.status === 404) missed++;
        else if (j.status === 429) return void misses.push(missed);
        else if (j.status === 200) {
          // a hit: the scanner sits in the seat for a moment, then leaves it (a guess is test (a))
          found.push(name);
          await post(base, '/channel', { channel: name, uuid: j.body.uuid, close: true, reason: 'cancelled' }, from);
        }
      }
      throw new Error(`${from} was never cut off`);
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => scan(`127.0.0.${20 + i}`)));
    assert.equal(misses.length, 20);
    for (const m of misses) assert.equal(m, relay.options.joinMissLimit, 'each address gets exactly joinMissLimit misses');
    // the real recipient, from its own address, is not affected
    const out = join(dir, 'out');
    const result = await receiveInto(base, s.code, out);
    const sent = await s.outcome;
    assert.ok(sent.ok, sent.ok ? '' : String(sent.e));
    assert.equal(result.files.length, 1);
    assert.equal(sha(await readFile(join(out, 'e.bin'))), sha(s.data));
    if (found.length > 0) assert.deepEqual(found, [victim], 'the only channel to find was the victim');
  });
});
