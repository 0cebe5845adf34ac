/**
 * The digest that verifies a file end to end (docs/protocol.md §6.3): SHA-256 over the SHA-256
 * of each 1 MiB chunk. It costs what one SHA-256 of the file costs, and unlike a plain SHA-256
 * its state is a list of chunk hashes, which the recipient keeps beside a partial file: a
 * resumed transfer continues the digest from that list without reading what it already holds,
 * and the sender proves a prefix by the digest of the prefix, computed the same way.
 *
 *   h_i    = SHA-256(bytes[i·C, min((i+1)·C, L)))          C = 1 MiB, L = length
 *   digest = SHA-256("tsc-croc/v1/file-digest" || 0x00 || u64be(L) || h_0 || … || h_{n-1})
 *
 * A prefix of length L is digested the same way, so "the first L bytes" and "a file of L bytes"
 * have the same digest; the length is bound in, so no two lengths share a digest.
 */
import { createSha256, type Sha256 } from './platform.js';
import { bytesToHex } from './assert.js';
import { utf8 } from './utf8.js';

export const CHUNK_SIZE = 1024 * 1024;
export const CHUNK_HASH_BYTES = 32;
const DOMAIN = utf8('tsc-croc/v1/file-digest\0');

/** The digest of `length` bytes whose chunk hashes are `hashes` (lowercase hex). */
export function digestOf(hashes: readonly Uint8Array[], length: number): string {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('length must be a safe non-negative integer');
  const want = Math.ceil(length / CHUNK_SIZE);
  if (hashes.length !== want) throw new RangeError(`${length} bytes have ${want} chunk hashes, not ${hashes.length}`);
  const h = createSha256().update(DOMAIN);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(length));
  h.update(len);
  for (const c of hashes) {
    if (c.length !== CHUNK_HASH_BYTES) throw new RangeError('a chunk hash is 32 bytes');
    h.update(c);
  }
  return bytesToHex(h.digest());
}

/**
 * Hashes a byte stream chunk by chunk. `resume` starts after whole chunks already hashed
 * (their hashes kept from an earlier run), so that nothing before them is read again.
 */
export class ChunkHasher {
  /** Hashes of the whole chunks so far. */
  readonly hashes: Uint8Array[];
  #length: number;
  #current: Sha256 | null = null;
  #inCurrent = 0;

  constructor(resume: readonly Uint8Array[] = []) {
    this.hashes = [...resume];
    this.#length = resume.length * CHUNK_SIZE;
  }

  /** Bytes hashed so far (including those of `resume`). */
  get length(): number {
    return this.#length;
  }

  update(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      const take = Math.min(CHUNK_SIZE - this.#inCurrent, data.length - off);
      (this.#current ??= createSha256()).update(data.subarray(off, off + take));
      this.#inCurrent += take;
      off += take;
      if (this.#inCurrent === CHUNK_SIZE) {
        this.hashes.push(this.#current.digest());
        this.#current = null;
        this.#inCurrent = 0;
      }
    }
    this.#length += data.length;
  }

  /** The digest of everything hashed so far. The hasher can go on afterwards. */
  digest(): string {
    if (this.#current === null) return digestOf(this.hashes, this.#length);
    const last = this.#current.copy().digest();
    return digestOf([...this.hashes, last], this.#length);
  }
}
