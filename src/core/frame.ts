/**
 * Length-prefixed frames: u32 big-endian body length, then the body.
 *
 * The decoder is streaming: feed it socket chunks of any size and it returns whole frame
 * bodies. The length is checked against a hard maximum before anything is allocated for the
 * body, so a hostile peer cannot make us buffer more than `maxBody` bytes plus one chunk.
 */
import { TscCrocError } from './errors.js';

export const FRAME_HEADER_BYTES = 4;

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
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) break;
        const len = this.#take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (len > this.#maxBody)
          throw new TscCrocError('ERR_FRAME_TOO_LARGE', `frame of ${len} bytes exceeds the maximum of ${this.#maxBody}`);
        this.#need = len;
      }
      if (this.#buffered < this.#need) break;
      out.push(this.#take(this.#need));
      this.#need = -1;
    }
    return out;
  }

  /** Remove n bytes from the front; zero-copy when they lie in the first chunk. */
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
    while (off < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}
