/**
 * Where received bytes go when they do not go to files: a text kept in memory (bounded by the
 * recipient machine), or a writable such as stdout (piped data, or one file with --stdout),
 * written with backpressure. Hashed as it passes, checked at the end against the sender's SHA-256
 * (a text or a stream) or file digest (one file, src/core/chunk-digest.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import { ChunkHasher } from '../core/chunk-digest.js';
import { TscCrocError } from '../core/errors.js';

const broken = new WeakMap<NodeJS.WritableStream, unknown>();

/** Write with backpressure. A target that errors (EPIPE) fails the transfer; a cancel interrupts a blocked write. */
function writeTo(w: NodeJS.WritableStream, chunk: Buffer, signal: AbortSignal | undefined): Promise<void> {
  if (!broken.has(w)) {
    broken.set(w, null);
    w.on('error', (e) => broken.set(w, e)); // stays: a later error must never be an uncaught event
  }
  const failed = broken.get(w);
  if (failed) return Promise.reject(new TscCrocError('ERR_IO', `cannot write the received data (${(failed as NodeJS.ErrnoException).code ?? 'error'})`));
  if (w.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cancelled = () => done(new TscCrocError('ERR_CANCELLED', 'cancelled'));
    const done = (e?: unknown) => {
      w.off('drain', done);
      w.off('error', done);
      signal?.removeEventListener('abort', cancelled);
      if (e instanceof TscCrocError) reject(e);
      else if (e) reject(new TscCrocError('ERR_IO', `cannot write the received data (${(e as NodeJS.ErrnoException).code ?? 'error'})`));
      else resolve();
    };
    w.on('drain', done);
    w.on('error', done);
    signal?.addEventListener('abort', cancelled, { once: true }); // a reader that stopped reading must not block a cancel
  });
}

export class StreamTarget {
  readonly #hash: Hash | ChunkHasher;
  readonly #out: NodeJS.WritableStream | null;
  readonly #signal: AbortSignal | undefined;
  readonly #text: Buffer[] | null;

  /** `out` null: collect a text in memory. `file`: a file's bytes, checked by its digest. */
  constructor(out: NodeJS.WritableStream | null, signal: AbortSignal | undefined, file = false) {
    this.#hash = file ? new ChunkHasher() : createHash('sha256');
    this.#out = out;
    this.#signal = signal;
    this.#text = out === null ? [] : null;
  }

  async write(chunks: Buffer[]): Promise<void> {
    for (const c of chunks) {
      this.#hash.update(c);
      if (this.#text) this.#text.push(c);
      else await writeTo(this.#out!, c, this.#signal);
    }
  }

  verify(sha256: string, what: string): void {
    const h = this.#hash;
    if (h instanceof ChunkHasher || h.digest('hex') !== sha256) throw new TscCrocError('ERR_INTEGRITY', `${what} does not match the SHA-256 the sender announced`);
  }

  verifyDigest(digest: string, what: string): void {
    const h = this.#hash;
    if (!(h instanceof ChunkHasher) || h.digest() !== digest) throw new TscCrocError('ERR_INTEGRITY', `${what} does not match the digest the sender announced`);
  }

  /** The collected text, for a text target. */
  text(): string | undefined {
    return this.#text ? Buffer.concat(this.#text).toString('utf8') : undefined;
  }
}
