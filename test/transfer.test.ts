/**
 * The library API (send/receive) against a real relay on loopback: events, cancellation from
 * either side, decline, and an expired code.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { receive, receiveEvents, send, sendEvents, startRelay, TscCrocError, type RunningRelay, type TransferEvent } from '../src/index.js';
import { startPeerRelay } from './helpers/relay.js';

let relay: RunningRelay;
let root: string;

before(async () => {
  relay = await startPeerRelay();
  root = await mkdtemp(join(tmpdir(), 'tsc-croc-lib-'));
});
after(async () => {
  await relay.close();
  await rm(root, { recursive: true, force: true });
});

let n = 0;
async function setup(bytes: number) {
  const dir = join(root, String(n++));
  await mkdir(join(dir, 'out'), { recursive: true });
  const file = join(dir, 'data.bin');
  const data = randomBytes(bytes);
  await writeFile(file, data);
  return { file, data, out: join(dir, 'out') };
}

/** Start send(); resolves with the code as soon as it is known, and the send outcome. */
function startSend(opts: Omit<Parameters<typeof send>[0], 'relay'>, events: TransferEvent[] = []) {
  let gotCode!: (c: string) => void;
  const code = new Promise<string>((r) => (gotCode = r));
  const outcome = send({
    relay: relay.httpUrl,
    interfaces: LO,
    ...opts,
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'code') gotCode(e.code);
      opts.onEvent?.(e);
    },
  }).then(
    (r) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  return { code: Promise.race([code, outcome.then((o) => Promise.reject(o.ok ? new Error('no code') : o.e))]), outcome };
}

const codeOf = (e: unknown) => (e instanceof TscCrocError ? e.code : String(e));
/** The local network through loopback only: nothing multicasts on the machine's real interfaces. */
const LO = ['lo'];

test('send and receive through the library, with events in order', async () => {
  const { file, data, out } = await setup(3 * 1024 * 1024 + 17);
  const sendEvents: TransferEvent[] = [];
  const recvEvents: TransferEvent[] = [];
  const s = startSend({ files: [file] }, sendEvents);
  const result = await receive({ relay: relay.httpUrl, interfaces: LO, code: await s.code, outDir: out, accept: () => true, onEvent: (e) => recvEvents.push(e) });
  const sent = await s.outcome;
  assert.ok(sent.ok);
  assert.equal(sent.r.bytes, data.length);
  assert.equal(result.files.length, 1);
  assert.ok((await readFile(join(out, 'data.bin'))).equals(data));
  const kinds = (es: TransferEvent[]) => [...new Set(es.map((e) => (e.type === 'stage' ? `stage:${e.stage}` : e.type)))];
  assert.deepEqual(kinds(sendEvents), ['stage:connecting', 'code', 'stage:waiting', 'route', 'stage:securing', 'stage:transferring', 'file-start', 'progress', 'file-done', 'done']);
  assert.deepEqual(kinds(recvEvents), ['stage:connecting', 'route', 'stage:securing', 'offer', 'stage:transferring', 'file-start', 'progress', 'file-done', 'done']);
  // both on this machine, with a relay configured: the local network is found first
  assert.deepEqual(sendEvents.find((e) => e.type === 'route'), { type: 'route', via: 'lan' });
  const last = recvEvents.filter((e) => e.type === 'progress').at(-1);
  assert.deepEqual(last, { type: 'progress', bytes: data.length, totalBytes: data.length });
  // both sides name a file by its path in the offer, not by where it landed
  assert.deepEqual(recvEvents.find((e) => e.type === 'file-done'), { type: 'file-done', path: 'data.bin', size: data.length });
  assert.deepEqual(sendEvents.find((e) => e.type === 'file-done'), { type: 'file-done', path: 'data.bin', size: data.length });
});

test('regression: a file whose mtime lies a few ns below a millisecond is not "changed while it was being sent"', async () => {
  const { out } = await setup(0);
  const dir = join(out, '..', 'edge');
  await mkdir(dir);
  const files = ['edge.bin', 'plain.bin'].map((n) => ({ path: join(dir, n), data: randomBytes(4096) }));
  for (const f of files) await writeFile(f.path, f.data);
  // 50 ns below a millisecond: Math.floor of the double mtimeMs rounds up to the next millisecond;
  // the whole milliseconds of the exact nanoseconds do not (touch takes nanoseconds, utimes a double)
  execFileSync('touch', ['-d', '@1795920397.999999950', files[0]!.path]);
  assert.equal((await stat(files[0]!.path, { bigint: true })).mtimeNs % 1_000_000n, 999_950n);
  const s = startSend({ files: [dir], lan: 'off' });
  await receive({ relay: relay.httpUrl, interfaces: LO, lan: 'off', code: await s.code, outDir: out, accept: () => true });
  const sent = await s.outcome;
  assert.ok(sent.ok, sent.ok ? '' : codeOf(sent.e));
  for (const f of files) assert.ok((await readFile(join(out, 'edge', f.path.slice(dir.length + 1)))).equals(f.data));
  // the recipient gets the sender's millisecond
  assert.equal(Math.floor((await stat(join(out, 'edge', 'edge.bin'))).mtimeMs), 1795920397999);
});

test('events as async iterators: every event, then the result (or the error) at the end', async () => {
  const { file, data, out } = await setup(2 * 1024 * 1024);
  const sender = sendEvents({ relay: relay.httpUrl, interfaces: LO, files: [file] });
  let code = '';
  const sendTypes: string[] = [];
  for (;;) {
    const next = await sender.next();
    if (next.done) break;
    sendTypes.push(next.value.type);
    if (next.value.type === 'code') {
      code = next.value.code;
      break; // start the recipient, then read the rest
    }
  }
  const receiving = (async () => {
    const types: string[] = [];
    const it = receiveEvents({ relay: relay.httpUrl, interfaces: LO, code, outDir: out, accept: () => true });
    for (;;) {
      const next = await it.next();
      if (next.done) return { types, result: next.value };
      types.push(next.value.type);
    }
  })();
  let sent;
  for (;;) {
    const next = await sender.next();
    if (next.done) {
      sent = next.value;
      break;
    }
    sendTypes.push(next.value.type);
  }
  const { types, result } = await receiving;
  assert.equal(sent.bytes, data.length);
  assert.equal(result.files.length, 1);
  assert.equal(sendTypes.at(-1), 'done');
  assert.ok(types.includes('offer') && types.at(-1) === 'done');
  // an error comes out of the loop
  const failing = receiveEvents({ relay: relay.httpUrl, interfaces: LO, code: 'nosuchchannel-abandon-ability-able', outDir: out, accept: () => true });
  await assert.rejects(async () => {
    for await (const _e of failing);
  }, (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_CHANNEL_NOT_FOUND');
});

test('the recipient declines: both sides end with ERR_DECLINED, nothing written', async () => {
  const { file, out } = await setup(1000);
  const s = startSend({ files: [file] });
  let offered = 0;
  const e = await receive({ relay: relay.httpUrl, interfaces: LO, code: await s.code, outDir: out, accept: (o) => ((offered = o.totalBytes), false) }).catch((x: unknown) => x);
  assert.equal(offered, 1000);
  assert.equal(codeOf(e), 'ERR_DECLINED');
  const sent = await s.outcome;
  assert.ok(!sent.ok);
  assert.equal(codeOf(sent.e), 'ERR_DECLINED');
  assert.deepEqual(await readdir(out), []);
});

test('the recipient cancels mid-transfer: the sender hears "cancelled by the recipient"', async () => {
  const { file, out } = await setup(64 * 1024 * 1024);
  const s = startSend({ files: [file] });
  const ac = new AbortController();
  const e = await receive({
    relay: relay.httpUrl,
    interfaces: LO,
    code: await s.code,
    outDir: out,
    accept: () => true,
    signal: ac.signal,
    onEvent: (ev) => ev.type === 'progress' && ac.abort(),
  }).catch((x: unknown) => x);
  assert.equal(codeOf(e), 'ERR_CANCELLED');
  const sent = await s.outcome;
  assert.ok(!sent.ok);
  assert.equal(codeOf(sent.e), 'ERR_CANCELLED', String(sent.e));
  assert.match((sent.e as Error).message, /cancelled by the recipient/);
  const names = await readdir(out);
  assert.ok(!names.includes('data.bin'), 'nothing under the final name');
});

test('the sender cancels mid-transfer: the recipient hears "cancelled by the sender", partial data kept aside', async () => {
  const { file, out } = await setup(64 * 1024 * 1024);
  const ac = new AbortController();
  // once data went out: a partial with no byte in it is not kept (docs/protocol.md §6.4 step 8)
  const s = startSend({ files: [file], signal: ac.signal, onEvent: (ev) => ev.type === 'progress' && ev.bytes > 0 && ac.abort() });
  const e = await receive({ relay: relay.httpUrl, interfaces: LO, code: await s.code, outDir: out, accept: () => true }).catch((x: unknown) => x);
  assert.equal(codeOf(e), 'ERR_CANCELLED');
  assert.match((e as Error).message, /cancelled by the sender/);
  const sent = await s.outcome;
  assert.ok(!sent.ok);
  assert.equal(codeOf(sent.e), 'ERR_CANCELLED');
  const names = await readdir(out);
  assert.ok(!names.includes('data.bin'));
  assert.ok(names.every((x) => x.startsWith('.tsc-croc-')), 'only the partial file and its resume state');
  assert.ok(names.some((x) => x.endsWith('.partial')));
});

test('a cancel while the accept callback is still deciding ends the transfer at once', async () => {
  const { file, out } = await setup(1000);
  const s = startSend({ files: [file] });
  const ac = new AbortController();
  const e = await receive({
    relay: relay.httpUrl,
    interfaces: LO,
    code: await s.code,
    outDir: out,
    signal: ac.signal,
    accept: () => {
      ac.abort();
      return new Promise<boolean>(() => {}); // a prompt nobody answers
    },
  }).catch((x: unknown) => x);
  assert.equal(codeOf(e), 'ERR_CANCELLED');
  const sent = await s.outcome;
  assert.ok(!sent.ok);
  assert.equal(codeOf(sent.e), 'ERR_CANCELLED');
  assert.deepEqual(await readdir(out), []);
});

test('keepalives hold a stapled connection open while the user decides (and without them the relay cuts it)', async () => {
  const r = await startRelay({ port: 0, tcpPort: 0, stapledIdleMs: 400, sweepIntervalMs: 25 });
  try {
    const run = async (keepaliveMs: number) => {
      const { file, data, out } = await setup(2000);
      let gotCode!: (c: string) => void;
      const code = new Promise<string>((res) => (gotCode = res));
      const sending = send({ relay: r.httpUrl, interfaces: LO, lan: 'off', files: [file], onEvent: (e) => e.type === 'code' && gotCode(e.code) }).catch((e: unknown) => e);
      const thinking = (ms: number) => new Promise<boolean>((res) => setTimeout(() => res(true), ms)); // a person reading the prompt
      const received = await receive({ relay: r.httpUrl, interfaces: LO, lan: 'off', code: await code, outDir: out, accept: () => thinking(1200), timeouts: { keepaliveMs } }).catch((e: unknown) => e);
      return { received, sent: await sending, data, out };
    };
    const ok = await run(100);
    assert.ok(!(ok.received instanceof Error), String(ok.received));
    assert.ok(!(ok.sent instanceof Error), String(ok.sent));
    assert.ok((await readFile(join(ok.out, 'data.bin'))).equals(ok.data));
    const cut = await run(60_000);
    assert.ok(cut.received instanceof TscCrocError, 'without keepalives the idle relay closes the pair');
  } finally {
    await r.close();
  }
});

test('a code nobody uses expires on the relay, and the sender says so', async () => {
  let now = 1_000_000;
  const r = await startRelay({ port: 0, tcpPort: 0, now: () => now, channelTtlMs: 60_000, sweepIntervalMs: 10 });
  try {
    const { file } = await setup(10);
    let waiting!: () => void;
    const isWaiting = new Promise<void>((res) => (waiting = res));
    const outcome = send({
      relay: r.httpUrl,
      interfaces: LO,
      lan: 'off',
      files: [file],
      onEvent: (ev) => ev.type === 'stage' && ev.stage === 'waiting' && waiting(),
    }).catch((e: unknown) => e);
    await isWaiting;
    now += 61_000; // the relay's clock passes the channel's lifetime; its sweep closes it
    const e = await outcome;
    assert.equal(codeOf(e), 'ERR_TIMEOUT');
    assert.match((e as Error).message, /expired/);
  } finally {
    await r.close();
  }
});
