/**
 * Where received bytes go when they do not go to files: a text kept in memory (bounded by the
 * recipient machine), or a writable such as stdout (piped data, or one file with --stdout),
 * written with backpressure. A text or a stream is hashed as it passes and checked at the end
 * against the sender's SHA-256 (`stream-end`); a file is checked by its byte count, as any file.
 */
import { createHash, type Hash } from 'node:crypto';
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
  readonly #hash: Hash | null;
  readonly #out: NodeJS.WritableStream | null;
  readonly #signal: AbortSignal | undefined;
  readonly #text: Buffer[] | null;

  /** `out` null: collect a text in memory. `file`: a file's bytes (no SHA-256 to check). */
  constructor(out: NodeJS.WritableStream | null, signal: AbortSignal | undefined, file = false) {
    this.#hash = file ? null : createHash('sha256');
    this.#out = out;
    this.#signal = signal;
    this.#text = out === null ? [] : null;
  }

  async write(chunks: Buffer[]): Promise<void> {
    for (const c of chunks) {
      this.#hash?.update(c);
      if (this.#text) this.#text.push(c);
      else await writeTo(this.#out!, c, this.#signal);
    }
  }

  verify(sha256: string, what: string): void {
    const h = this.#hash;
    if (h === null || h.digest('hex') !== sha256) throw new TscCrocError('ERR_INTEGRITY', `${what} does not match the SHA-256 the sender announced`);
  }

  /** The collected text, for a text target. */
  text(): string | undefined {
    return this.#text ? Buffer.concat(this.#text).toString('utf8') : undefined;
  }
}
