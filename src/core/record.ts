/**
 * The record layer: AES-256-GCM records inside length-prefixed frames (docs/protocol.md §5).
 *
 *   frame   = u32be(len(body)) || body
 *   body    = u64be(seq) || AES-256-GCM(key, nonce, plaintext, aad = u64be(seq)) || tag(16)
 *   nonce   = 0x00000000 || u64be(seq)
 *   plain   = u8(type) || payload
 *
 * One key per direction (src/core/key-schedule.ts), so a nonce never repeats under a key;
 * seq starts at 0 and increases by one per record. The clear seq lets the reader tell a
 * replayed record (seq < expected) from a reordered one (seq > expected) before it decrypts;
 * both are refused, as is any record whose tag fails. An explicit END record closes each
 * direction, so a cut stream is detected as truncation, and nothing may follow END.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { abytes } from './assert.js';
import { TscCrocError } from './errors.js';
import { FrameDecoder, encodeFrameHeader } from './frame.js';

export const RecordType = { DATA: 1, MESSAGE: 2, END: 3 } as const;
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

/** Largest payload of one record. */
export const MAX_RECORD_PAYLOAD = 1024 * 1024;
const SEQ_BYTES = 8;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Largest frame body: seq, type byte, payload, tag. */
export const MAX_FRAME_BODY = SEQ_BYTES + 1 + MAX_RECORD_PAYLOAD + TAG_BYTES;
/** Records per key before we refuse to go on (far below GCM's limits). */
export const MAX_RECORDS_PER_KEY = 2 ** 32;

export interface OpenedRecord {
  type: RecordTypeValue;
  payload: Buffer;
}

function nonceFor(seq: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(Math.floor(seq / 2 ** 32), 4);
  n.writeUInt32BE(seq >>> 0, 8);
  return n;
}

/** Seals records for one direction. */
export class RecordSealer {
  readonly #key: Buffer;
  #seq = 0;
  #ended = false;

  constructor(key: Uint8Array) {
    abytes(key, 'key', KEY_BYTES);
    this.#key = Buffer.from(key);
  }

  get seq(): number {
    return this.#seq;
  }

  /** Returns the buffers of one frame, in order (header, seq, ciphertext, tag) for a vectored write. */
  seal(type: RecordTypeValue, payload: Uint8Array = new Uint8Array(0)): Buffer[] {
    if (this.#ended) throw new TscCrocError('ERR_RECORD_AFTER_END', 'cannot send a record after the end record');
    if (payload.length > MAX_RECORD_PAYLOAD)
      throw new TscCrocError('ERR_FRAME_TOO_LARGE', `record payload of ${payload.length} bytes exceeds ${MAX_RECORD_PAYLOAD}`);
    if (this.#seq >= MAX_RECORDS_PER_KEY) throw new TscCrocError('ERR_COUNTER_EXHAUSTED', 'too many records under one key');
    const seq = this.#seq++;
    if (type === RecordType.END) this.#ended = true;
    const nonce = nonceFor(seq);
    const seqBytes = nonce.subarray(4);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(seqBytes);
    const head = cipher.update(Buffer.of(type));
    const body = payload.length > 0 ? cipher.update(payload) : Buffer.alloc(0);
    const fin = cipher.final();
    const tag = cipher.getAuthTag();
    const bodyLen = SEQ_BYTES + head.length + body.length + fin.length + TAG_BYTES;
    return [encodeFrameHeader(bodyLen, MAX_FRAME_BODY), seqBytes, head, body, fin, tag].filter((b) => b.length > 0);
  }
}

/** Opens the records of one direction from a byte stream. */
export class RecordOpener {
  readonly #key: Buffer;
  readonly #frames = new FrameDecoder(MAX_FRAME_BODY);
  #seq = 0;
  #ended = false;

  constructor(key: Uint8Array) {
    abytes(key, 'key', KEY_BYTES);
    this.#key = Buffer.from(key);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Feed received bytes; returns the records they completed. Throws a typed error on any fault. */
  push(chunk: Buffer): OpenedRecord[] {
    if (this.#ended && chunk.length > 0) throw new TscCrocError('ERR_RECORD_AFTER_END', 'data arrived after the end record');
    const out: OpenedRecord[] = [];
    for (const body of this.#frames.push(chunk)) {
      if (this.#ended) throw new TscCrocError('ERR_RECORD_AFTER_END', 'a record arrived after the end record');
      out.push(this.#open(body));
    }
    return out;
  }

  /** Call when the byte stream ends: throws ERR_RECORD_TRUNCATED unless the END record came. */
  finish(): void {
    if (!this.#ended || this.#frames.buffered > 0)
      throw new TscCrocError('ERR_RECORD_TRUNCATED', 'the connection ended before the end record: the stream was truncated');
  }

  #open(body: Buffer): OpenedRecord {
    if (body.length < SEQ_BYTES + 1 + TAG_BYTES) throw new TscCrocError('ERR_RECORD_AUTH', 'record too short to be authentic');
    const hi = body.readUInt32BE(0);
    const lo = body.readUInt32BE(4);
    const seq = hi * 2 ** 32 + lo;
    if (seq < this.#seq) throw new TscCrocError('ERR_RECORD_REPLAY', `record ${seq} replayed (expected ${this.#seq})`);
    if (seq > this.#seq) throw new TscCrocError('ERR_RECORD_REORDER', `record ${seq} out of order (expected ${this.#seq})`);
    const nonce = nonceFor(seq);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce);
    decipher.setAAD(body.subarray(0, SEQ_BYTES));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    let plain: Buffer;
    try {
      const a = decipher.update(body.subarray(SEQ_BYTES, body.length - TAG_BYTES));
      const b = decipher.final();
      plain = b.length === 0 ? a : Buffer.concat([a, b]);
    } catch {
      throw new TscCrocError('ERR_RECORD_AUTH', `record ${seq} failed authentication: it was tampered with or sealed under another key`);
    }
    this.#seq++;
    const type = plain[0];
    if (type !== RecordType.DATA && type !== RecordType.MESSAGE && type !== RecordType.END)
      throw new TscCrocError('ERR_PROTOCOL', `unknown record type ${type}`);
    if (type === RecordType.END) {
      if (plain.length !== 1) throw new TscCrocError('ERR_PROTOCOL', 'the end record must be empty');
      this.#ended = true;
    }
    return { type, payload: plain.subarray(1) };
  }
}
