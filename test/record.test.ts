import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_FRAME_BODY, MAX_RECORD_PAYLOAD, RecordOpener, RecordSealer, RecordType, recordPayload, type OpenedRecord } from '../src/core/record.js';
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

/** A frame header: u32be body length. */
function header(len: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(len);
  return h;
}

test('an oversize length is refused from the header alone', () => {
  const huge = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(8)]);
  assert.throws(() => new RecordOpener(key).push(huge), code('ERR_FRAME_TOO_LARGE'));
  assert.throws(() => new RecordOpener(key).push(Buffer.concat([header(MAX_FRAME_BODY + 1), Buffer.alloc(8)])), code('ERR_FRAME_TOO_LARGE'));
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
    payloads.forEach((p, i) => assert.ok(recordPayload(got[i]!).equals(p)));
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
  assert.throws(() => new RecordOpener(key).push(Buffer.concat([header(MAX_FRAME_BODY + 1), Buffer.alloc(8)])), code('ERR_FRAME_TOO_LARGE'));
});

test('records: a too-short frame and an unknown record type are refused', () => {
  const short = Buffer.concat([header(10), Buffer.alloc(10)]);
  assert.throws(() => new RecordOpener(key).push(short), code('ERR_RECORD_AUTH'));
  const s = new RecordSealer(key);
  assert.throws(() => new RecordOpener(key).push(frame(s.seal(9 as never, Buffer.from('x')))), code('ERR_PROTOCOL'));
});

test('records: keys must be 32 bytes', () => {
  assert.throws(() => new RecordSealer(new Uint8Array(16)), RangeError);
  assert.throws(() => new RecordOpener('k' as never), TypeError);
});

test('records dribbled in one byte at a time, and coalesced, open in linear time', () => {
  const s = new RecordSealer(key);
  const body = randomBytes(MAX_RECORD_PAYLOAD);
  const wire = Buffer.concat([...s.seal(RecordType.DATA, body), ...s.seal(RecordType.MESSAGE, Buffer.from('{"type":"done"}')), ...s.seal(RecordType.END)]);
  const o = new RecordOpener(key);
  const got: OpenedRecord[] = [];
  for (let i = 0; i < wire.length; i++) got.push(...o.push(wire.subarray(i, i + 1)));
  o.finish();
  assert.equal(got.length, 3);
  assert.ok(recordPayload(got[0]!).equals(body));
  assert.equal(recordPayload(got[1]!).toString(), '{"type":"done"}');
  const all = new RecordOpener(key).push(wire);
  assert.deepEqual(all.map((r) => r.type), [RecordType.DATA, RecordType.MESSAGE, RecordType.END]);
});

test('nothing of a record is released before its tag is verified', () => {
  const s = new RecordSealer(key);
  const rec = Buffer.concat(s.seal(RecordType.DATA, randomBytes(100_000)));
  const o = new RecordOpener(key);
  assert.deepEqual(o.push(rec.subarray(0, rec.length - 1)), [], 'all but the last tag byte: no record yet');
  const bad = Buffer.from([rec[rec.length - 1]! ^ 1]);
  assert.throws(() => o.push(bad), code('ERR_RECORD_AUTH'));
});

test('every piece of a large opened payload is all of its own buffer (a host may free it after use)', () => {
  const s = new RecordSealer(key);
  const payload = randomBytes(300_000);
  const wire = Buffer.concat([frame(s.seal(RecordType.DATA, payload)), frame(s.seal(RecordType.END))]);
  for (const step of [7, 65_536, 100_000, wire.length]) {
    const o = new RecordOpener(key);
    const got: OpenedRecord[] = [];
    for (let off = 0; off < wire.length; off += step) got.push(...o.push(wire.subarray(off, off + step)));
    const data = got[0]!;
    assert.ok(data.chunks.length >= 1);
    for (const c of data.chunks) {
      assert.equal(c.byteOffset, 0, `step ${step}`);
      assert.equal(c.byteLength, c.buffer.byteLength, `step ${step}`);
    }
    assert.ok(recordPayload(data).equals(payload));
  }
});
