/**
 * The framing rules of the record layer (docs/protocol.md §5), shared by the CLI's record layer
 * (record.ts, node:crypto) and the browser's (record-web.ts, WebCrypto): record types, sizes and
 * limits, the nonce and the header. Pure.
 *
 *   frame   = u32be(len(body)) || body
 *   body    = u64be(seq) || AES-256-GCM(key, nonce, plaintext, aad = u64be(seq)) || tag(16)
 *   nonce   = 0x00000000 || u64be(seq)
 *   plain   = u8(type) || payload
 */
import { TscCrocError } from './errors.js';

export const RecordType = { DATA: 1, MESSAGE: 2, END: 3 } as const;
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

/** Largest payload of one record. */
export const MAX_RECORD_PAYLOAD = 1024 * 1024;
export const SEQ_BYTES = 8;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;
/** Frame length and seq, in the clear. */
export const HEADER_BYTES = 4 + SEQ_BYTES;
/** Largest frame body: seq, type byte, payload, tag. */
export const MAX_FRAME_BODY = SEQ_BYTES + 1 + MAX_RECORD_PAYLOAD + TAG_BYTES;
/** Records per key before we refuse to go on (far below GCM's limits). */
export const MAX_RECORDS_PER_KEY = 2 ** 32;

/** Write u32be(bodyLength) || u64be(seq) into `header` (HEADER_BYTES). */
export function writeHeader(header: Uint8Array, bodyLength: number, seq: number): void {
  const v = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  v.setUint32(0, bodyLength);
  v.setUint32(4, Math.floor(seq / 2 ** 32));
  v.setUint32(8, seq >>> 0);
}

/** nonce = 0x00000000 || u64be(seq); its last 8 bytes are the AAD. */
export function nonceOf(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  const v = new DataView(n.buffer);
  v.setUint32(4, Math.floor(seq / 2 ** 32));
  v.setUint32(8, seq >>> 0);
  return n;
}

/**
 * Check a frame header against the limits and the expected seq; returns the body length.
 * The same checks, in the same order and words, as record.ts's RecordOpener.
 */
export function checkHeader(header: Uint8Array, expectedSeq: number): number {
  const v = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const len = v.getUint32(0);
  if (len > MAX_FRAME_BODY) throw new TscCrocError('ERR_FRAME_TOO_LARGE', `frame of ${len} bytes exceeds the maximum of ${MAX_FRAME_BODY}`);
  if (len < SEQ_BYTES + 1 + TAG_BYTES) throw new TscCrocError('ERR_RECORD_AUTH', 'record too short to be authentic');
  const seq = v.getUint32(4) * 2 ** 32 + v.getUint32(8);
  if (seq < expectedSeq) throw new TscCrocError('ERR_RECORD_REPLAY', `record ${seq} replayed (expected ${expectedSeq})`);
  if (seq > expectedSeq) throw new TscCrocError('ERR_RECORD_REORDER', `record ${seq} out of order (expected ${expectedSeq})`);
  return len;
}

/** What both record layers check before sealing: nothing after END, a payload that fits, a sequence number left. */
export function checkSeal(ended: boolean, seq: number, payloadLength: number): void {
  if (ended) throw new TscCrocError('ERR_RECORD_AFTER_END', 'cannot send a record after the end record');
  if (payloadLength > MAX_RECORD_PAYLOAD)
    throw new TscCrocError('ERR_FRAME_TOO_LARGE', `record payload of ${payloadLength} bytes exceeds ${MAX_RECORD_PAYLOAD}`);
  if (seq >= MAX_RECORDS_PER_KEY) throw new TscCrocError('ERR_COUNTER_EXHAUSTED', 'too many records under one key');
}
