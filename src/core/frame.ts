/**
 * Length-prefixed frames: u32 big-endian body length, then the body.
 *
 * The decoder is streaming: feed it socket chunks of any size and it returns whole frame
 * bodies. The length is checked against a hard maximum before anything is allocated for the
 * body, so a hostile peer cannot make us buffer more than `maxBody` bytes plus one chunk.
 */
import { TscCrocError } from './errors.js';

export const FRAME_HEADER_BYTES = 4;
/** Chunks smaller than this are copied into a shared tail buffer instead of being kept one by one. */
const SMALL_CHUNK = 4096;
const TAIL_BYTES = 64 * 1024;

export function encodeFrameHeader(bodyLength: number, maxBody: number): Buffer {
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0 || bodyLength > maxBody)
    throw new TscCrocError('ERR_FRAME_TOO_LARGE', `frame of ${bodyLength} bytes exceeds the maximum of ${maxBody}`);
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h.writeUInt32BE(bodyLength, 0);
  return h;
}

export class FrameDecoder {
  readonly #maxBody: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Body length of the frame being assembled, once its header is known. */
  #need = -1;
  /** Small chunks accumulate here, [#tailStart, #tailLen) not yet moved to #chunks. */
  #tail: Buffer | null = null;
  #tailStart = 0;
  #tailLen = 0;

  constructor(maxBody: number) {
    if (!Number.isSafeInteger(maxBody) || maxBody < 1 || maxBody > 0xffffffff) throw new RangeError('maxBody out of range');
    this.#maxBody = maxBody;
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Add a chunk; returns the frame bodies it completed (possibly none). Throws ERR_FRAME_TOO_LARGE. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length > 0) {
      if (chunk.length < SMALL_CHUNK) this.#append(chunk);
      else {
        this.#flushTail();
        this.#chunks.push(chunk);
      }
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) break;
        this.#flushTail();
        const len = this.#take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (len > this.#maxBody)
          throw new TscCrocError('ERR_FRAME_TOO_LARGE', `frame of ${len} bytes exceeds the maximum of ${this.#maxBody}`);
        this.#need = len;
      }
      if (this.#buffered < this.#need) break;
      this.#flushTail();
      out.push(this.#take(this.#need));
      this.#need = -1;
    }
    return out;
  }

  #append(chunk: Buffer): void {
    if (this.#tail === null || this.#tailLen + chunk.length > this.#tail.length) {
      this.#flushTail();
      this.#tail = Buffer.allocUnsafe(TAIL_BYTES);
      this.#tailStart = this.#tailLen = 0;
    }
    chunk.copy(this.#tail, this.#tailLen);
    this.#tailLen += chunk.length;
  }

  #flushTail(): void {
    if (this.#tail !== null && this.#tailLen > this.#tailStart) {
      this.#chunks.push(this.#tail.subarray(this.#tailStart, this.#tailLen));
      this.#tailStart = this.#tailLen;
    }
  }

  /**
   * Remove n bytes from the front; zero-copy when they lie in the first chunk. Linear in the
   * number of chunks consumed (one splice), so a peer sending tiny segments cannot make
   * reassembly quadratic.
   */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    let i = 0;
    while (off < n) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) i++;
      else this.#chunks[i] = c.subarray(k);
    }
    this.#chunks.splice(0, i);
    return out;
  }
}
