/**
 * Bounded load test: the built CLI relay (the Dockerfile's start command, configured through
 * TSC_CROC_RELAY_* variables) with 100 channels at once, each moving 4 MiB one way and 1 MiB the
 * other through the stapler; every byte compared by SHA-256. Reports the relay process's peak RSS
 * and CPU time (Linux /proc) as test diagnostics.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { RELAY_PROTOCOL_VERSION, encodeControlFrame, parseControlFrame } from '../src/core/relay-api.js';
import { WAIT_MS, procUsage, seatOverHttp, spawnRelay, type Seats } from './relay-helpers.js';

const CHANNELS = 100;
const CHUNK = 64 * 1024;
const A_TO_B = 64 * CHUNK; // 4 MiB
const B_TO_A = 16 * CHUNK; // 1 MiB

/** Connect, send the hello, resolve with the socket once stapled (and the bytes behind the reply). */
function connectStapled(port: number, channel: string, uuid: string): Promise<{ socket: net.Socket; leftover: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error('no stapled reply in time')), WAIT_MS);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseControlFrame(buf);
      if (r.kind === 'need-more') return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if (r.kind !== 'frame' || (r.body as { type?: string }).type !== 'stapled') return fail(new Error(`refused: ${JSON.stringify(r)}`));
      resolve({ socket, leftover: r.rest });
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('connect', () => socket.write(encodeControlFrame({ v: RELAY_PROTOCOL_VERSION, channel, uuid })));
  });
}

/** Write `chunks` chunks derived from `block` (tagged with `tag` and the index), with backpressure; resolve with their hash. */
async function pump(socket: net.Socket, block: Buffer, tag: number, chunks: number): Promise<string> {
  const hash = createHash('sha256');
  for (let k = 0; k < chunks; k++) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(tag, 0);
    chunk.writeUInt32BE(k, 4);
    hash.update(chunk);
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  }
  socket.end();
  return hash.digest('hex');
}

/** Hash everything that arrives until the end of the stream. */
function drain(socket: net.Socket, leftover: Buffer): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256').update(leftover);
    let bytes = leftover.length;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    socket.once('end', () => resolve({ hash: hash.digest('hex'), bytes }));
    socket.once('error', reject);
    socket.resume();
  });
}

async function transfer(seats: Seats, i: number, block: Buffer): Promise<void> {
  const [a, b] = await Promise.all([
    connectStapled(seats.tcpPort, seats.channel, seats.sender),
    connectStapled(seats.tcpPort, seats.channel, seats.recipient),
  ]);
  const closed = Promise.all([a, b].map((p) => new Promise((r) => p.socket.once('close', r))));
  const [sentAB, sentBA, gotB, gotA] = await Promise.all([
    pump(a.socket, block, i, A_TO_B / CHUNK),
    pump(b.socket, block, 1_000_000 + i, B_TO_A / CHUNK),
    drain(b.socket, b.leftover),
    drain(a.socket, a.leftover),
  ]);
  assert.equal(gotB.bytes, A_TO_B, `channel ${i}: bytes a → b`);
  assert.equal(gotA.bytes, B_TO_A, `channel ${i}: bytes b → a`);
  assert.equal(gotB.hash, sentAB, `channel ${i}: a → b intact`);
  assert.equal(gotA.hash, sentBA, `channel ${i}: b → a intact`);
  await closed;
}

test(`load: ${CHANNELS} channels at once, ${A_TO_B >> 20} MiB + ${B_TO_A >> 20} MiB each, every byte intact`, { timeout: 60_000 }, async (t) => {
  const relay = await spawnRelay([], {
    TSC_CROC_RELAY_HOST: '127.0.0.1',
    TSC_CROC_RELAY_PORT: '0',
    TSC_CROC_RELAY_TCP_PORT: '0',
    TSC_CROC_RELAY_QUIET: '1',
    TSC_CROC_RELAY_JOIN_RATE: '10000',
    TSC_CROC_RELAY_CHANNEL_RATE: '10000',
    TSC_CROC_RELAY_MAX_CHANNELS_PER_ADDRESS: '1000',
    TSC_CROC_RELAY_MAX_PENDING_SOCKETS_PER_ADDRESS: '1000',
    TSC_CROC_RELAY_MAX_HTTP_CONNECTIONS_PER_ADDRESS: '10000',
    TSC_CROC_RELAY_MAX_LONG_POLLS_PER_ADDRESS: '4000',
  });
  try {
    const before = procUsage(relay.child.pid!);
    const started = performance.now();
    const seats = await Promise.all(Array.from({ length: CHANNELS }, () => seatOverHttp(relay.url)));
    const seated = performance.now();
    const block = randomBytes(CHUNK);
    await Promise.all(seats.map((s, i) => transfer(s, i, block)));
    const elapsed = performance.now() - started;
    const after = procUsage(relay.child.pid!);

    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    assert.equal(value('tsc_croc_relay_bytes_relayed_total'), CHANNELS * (A_TO_B + B_TO_A));
    assert.equal(value('tsc_croc_relay_staples_total'), CHANNELS);
    const total = (CHANNELS * (A_TO_B + B_TO_A)) / 2 ** 20;
    t.diagnostic(`relay load: ${CHANNELS} channels, ${total} MiB relayed in ${(elapsed / 1000).toFixed(2)} s (handshakes ${((seated - started) / 1000).toFixed(2)} s)`);
    if (before !== undefined && after !== undefined)
      t.diagnostic(
        `relay process: peak RSS ${(after.peakRssBytes / 2 ** 20).toFixed(1)} MiB (at start ${(before.peakRssBytes / 2 ** 20).toFixed(1)} MiB), ` +
          `CPU ${(after.cpuSeconds - before.cpuSeconds).toFixed(2)} s for the run`,
      );
  } finally {
    relay.child.kill('SIGKILL');
    await relay.exit();
  }
});
