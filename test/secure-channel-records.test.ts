/**
 * SecureChannel.records(), the iterator the recipient and the sender read records through: in
 * order, done after END, one consumer, a consumer that stops, a record that fails authentication,
 * and a record that arrives in pieces while the consumer waits. Two channels over a real socket
 * pair on 127.0.0.1 (no relay: the channel takes any socket); every wait is on an event.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { TscCrocError } from '../src/core/errors.js';
import { RecordSealer, RecordType, recordPayload } from '../src/core/record.js';
import { SecureChannel } from '../src/transfer/secure-channel.js';

const T = { timeout: 30_000 };

/** A connected socket pair on 127.0.0.1; closes the server once both ends exist. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const a = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => a.once('connect', resolve).once('error', reject));
  const b = await accepted;
  server.close();
  return [a, b];
}

/** Two channels facing each other: a's send key is b's receive key and the other way round. */
async function channels(): Promise<{ a: SecureChannel; b: SecureChannel; sa: net.Socket; sb: net.Socket; k1: Buffer; k2: Buffer }> {
  const [sa, sb] = await socketPair();
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  return { a: new SecureChannel(sa, Buffer.alloc(0), k1, k2), b: new SecureChannel(sb, Buffer.alloc(0), k2, k1), sa, sb, k1, k2 };
}

/** Write `bufs` to `s` one at a time, each after the last one's callback. */
async function writeEach(s: net.Socket, bufs: Buffer[]): Promise<void> {
  for (const b of bufs) await new Promise<void>((resolve, reject) => s.write(b, (e) => (e ? reject(e) : resolve())));
}

test('records come in order, a large one in pieces; the iterator is done after END', T, async () => {
  const { a, b } = await channels();
  try {
    const big = randomBytes(2 * 1024 * 1024 + 17);
    const small = Buffer.from('hello');
    const got: { type: number; payload: Buffer }[] = [];
    const it = b.records();
    const reading = (async () => {
      for await (const r of it) got.push({ type: r.type, payload: recordPayload(r) });
    })();
    await a.send(RecordType.DATA, small);
    for (let off = 0; off < big.length; off += 1024 * 1024) await a.send(RecordType.DATA, big.subarray(off, off + 1024 * 1024));
    await a.end();
    await reading;
    assert.deepEqual(
      got.map((g) => g.type),
      [RecordType.DATA, RecordType.DATA, RecordType.DATA, RecordType.DATA, RecordType.END],
    );
    assert.deepEqual(got[0]!.payload, small);
    assert.deepEqual(Buffer.concat(got.slice(1, 4).map((g) => g.payload)), big);
    assert.equal(got[4]!.payload.length, 0);
    assert.deepEqual(await it.next(), { done: true, value: undefined }, 'nothing after END');
  } finally {
    a.destroy();
    b.destroy();
  }
});

test('records() has one consumer: a second iterator fails on its first next(), the first one goes on', T, async () => {
  const { a, b } = await channels();
  try {
    const first = b.records();
    await a.sendMessage({ type: 'keepalive' });
    const r = await first.next();
    assert.equal(r.done, false);
    const second = b.records();
    await assert.rejects(second.next(), /one consumer/);
    assert.deepEqual(await second.next(), { done: true, value: undefined });
    await a.end();
    assert.equal((await first.next()).value?.type, RecordType.END);
  } finally {
    a.destroy();
    b.destroy();
  }
});

test('a consumer that stops (break) gets nothing more from the iterator', T, async () => {
  const { a, b } = await channels();
  try {
    await a.sendMessage({ type: 'keepalive' });
    await a.sendMessage({ type: 'keepalive' });
    const it = b.records();
    for await (const r of it) {
      assert.equal(r.type, RecordType.MESSAGE);
      break;
    }
    assert.deepEqual(await it.next(), { done: true, value: undefined });
  } finally {
    a.destroy();
    b.destroy();
  }
});

test('a record that arrives in pieces wakes the waiting consumer once it is whole', T, async () => {
  const { a, b, sa, k1 } = await channels();
  try {
    const it = b.records();
    const waiting = it.next(); // nothing has come yet: the consumer waits
    // the frame a's channel would send, written by hand a few bytes at a time
    const frame = Buffer.concat(new RecordSealer(k1).seal(RecordType.DATA, Buffer.from('piecewise')));
    await writeEach(sa, [frame.subarray(0, 3), frame.subarray(3, 20), frame.subarray(20, frame.length - 1), frame.subarray(frame.length - 1)]);
    const r = await waiting;
    assert.equal(r.done, false);
    assert.equal(recordPayload(r.value!).toString(), 'piecewise');
  } finally {
    a.destroy();
    b.destroy();
  }
});

test('a record sealed under another key fails the iterator with ERR_RECORD_AUTH, and it is done after', T, async () => {
  const { a, b, sa } = await channels();
  try {
    const it = b.records();
    const waiting = it.next();
    await writeEach(sa, [Buffer.concat(new RecordSealer(randomBytes(32)).seal(RecordType.DATA, Buffer.from('forged')))]);
    await assert.rejects(waiting, (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_RECORD_AUTH');
    assert.deepEqual(await it.next(), { done: true, value: undefined });
  } finally {
    a.destroy();
    b.destroy();
  }
});
