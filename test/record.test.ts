import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FrameDecoder, encodeFrameHeader } from '../src/core/frame.js';
import { MAX_FRAME_BODY, MAX_RECORD_PAYLOAD, RecordOpener, RecordSealer, RecordType, type OpenedRecord } from '../src/core/record.js';
import { TscCrocError } from '../src/core/errors.js';

const key = randomBytes(32);
const frame = (parts: Buffer[]) => Buffer.concat(parts);
const code = (code: string) => (e: unknown) => e instanceof TscCrocError && e.code === code;

function sealAll(k: Uint8Array, payloads: Buffer[]): Buffer[] {
  const s = new RecordSealer(k);
  const out = payloads.map((p) => frame(s.seal(RecordType.DATA, p)));
  out.push(frame(s.seal(RecordType.END)));
  return out;
}

test('frame decoder: split, coalesced and byte-by-byte input give the same frames', () => {
  const bodies = [Buffer.from('a'), Buffer.alloc(0), randomBytes(1000), Buffer.from('last')];
  const wire = Buffer.concat(bodies.flatMap((b) => [encodeFrameHeader(b.length, 2000), b]));
  for (const step of [1, 3, 7, 1000, wire.length]) {
    const d = new FrameDecoder(2000);
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...d.push(wire.subarray(i, i + step)));
    assert.deepEqual(got.map((b) => b.toString('hex')), bodies.map((b) => b.toString('hex')), `step ${step}`);
    assert.equal(d.buffered, 0);
  }
});

test('frame decoder: an oversize length is refused from its header alone', () => {
  const d = new FrameDecoder(16);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(17);
  assert.throws(() => d.push(h), code('ERR_FRAME_TOO_LARGE'));
  const huge = Buffer.from([0xff, 0xff, 0xff, 0xff]);
  assert.throws(() => new FrameDecoder(MAX_FRAME_BODY).push(huge), code('ERR_FRAME_TOO_LARGE'));
  assert.throws(() => encodeFrameHeader(17, 16), code('ERR_FRAME_TOO_LARGE'));
});

test('records: round trip of data, messages and end, in any chunking', () => {
  const s = new RecordSealer(key);
  const payloads = [randomBytes(1), randomBytes(70_000), Buffer.alloc(0), randomBytes(MAX_RECORD_PAYLOAD)];
  const wire = Buffer.concat([
    ...payloads.map((p) => frame(s.seal(RecordType.DATA, p))),
    frame(s.seal(RecordType.MESSAGE, Buffer.from('{"type":"done"}'))),
    frame(s.seal(RecordType.END)),
  ]);
  for (const step of [5, 4096, wire.length]) {
    const o = new RecordOpener(key);
    const got: OpenedRecord[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...o.push(wire.subarray(i, i + step)));
    o.finish();
    assert.equal(got.length, payloads.length + 2);
    payloads.forEach((p, i) => assert.ok(got[i]!.payload.equals(p)));
    assert.equal(got[payloads.length]!.type, RecordType.MESSAGE);
    assert.equal(got.at(-1)!.type, RecordType.END);
  }
});

test('records: every flipped bit is detected as tampering', () => {
  const [rec] = sealAll(key, [Buffer.from('hello world')]);
  // skip the length prefix (changing it is a framing fault) and the seq (a reorder/replay fault)
  for (let i = 12; i < rec!.length; i++) {
    const bad = Buffer.from(rec!);
    bad[i]! ^= 0x01;
    assert.throws(() => new RecordOpener(key).push(bad), code('ERR_RECORD_AUTH'), `byte ${i}`);
  }
});

test('records: a record sealed under another key fails authentication', () => {
  const [rec] = sealAll(randomBytes(32), [Buffer.from('x')]);
  assert.throws(() => new RecordOpener(key).push(rec!), code('ERR_RECORD_AUTH'));
});

test('records: replay of an earlier record is refused', () => {
  const [r0, r1] = sealAll(key, [Buffer.from('a'), Buffer.from('b')]);
  const o = new RecordOpener(key);
  o.push(r0!);
  assert.throws(() => o.push(r0!), code('ERR_RECORD_REPLAY'));
  const o2 = new RecordOpener(key);
  o2.push(r0!);
  o2.push(r1!);
  assert.throws(() => o2.push(r1!), code('ERR_RECORD_REPLAY'));
});

test('records: reordered records are refused', () => {
  const [, r1] = sealAll(key, [Buffer.from('a'), Buffer.from('b')]);
  assert.throws(() => new RecordOpener(key).push(r1!), code('ERR_RECORD_REORDER'));
});

test('records: a forged sequence number fails authentication', () => {
  const [r0, r1] = sealAll(key, [Buffer.from('a'), Buffer.from('b')]);
  const forged = Buffer.from(r1!);
  forged.writeUInt32BE(0, 8); // claim seq 0
  const o = new RecordOpener(key);
  assert.throws(() => o.push(forged), code('ERR_RECORD_AUTH'));
  void r0;
});

test('records: truncation is detected, at a record boundary and inside a record', () => {
  const recs = sealAll(key, [Buffer.from('a'), Buffer.from('b')]);
  const cut = new RecordOpener(key);
  cut.push(recs[0]!);
  cut.push(recs[1]!); // the END record never comes
  assert.throws(() => cut.finish(), code('ERR_RECORD_TRUNCATED'));
  const mid = new RecordOpener(key);
  mid.push(recs[0]!.subarray(0, 10));
  assert.throws(() => mid.finish(), code('ERR_RECORD_TRUNCATED'));
  const whole = new RecordOpener(key);
  for (const r of recs) whole.push(r);
  whole.finish();
});

test('records: nothing may follow the end record', () => {
  const recs = sealAll(key, [Buffer.from('a')]);
  const o = new RecordOpener(key);
  for (const r of recs) o.push(r);
  assert.throws(() => o.push(Buffer.from([0])), code('ERR_RECORD_AFTER_END'));
  const s = new RecordSealer(key);
  s.seal(RecordType.END);
  assert.throws(() => s.seal(RecordType.DATA, Buffer.from('x')), code('ERR_RECORD_AFTER_END'));
});

test('records: oversize is refused on write and on read', () => {
  assert.throws(() => new RecordSealer(key).seal(RecordType.DATA, Buffer.alloc(MAX_RECORD_PAYLOAD + 1)), code('ERR_FRAME_TOO_LARGE'));
  const h = Buffer.alloc(4);
  h.writeUInt32BE(MAX_FRAME_BODY + 1);
  assert.throws(() => new RecordOpener(key).push(h), code('ERR_FRAME_TOO_LARGE'));
});

test('records: a too-short frame and an unknown record type are refused', () => {
  const short = Buffer.concat([encodeFrameHeader(10, 100), Buffer.alloc(10)]);
  assert.throws(() => new RecordOpener(key).push(short), code('ERR_RECORD_AUTH'));
  const s = new RecordSealer(key);
  assert.throws(() => new RecordOpener(key).push(frame(s.seal(9 as never, Buffer.from('x')))), code('ERR_PROTOCOL'));
});

test('records: keys must be 32 bytes', () => {
  assert.throws(() => new RecordSealer(new Uint8Array(16)), RangeError);
  assert.throws(() => new RecordOpener('k' as never), TypeError);
});

test('frame decoder: a frame dribbled in one byte at a time is reassembled in linear time and bounded memory', () => {
  const body = randomBytes(MAX_RECORD_PAYLOAD);
  const wire = Buffer.concat([encodeFrameHeader(body.length, MAX_FRAME_BODY), body, encodeFrameHeader(3, MAX_FRAME_BODY), Buffer.from('end')]);
  const d = new FrameDecoder(MAX_FRAME_BODY);
  const got: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) got.push(...d.push(wire.subarray(i, i + 1)));
  assert.equal(got.length, 2);
  assert.ok(got[0]!.equals(body));
  assert.equal(got[1]!.toString(), 'end');
});
