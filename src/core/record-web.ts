/**
 * The record layer for the browser (docs/protocol.md §5): the same frames, nonces, limits and
 * checks as record.ts (shared through record-framing.ts), with the AEAD behind an interface,
 * because the browser's AES-GCM (WebCrypto) is asynchronous and one-shot. A frame body is at most
 * MAX_FRAME_BODY, so one record is buffered whole, then opened; nothing unauthenticated leaves
 * this module. Calls to `seal` and `push` must not overlap (each awaits the previous one).
 *
 * Two AEADs: WebCrypto (native AES-NI in every browser; the default) and @noble/ciphers' gcm
 * (pure JavaScript; for a context without crypto.subtle). Measured in Chromium, docs/protocol.md §5.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { abytes } from './assert.js';
import { TscCrocError } from './errors.js';
import {
  HEADER_BYTES,
  KEY_BYTES,
  MAX_RECORD_PAYLOAD,
  MAX_RECORDS_PER_KEY,
  RecordType,
  SEQ_BYTES,
  TAG_BYTES,
  checkHeader,
  checkSeal,
  nonceOf,
  writeHeader,
  type RecordTypeValue,
} from './record-framing.js';

export { RecordType, type RecordTypeValue } from './record-framing.js';

/** AES-256-GCM, one shot: ciphertext || tag out of seal, the plaintext out of open (or a throw). */
export interface Aead {
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Promise<Uint8Array>;
}

export type AeadFactory = (key: Uint8Array) => Aead;

/** WebCrypto takes views of ArrayBuffers only (never of a SharedArrayBuffer); ours all are. */
const own = (b: Uint8Array): Uint8Array<ArrayBuffer> => b as Uint8Array<ArrayBuffer>;

/** AES-256-GCM from WebCrypto (crypto.subtle: browsers on https or localhost, node 20+). */
export const webCryptoAead: AeadFactory = (key) => {
  const subtle = globalThis.crypto.subtle;
  const k = subtle.importKey('raw', key.slice(), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  k.catch(() => undefined); // reported by the first seal or open
  return {
    async seal(nonce, aad, plaintext) {
      return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: own(nonce), additionalData: own(aad), tagLength: 128 }, await k, own(plaintext)));
    },
    async open(nonce, aad, sealed) {
      return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv: own(nonce), additionalData: own(aad), tagLength: 128 }, await k, own(sealed)));
    },
  };
};

/** AES-256-GCM from @noble/ciphers (pure JavaScript, synchronous underneath). */
export const nobleAead: AeadFactory = (key) => {
  const k = key.slice();
  return {
    seal: async (nonce, aad, plaintext) => gcm(k, nonce, aad).encrypt(plaintext),
    open: async (nonce, aad, sealed) => gcm(k, nonce, aad).decrypt(sealed),
  };
};

/**
 * WebCrypto where it exists (8-10x faster in Chromium: docs/protocol.md §5), @noble/ciphers where
 * it does not (a page served over plain http from another host than localhost has no crypto.subtle).
 */
export const defaultAead: AeadFactory = (key) => (globalThis.crypto?.subtle !== undefined ? webCryptoAead(key) : nobleAead(key));

/** Seals records for one direction: each `seal` gives one whole frame. */
export class WebRecordSealer {
  readonly #aead: Aead;
  #seq = 0;
  #ended = false;

  constructor(key: Uint8Array, aead: AeadFactory = defaultAead) {
    abytes(key, 'key', KEY_BYTES);
    this.#aead = aead(key);
  }

  get seq(): number {
    return this.#seq;
  }

  async seal(type: RecordTypeValue, payload: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    checkSeal(this.#ended, this.#seq, payload.length);
    const seq = this.#seq++;
    if (type === RecordType.END) this.#ended = true;
    const plain = new Uint8Array(1 + payload.length);
    plain[0] = type;
    plain.set(payload, 1);
    const nonce = nonceOf(seq);
    const sealed = await this.#aead.seal(nonce, nonce.subarray(4), plain);
    const frame = new Uint8Array(HEADER_BYTES + sealed.length);
    writeHeader(frame, SEQ_BYTES + sealed.length, seq);
    frame.set(sealed, HEADER_BYTES);
    return frame;
  }
}

export interface WebOpenedRecord {
  type: RecordTypeValue;
  payload: Uint8Array;
}

/** Opens the records of one direction from a byte stream (the same checks as record.ts's RecordOpener). */
export class WebRecordOpener {
  readonly #aead: Aead;
  #seq = 0;
  #ended = false;
  readonly #header = new Uint8Array(HEADER_BYTES);
  #headerLen = 0;
  /** The body being received (its length checked before it was allocated). */
  #body: Uint8Array | null = null;
  #bodyLen = 0;

  constructor(key: Uint8Array, aead: AeadFactory = defaultAead) {
    abytes(key, 'key', KEY_BYTES);
    this.#aead = aead(key);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Feed received bytes; returns the records they completed, in order. Throws a typed error on any fault. */
  async push(chunk: Uint8Array): Promise<WebOpenedRecord[]> {
    const out: WebOpenedRecord[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.#ended) throw new TscCrocError('ERR_RECORD_AFTER_END', 'data arrived after the end record');
      if (this.#body === null) {
        const n = Math.min(HEADER_BYTES - this.#headerLen, chunk.length - off);
        this.#header.set(chunk.subarray(off, off + n), this.#headerLen);
        this.#headerLen += n;
        off += n;
        if (this.#headerLen === HEADER_BYTES) {
          const len = checkHeader(this.#header, this.#seq);
          this.#headerLen = 0;
          this.#body = new Uint8Array(len - SEQ_BYTES);
          this.#bodyLen = 0;
        }
      } else {
        const n = Math.min(this.#body.length - this.#bodyLen, chunk.length - off);
        this.#body.set(chunk.subarray(off, off + n), this.#bodyLen);
        this.#bodyLen += n;
        off += n;
        if (this.#bodyLen === this.#body.length) out.push(await this.#open(this.#body));
      }
    }
    return out;
  }

  /** Call when the byte stream ends: throws ERR_RECORD_TRUNCATED unless the END record came. */
  finish(): void {
    if (!this.#ended || this.#body !== null || this.#headerLen > 0)
      throw new TscCrocError('ERR_RECORD_TRUNCATED', 'the connection ended before the end record: the stream was truncated');
  }

  async #open(sealed: Uint8Array): Promise<WebOpenedRecord> {
    this.#body = null;
    const seq = this.#seq;
    const nonce = nonceOf(seq);
    let plain: Uint8Array;
    try {
      plain = await this.#aead.open(nonce, nonce.subarray(4), sealed);
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

/** Bytes of one sealed frame around a payload (for progress and buffer sizing). */
export const FRAME_OVERHEAD = HEADER_BYTES + 1 + TAG_BYTES;
