/** The file digest (src/core/chunk-digest.ts) against its definition, computed here independently. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { CHUNK_SIZE, ChunkHasher, digestOf } from '../src/core/chunk-digest.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** SHA-256("tsc-croc/v1/file-digest" 0x00 || u64be(L) || SHA-256(chunk_0) || ...), straight from docs/protocol.md. */
function reference(data: Buffer): string {
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(data.length));
  const parts = [Buffer.from('tsc-croc/v1/file-digest\0'), len];
  for (let off = 0; off < data.length; off += CHUNK_SIZE) parts.push(sha(data.subarray(off, off + CHUNK_SIZE)));
  return sha(Buffer.concat(parts)).toString('hex');
}

/** Deterministic bytes (a counter), so the vectors below are reproducible anywhere. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
  return b;
}

test('fixed vectors: empty, one byte, exactly one chunk, one chunk and one byte', () => {
  // computed once with reference() above (and by hand from the definition); pinned so the definition cannot drift
  const vectors: [number, string][] = [
    [0, 'e8e341eb58d21437ab30e86d408acdc177ebb8f5e4eb420692eb7ef3e6a695a3'],
    [1, '2cd30b18629cae8e2be948d50a05b110e709951c4d00e517982a73224db87b10'],
    [CHUNK_SIZE, '169df764f331124f2e4730d9d072de81e98ab90d4d4c02e48ee29f959d17d93f'],
    [CHUNK_SIZE + 1, 'd28e3c5a10bce26af6878a40961c600d68d6f823a625e2e6bab13e0cd352ab0e'],
  ];
  for (const [n, want] of vectors) assert.equal(reference(pattern(n)), want, `reference, ${n} bytes`);
  for (const [n, want] of vectors) {
    const h = new ChunkHasher();
    h.update(pattern(n));
    assert.equal(h.digest(), want, `${n} bytes`);
  }
  // the empty digest is SHA-256 of the domain and a zero length, nothing else
  assert.equal(digestOf([], 0), sha(Buffer.concat([Buffer.from('tsc-croc/v1/file-digest\0'), Buffer.alloc(8)])).toString('hex'));
});

test('any split of the input gives the same digest; the length is bound in', () => {
  const data = pattern(3 * CHUNK_SIZE + 12345);
  const want = reference(data);
  for (const piece of [1, 4096, 65536 + 3, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 7]) {
    const h = new ChunkHasher();
    for (let off = 0; off < Math.min(data.length, 200 * piece); off += piece) h.update(data.subarray(off, off + piece));
    if (200 * piece < data.length) h.update(data.subarray(200 * piece));
    assert.equal(h.digest(), want, `pieces of ${piece}`);
  }
  // a prefix is digested like a file of that length: what the recipient holds is proven this way
  const prefix = data.subarray(0, 2 * CHUNK_SIZE);
  const h = new ChunkHasher();
  h.update(data.subarray(0, 2 * CHUNK_SIZE));
  assert.equal(h.digest(), reference(prefix));
  assert.equal(digestOf(h.hashes, 2 * CHUNK_SIZE), reference(prefix));
  assert.notEqual(reference(Buffer.alloc(5)), reference(Buffer.alloc(6)));
});

test('resuming from kept chunk hashes continues the same digest without the earlier bytes', () => {
  const data = pattern(2 * CHUNK_SIZE + 999);
  const first = new ChunkHasher();
  first.update(data.subarray(0, CHUNK_SIZE + 500)); // interrupted mid-chunk: only whole chunks are kept
  const kept = first.hashes.slice();
  assert.equal(kept.length, 1);
  const resumed = new ChunkHasher(kept);
  assert.equal(resumed.length, CHUNK_SIZE);
  resumed.update(data.subarray(CHUNK_SIZE));
  assert.equal(resumed.digest(), reference(data));
  // digest() can be asked mid-way and the hasher goes on
  assert.equal(first.digest(), reference(data.subarray(0, CHUNK_SIZE + 500)));
  first.update(data.subarray(CHUNK_SIZE + 500));
  assert.equal(first.digest(), reference(data));
});

test('digestOf refuses a hash count that does not fit the length', () => {
  assert.throws(() => digestOf([], 1), RangeError);
  assert.throws(() => digestOf([new Uint8Array(32)], 0), RangeError);
  assert.throws(() => digestOf([new Uint8Array(31)], 1), RangeError);
});

test('reconnect codes: derived from both record keys, per slot, in the relay channel alphabet', async () => {
  const { reconnectCode, RECONNECT_SLOTS } = await import('../src/core/reconnect-code.js');
  const { CHANNEL_PATTERN } = await import('../src/core/relay-api.js');
  const keys = { senderToRecipient: new Uint8Array(32).fill(1), recipientToSender: new Uint8Array(32).fill(2) };
  const a = reconnectCode(keys, 0);
  assert.deepEqual(reconnectCode(keys, 0), a, 'both sides derive the same');
  assert.match(a.channel, new RegExp(CHANNEL_PATTERN));
  assert.match(a.channel, /^r[0-9a-f]{20}$/);
  assert.match(a.secret, /^[0-9a-f]{64}$/);
  const channels = new Set(Array.from({ length: RECONNECT_SLOTS }, (_, i) => reconnectCode(keys, i).channel));
  assert.equal(channels.size, RECONNECT_SLOTS, 'one channel per slot');
  assert.equal(reconnectCode(keys, 5).secret, a.secret);
  const other = reconnectCode({ ...keys, recipientToSender: new Uint8Array(32).fill(3) }, 0);
  assert.notEqual(other.channel, a.channel, 'either key changes everything');
  assert.notEqual(other.secret, a.secret);
  assert.throws(() => reconnectCode(keys, RECONNECT_SLOTS), RangeError);
});
