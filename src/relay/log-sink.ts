/**
 * Where the relay's log lines go: a file descriptor (stdout by default), written asynchronously
 * with at most `maxBytes` waiting. A line that does not fit is dropped and counted, never buffered:
 * a reader slower than the relay's logging (a pipe, a busy journal) costs lines, not memory.
 * (pino's default destination queues without bound: under a request flood that queue was where
 * the relay's memory went, issue 11.)
 */
import fs from 'node:fs';

/** Most bytes of log lines waiting to be written by default. */
export const LOG_BUFFER_BYTES = 1 << 20;

export class BoundedLogSink {
  #queue: string[] = [];
  #bytes = 0;
  #writing = false;
  #dropped = 0;
  #onDrop: (n: number) => void = () => {};

  /**
   * `format`, if given, rewrites each line before it is queued (the relay's pretty format,
   * src/relay/log-pretty.ts); the bound applies to what it returns.
   */
  constructor(
    readonly fd: number = 1,
    readonly maxBytes: number = LOG_BUFFER_BYTES,
    readonly format: ((line: string) => string) | null = null,
  ) {}

  /** Lines dropped so far (the buffer was full, or the descriptor failed). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Bytes waiting or being written now. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  /** Call `fn` with the number of lines each time some are dropped. */
  onDrop(fn: (n: number) => void): void {
    this.#onDrop = fn;
  }

  /** pino's destination interface: one line per call. */
  write(raw: string): boolean {
    const line = this.format === null ? raw : this.format(raw);
    if (this.#bytes + line.length > this.maxBytes) {
      this.#drop(1);
      return false;
    }
    this.#queue.push(line);
    this.#bytes += line.length;
    if (!this.#writing) this.#flush();
    return true;
  }

  #drop(n: number): void {
    this.#dropped += n;
    this.#onDrop(n);
  }

  #flush(): void {
    if (this.#queue.length === 0) {
      this.#writing = false;
      return;
    }
    this.#writing = true;
    const lines = this.#queue.length;
    const text = this.#queue.join('');
    this.#queue = [];
    const data = Buffer.from(text);
    const done = (): void => {
      this.#bytes -= text.length;
      this.#flush();
    };
    const writeFrom = (offset: number, tries: number): void => {
      fs.write(this.fd, data, offset, data.length - offset, null, (err, written) => {
        if (err !== null) {
          // A non-blocking descriptor that is full: try again shortly (the queue stays bounded meanwhile).
          if (err.code === 'EAGAIN' && tries < 1000) {
            setTimeout(() => writeFrom(offset, tries + 1), 10).unref();
            return;
          }
          this.#drop(lines);
          return done();
        }
        if (offset + written < data.length) return writeFrom(offset + written, tries);
        done();
      });
    };
    writeFrom(0, 0);
  }
}
