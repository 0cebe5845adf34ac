/**
 * The stapler's copy loop (reads into reused buffers, reading paused while a write is in flight)
 * against real sockets on 127.0.0.1: big streams intact both ways, backpressure from a slow reader
 * in each direction, half-close after a big stream, exact byte counters. No sleeps: every wait is
 * on a socket event or the relay's state, bounded by a deadline.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { MAX_BIG_BUFFERS } from '../src/relay/index.js';
import { metric, stateUntil, staple, until, withRelay, type Client } from './relay-helpers.js';

const T = { timeout: 60_000 };
const MiB = 1 << 20;

/** Hash what `c` receives from now on; with `slow`, pause after every chunk and resume on the next turn. */
function sink(c: Client, options: { slow?: boolean } = {}): { digest: () => string; bytes: () => number } {
  const h = createHash('sha256');
  let n = 0;
  c.socket.on('data', (chunk: Buffer) => {
    h.update(chunk);
    n += chunk.length;
    if (options.slow === true) {
      c.socket.pause();
      setImmediate(() => c.socket.resume());
    }
  });
  return { digest: () => h.copy().digest('hex'), bytes: () => n };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('copy loop', () => {
  test('24 MiB each way at once arrive intact; the byte counters are exact', T, withRelay({}, async (relay) => {
    const { a, b, channel } = await staple(relay, { keep: false });
    const toB = randomBytes(24 * MiB);
    const toA = randomBytes(24 * MiB);
    const atA = sink(a);
    const atB = sink(b);
    a.socket.end(toB);
    b.socket.end(toA);
    await a.until(() => a.ended, 'a to receive everything', 30_000);
    await b.until(() => b.ended, 'b to receive everything', 30_000);
    assert.equal(atB.bytes(), toB.length);
    assert.equal(atA.bytes(), toA.length);
    assert.equal(atB.digest(), sha256(toB));
    assert.equal(atA.digest(), sha256(toA));
    assert.equal(relay.tcp.bytesRelayed, 48 * MiB);
    assert.equal(await metric(relay, 'tsc_croc_relay_bytes_relayed_total'), 48 * MiB);
    await stateUntil(relay, channel, (s) => s?.closed === true, 'the channel to close');
    assert.equal((await relay.store.get(channel))?.closeReason, 'done');
    // The pair is gone: its big read buffers are given back, nothing is left paused.
    await until(() => relay.tcp.connectionCount === 0, 'the sockets to close');
    assert.equal(relay.tcp.bigBufferCount, 0);
    assert.equal(relay.tcp.pausedCount, 0);
  }));

  for (const slowSide of ['recipient', 'sender'] as const) {
    test(`a stalled ${slowSide} pauses the relay's reading; the stream resumes intact (backpressure)`, T, withRelay({}, async (relay) => {
      const { a, b } = await staple(relay, { keep: false });
      const [writer, reader] = slowSide === 'recipient' ? [a, b] : [b, a];
      const data = randomBytes(32 * MiB);
      reader.socket.pause();
      const got = sink(reader, { slow: true });
      writer.socket.end(data);
      // The reader takes nothing: the relay must stop reading from the writer rather than buffer it.
      await until(() => relay.tcp.pausedCount === 1, 'the relay to pause the direction');
      assert.ok(writer.socket.writableLength > 0, 'the writer is held back');
      assert.ok(relay.tcp.bytesRelayed < data.length, `the relay did not swallow the stream (${relay.tcp.bytesRelayed} bytes read)`);
      assert.equal(got.bytes(), 0);
      // A slow reader (a pause after every chunk) then takes it all.
      reader.socket.resume();
      await reader.until(() => reader.ended, 'the whole stream', 45_000);
      assert.equal(got.bytes(), data.length);
      assert.equal(got.digest(), sha256(data));
      assert.equal(relay.tcp.bytesRelayed, data.length);
      writer.socket.end();
      reader.socket.end();
    }));
  }

  test('half-close after a big stream: the other side still answers with one', T, withRelay({}, async (relay) => {
    const { a, b, channel } = await staple(relay, { keep: false, allowHalfOpen: true });
    const request = randomBytes(17 * MiB);
    const response = randomBytes(19 * MiB);
    const atB = sink(b);
    const atA = sink(a);
    a.socket.end(request);
    await b.until(() => b.ended, 'b to see the end of the request', 30_000);
    assert.equal(atB.digest(), sha256(request));
    assert.equal((await relay.store.get(channel))?.closed, false, 'a half-closed pair keeps relaying');
    assert.equal(a.closed, false);
    b.socket.end(response);
    await a.until(() => a.ended, 'a to see the end of the response', 30_000);
    assert.equal(atA.digest(), sha256(response));
    assert.equal(relay.tcp.bytesRelayed, request.length + response.length);
    await stateUntil(relay, channel, (s) => s?.closed === true, 'the channel to close');
    assert.equal((await relay.store.get(channel))?.closeReason, 'done');
  }));

  test('big read buffers are bounded relay-wide', T, withRelay({ maxChannelsPerAddress: 1000, joinRateLimit: 1000 }, async (relay) => {
    // More bulk directions than MAX_BIG_BUFFERS at once: the rest keep working with small buffers.
    const n = Math.ceil(MAX_BIG_BUFFERS / 2) + 2;
    const pairs: Awaited<ReturnType<typeof staple>>[] = [];
    for (let i = 0; i < n; i++) pairs.push(await staple(relay, { keep: false }));
    const sinks = pairs.flatMap(({ a, b }) => [sink(a), sink(b)]);
    let peak = 0;
    const data = randomBytes(4 * MiB);
    for (const { a, b } of pairs) {
      a.socket.end(data);
      b.socket.end(data);
    }
    await until(() => {
      peak = Math.max(peak, relay.tcp.bigBufferCount);
      return pairs.every(({ a, b }) => a.ended && b.ended);
    }, 'every stream', 45_000);
    assert.ok(peak <= MAX_BIG_BUFFERS, `at most ${MAX_BIG_BUFFERS} big buffers (saw ${peak})`);
    for (const s of sinks) assert.equal(s.digest(), sha256(data));
    assert.equal(relay.tcp.bytesRelayed, 2 * n * data.length);
    await until(() => relay.tcp.connectionCount === 0, 'the sockets to close');
    assert.equal(relay.tcp.bigBufferCount, 0);
  }));
});
