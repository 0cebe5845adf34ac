/**
 * The record layer: AES-256-GCM records inside length-prefixed frames (docs/protocol.md §5).
 * A frame's length is checked against MAX_FRAME_BODY on write (seal) and on read (RecordOpener).
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
import { createCipheriv, createDecipheriv, type DecipherGCM } from 'node:crypto';
import { abytes } from './assert.js';
import { TscCrocError } from './errors.js';

import { HEADER_BYTES, KEY_BYTES, MAX_FRAME_BODY, MAX_RECORD_PAYLOAD, MAX_RECORDS_PER_KEY, RecordType, checkSeal, SEQ_BYTES, TAG_BYTES, type RecordTypeValue } from './record-framing.js';
export { MAX_FRAME_BODY, MAX_RECORD_PAYLOAD, MAX_RECORDS_PER_KEY, RecordType, type RecordTypeValue } from './record-framing.js';

/** Records with more ciphertext than this decrypt their type byte apart (one more call for a small record would cost more than it frees). */
export const SPLIT_TYPE_BYTES = 64 * 1024;

export interface OpenedRecord {
  type: RecordTypeValue;
  /**
   * The plaintext payload, in the pieces it was decrypted in (DATA records are not copied
   * together); in a record of more than SPLIT_TYPE_BYTES each piece is all of its own buffer.
   */
  chunks: Buffer[];
  length: number;
}

/** The payload of a record as one buffer (for small records: messages). */
export function recordPayload(r: OpenedRecord): Buffer {
  return r.chunks.length === 1 ? r.chunks[0]! : Buffer.concat(r.chunks, r.length);
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

  /**
   * Returns the buffers of one frame, in order (header with seq, ciphertext, tag), for a vectored
   * write. The payload is encrypted in one pass without being copied; the caller may reuse it as
   * soon as this returns.
   */
  seal(type: RecordTypeValue, payload: Uint8Array = EMPTY): Buffer[] {
    checkSeal(this.#ended, this.#seq, payload.length);
    const seq = this.#seq++;
    if (type === RecordType.END) this.#ended = true;
    // header = u32be(len(body)) || u64be(seq); the nonce is 0x00000000 || u64be(seq)
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32BE(SEQ_BYTES + 1 + payload.length + TAG_BYTES, 0);
    header.writeUInt32BE(Math.floor(seq / 2 ** 32), 4);
    header.writeUInt32BE(seq >>> 0, 8);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonceFor(seq));
    cipher.setAAD(header.subarray(4));
    const out = [header, cipher.update(TYPE_BYTES[type] ?? Buffer.of(type))];
    if (payload.length > 0) out.push(cipher.update(payload));
    const fin = cipher.final();
    if (fin.length > 0) out.push(fin);
    out.push(cipher.getAuthTag());
    return out;
  }
}

const EMPTY = new Uint8Array(0);
const TYPE_BYTES: Record<number, Buffer> = { 1: Buffer.of(1), 2: Buffer.of(2), 3: Buffer.of(3) };

interface OpenRecord {
  seq: number;
  decipher: DecipherGCM;
  /** Ciphertext bytes of this record not yet received. */
  ctLeft: number;
  out: Buffer[];
  outLen: number;
}

/**
 * Opens the records of one direction from a byte stream, decrypting each ciphertext piece as it
 * arrives (no reassembly copy). A record's plaintext is released only after its tag verified, so
 * nothing unauthenticated ever leaves this class. The length is checked against the maximum from
 * the header alone, before any body byte is kept; at most one record's plaintext is buffered.
 */
export class RecordOpener {
  readonly #key: Buffer;
  #seq = 0;
  #ended = false;
  /** Partial header or tag bytes, copied (at most 16 bytes). */
  readonly #small = Buffer.alloc(TAG_BYTES);
  #smallLen = 0;
  /** The record being read: its decipher, how much ciphertext is left, what it decrypted so far. */
  #open: OpenRecord | null = null;

  constructor(key: Uint8Array) {
    abytes(key, 'key', KEY_BYTES);
    this.#key = Buffer.from(key);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Feed received bytes; returns the records they completed. Throws a typed error on any fault. */
  push(chunk: Buffer): OpenedRecord[] {
    const out: OpenedRecord[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.#ended) throw new TscCrocError('ERR_RECORD_AFTER_END', 'data arrived after the end record');
      const rec = this.#open;
      if (rec === null) {
        off = this.#fill(chunk, off, HEADER_BYTES);
        if (this.#smallLen === HEADER_BYTES) this.#begin();
      } else if (rec.ctLeft > 0) {
        // a large record's type byte is decrypted on its own: the payload's pieces are then each a
        // whole buffer of node:crypto's, which a host can free once it has used them (SecureChannel)
        const n = Math.min(rec.outLen === 0 && rec.ctLeft > SPLIT_TYPE_BYTES ? 1 : rec.ctLeft, chunk.length - off);
        const plain = rec.decipher.update(chunk.subarray(off, off + n));
        if (plain.length > 0) {
          rec.out.push(plain);
          rec.outLen += plain.length;
        }
        rec.ctLeft -= n;
        off += n;
      } else {
        off = this.#fill(chunk, off, TAG_BYTES);
        if (this.#smallLen === TAG_BYTES) out.push(this.#finish(rec));
      }
    }
    return out;
  }

  /** Call when the byte stream ends: throws ERR_RECORD_TRUNCATED unless the END record came. */
  finish(): void {
    if (!this.#ended || this.#open !== null || this.#smallLen > 0)
      throw new TscCrocError('ERR_RECORD_TRUNCATED', 'the connection ended before the end record: the stream was truncated');
  }

  /** Copy bytes into #small until it holds `want`; returns the new offset. */
  #fill(chunk: Buffer, off: number, want: number): number {
    const n = Math.min(want - this.#smallLen, chunk.length - off);
    chunk.copy(this.#small, this.#smallLen, off, off + n);
    this.#smallLen += n;
    return off + n;
  }

  /** A whole header is in #small: check it and set up the record's decryption. */
  #begin(): void {
    const h = this.#small;
    const len = h.readUInt32BE(0);
    this.#smallLen = 0;
    if (len > MAX_FRAME_BODY) throw new TscCrocError('ERR_FRAME_TOO_LARGE', `frame of ${len} bytes exceeds the maximum of ${MAX_FRAME_BODY}`);
    if (len < SEQ_BYTES + 1 + TAG_BYTES) throw new TscCrocError('ERR_RECORD_AUTH', 'record too short to be authentic');
    const seq = h.readUInt32BE(4) * 2 ** 32 + h.readUInt32BE(8);
    if (seq < this.#seq) throw new TscCrocError('ERR_RECORD_REPLAY', `record ${seq} replayed (expected ${this.#seq})`);
    if (seq > this.#seq) throw new TscCrocError('ERR_RECORD_REORDER', `record ${seq} out of order (expected ${this.#seq})`);
    const nonce = nonceFor(seq);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce);
    decipher.setAAD(nonce.subarray(4));
    this.#open = { seq, decipher, ctLeft: len - SEQ_BYTES - TAG_BYTES, out: [], outLen: 0 };
  }

  /** The tag is in #small: verify it, then release the record. */
  #finish(rec: OpenRecord): OpenedRecord {
    this.#open = null;
    this.#smallLen = 0;
    rec.decipher.setAuthTag(this.#small);
    try {
      const last = rec.decipher.final();
      if (last.length > 0) {
        rec.out.push(last);
        rec.outLen += last.length;
      }
    } catch {
      throw new TscCrocError('ERR_RECORD_AUTH', `record ${rec.seq} failed authentication: it was tampered with or sealed under another key`);
    }
    this.#seq++;
    const first = rec.out[0]!;
    const type = first[0];
    if (type !== RecordType.DATA && type !== RecordType.MESSAGE && type !== RecordType.END)
      throw new TscCrocError('ERR_PROTOCOL', `unknown record type ${type}`);
    const chunks = first.length > 1 ? [first.subarray(1), ...rec.out.slice(1)] : rec.out.slice(1);
    const length = rec.outLen - 1;
    if (type === RecordType.END) {
      if (length !== 0) throw new TscCrocError('ERR_PROTOCOL', 'the end record must be empty');
      this.#ended = true;
    }
    return { type, chunks, length };
  }
}
