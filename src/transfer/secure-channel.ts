/**
 * An encrypted, authenticated, ordered record stream over the stapled socket.
 * Writes respect the socket's backpressure. Reads land in one reused buffer (a ReadTap from
 * src/transfer/tcp.ts) and are decrypted at once; at most RECV_QUEUE_BYTES of opened records wait
 * for the one consumer before the socket is paused, so a slow disk on the receiving side slows
 * the sender down instead of filling memory. Small records sealed in one turn of the event loop
 * go out in one write.
 *
 * Liveness: when we have sent nothing for `keepaliveMs`, a keepalive message goes out (the other
 * side ignores it), so a connection that is alive is never idle for the relay. When we have been
 * waiting on the network (for the next bytes, or for the socket to drain) for `stallMs`, the
 * connection is stalled: it is cut, and the error says so (ERR_STALLED). Time our own consumer
 * spends (a slow disk, a person deciding) is not waiting on the network and never counts.
 */
import { trace, tracing } from './trace.js';
import type { Socket } from 'node:net';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { encodeMessage, type Message } from '../core/messages.js';
import { RecordOpener, RecordSealer, RecordType, type OpenedRecord, type RecordTypeValue } from '../core/record.js';
import type { ReadTap } from './tcp.js';

/** Bytes we let queue on the socket before waiting for it to drain (one record in flight behind the one being written). */
const WRITE_QUEUE_BYTES = 1024 * 1024;
/**
 * Records up to this size (sealed, all parts) are copied into one batch buffer of BATCH_BYTES
 * while the socket is corked, instead of being written as their 4-5 separate pieces: with tiny
 * files a full write queue held tens of thousands of few-byte chunks (and their queue entries),
 * long-lived enough to be promoted, which grew a 100,000-file sender by ~20 MiB of heap.
 */
const SMALL_RECORD_BYTES = 16 * 1024;
const BATCH_BYTES = 64 * 1024;
/** Opened records waiting for the consumer before we stop reading the socket. */
const RECV_QUEUE_BYTES = 1024 * 1024;

/**
 * Memory: node:crypto returns every record's ciphertext or plaintext in a new buffer (it has no
 * API to encrypt into ours). Those buffers are garbage as soon as the socket or the disk took
 * them, but V8 frees them only when it collects, and it collects on external memory alone only
 * past its limit (about 64 MiB), so a peer can carry tens of MiB of dead buffers.
 *
 * Collecting is the host process's decision, not a library's: the library never obtains V8's
 * `gc` nor sets V8 flags. A host that wants a flat footprint (the tsc-croc CLI does) registers a
 * collector with setRecordBufferCollector(); it is called after every `everyBytes` of records
 * sealed or opened, in all channels of the process. Without one nothing is done, and V8 frees
 * the buffers on its own schedule.
 */
let collector: (() => void) | null = null;
let collectEvery = 4 * 1024 * 1024;
let sinceCollect = 0;

/**
 * Register (or with null, remove) the function called after every `everyBytes` (default 4 MiB) of
 * records sealed or opened by any SecureChannel of this process, e.g. a young-generation GC:
 * `setRecordBufferCollector(() => gc({ type: 'minor' }))` in a process started with --expose-gc.
 * The function must not throw; it runs on the data path, so it must be cheap.
 */
export function setRecordBufferCollector(collect: (() => void) | null, everyBytes = 4 * 1024 * 1024): void {
  if (!(Number.isSafeInteger(everyBytes) && everyBytes > 0)) throw new RangeError('everyBytes must be a positive integer');
  collector = collect;
  collectEvery = everyBytes;
  sinceCollect = 0;
}

/**
 * Releasing: a host may also take back each large ciphertext buffer (at least RELEASE_MIN_BYTES)
 * as soon as the socket has written it, instead of leaving it to the collector: the function
 * registered with setRecordBufferRelease() gets the buffer, which nothing else references any
 * more (the socket finished or dropped that write), and may free its memory at once (the
 * tsc-croc CLI detaches it, see src/cli/run.ts). Released bytes do not count towards the
 * collector's `everyBytes`.
 */
let releaser: ((buf: Buffer) => void) | null = null;
const RELEASE_MIN_BYTES = 64 * 1024;

/**
 * Register (or with null, remove) the function given every sealed ciphertext buffer of
 * RELEASE_MIN_BYTES or more once the socket is done with it (written, or dropped with the socket),
 * and every opened plaintext piece once the file sink wrote it (releaseRecordChunks).
 * The buffer is never used by the library again. The function must not throw.
 */
export function setRecordBufferRelease(release: ((buf: Buffer) => void) | null): void {
  releaser = release;
}

/**
 * Give the pieces of an opened record back once they are written (to a file): each goes to the
 * registered release function, small ones too (a piece of a few KiB left for the collector sits
 * between the big ones and fragments the heap: a 4 GiB recipient peaked 2 MiB higher). The
 * caller must not use them afterwards. Without a release function nothing is done.
 */
export function releaseRecordChunks(chunks: readonly Buffer[]): void {
  const release = releaser;
  if (release === null) return;
  let n = 0;
  for (const c of chunks) {
    if (c.length === 0) continue;
    n += c.length; // before the release, which may detach it
    release(c);
  }
  // what the release freed needs no collection: only its small objects do (see RELEASED_COUNT)
  sinceCollect = Math.max(0, sinceCollect - n + Math.floor(n * RELEASED_COUNT));
}

/**
 * How much of a released piece still counts towards the collector's `everyBytes`. Bytes opened
 * count when they arrive; once the file sink released them, their memory is free and what is left
 * for a collection is each record's small objects (its decipher context, the buffers' wrappers):
 * a quarter, so a large file received gets one forced minor GC per 16 MiB instead of one per 4
 * (each ~0.2 ms: the 255 of a 1 GiB file took 45-120 ms of the recipient's CPU, bench/README.md
 * "Session 6"). Not zero: without any, V8 keeps those objects (and their native memory) until
 * its own schedule, ~1 MiB more peak RSS.
 */
const RELEASED_COUNT = 1 / 4;

function collectRecordBuffers(bytes: number): void {
  if (collector === null) return;
  sinceCollect += bytes;
  if (sinceCollect < collectEvery) return;
  sinceCollect = 0;
  collector();
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

export interface Liveness {
  keepaliveMs: number;
  stallMs: number;
}

export class SecureChannel {
  readonly #socket: Socket;
  #lastSent = Date.now();
  /** Since when the consumer waits for bytes (renewed by every read), or null while it does not. */
  #waitingSince: number | null = null;
  /** Since when we wait for the socket to drain, or null. */
  #drainSince: number | null = null;
  #stalled = false;
  #endSent = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #sealer: RecordSealer;
  readonly #opener: RecordOpener;
  readonly #tap: ReadTap | null;
  #leftover: Buffer;
  #reading = false;
  /** The consumer has had the last record, or the failure, or stopped: records() yields nothing more. */
  #readDone = false;
  #closed: Error | null = null;
  /** Our writes are corked until the end of this turn of the event loop. */
  #corked = false;
  /** Small records sealed in this turn, not yet handed to the socket: written (copied) at uncork, or when full, or before a large record. */
  #batch: Buffer | null = null;
  #batchLength = 0;
  /** Opened records not yet taken by the consumer, and their bytes. */
  readonly #queue: OpenedRecord[] = [];
  #queued = 0;
  /** We paused the socket because the consumer is behind. */
  #paused = false;
  /** The read side failed (a bad record, the socket), or ended (null error, `#eof`). */
  #readError: unknown = null;
  #eof = false;
  /** Wakes the consumer waiting for records. */
  #wake: (() => void) | null = null;

  /**
   * `tap`: the socket's reads (a socket from connectStapled); without one, 'data' events are used.
   * `leftover`: bytes already read behind the relay's reply.
   */
  constructor(socket: Socket, leftover: Buffer, sendKey: Uint8Array, recvKey: Uint8Array, liveness?: Liveness, tap?: ReadTap) {
    this.#socket = socket;
    this.#leftover = leftover;
    this.#tap = tap ?? null;
    this.#sealer = new RecordSealer(sendKey);
    this.#opener = new RecordOpener(recvKey);
    trace('channel: stapled, keys set');
    socket.on('error', (e) => {
      this.#closed ??= e;
      this.#readFailed(e);
    });
    socket.on('close', () => {
      this.#closed ??= new Error('socket closed');
      this.#stopTimer();
      this.#readFailed(this.#closed);
    });
    socket.on('end', () => {
      if (this.#eof || this.#readError !== null) return;
      try {
        this.#opener.finish();
        this.#eof = true;
      } catch (e) {
        this.#readError = this.#stalled
          ? this.#lost(e as Error)
          : new TscCrocError('ERR_CONNECTION_LOST', 'the connection closed before the transfer finished (the other side quit, or the relay dropped it)', { cause: e });
      }
      this.#notify();
    });
    if (liveness) this.#watch(liveness);
  }

  #watch({ keepaliveMs, stallMs }: Liveness): void {
    const tick = Math.max(10, Math.min(keepaliveMs, stallMs) / 4);
    this.#timer = setInterval(() => {
      const now = Date.now();
      const since = Math.min(this.#waitingSince ?? now, this.#drainSince ?? now);
      if (now - since >= stallMs) {
        this.#stalled = true;
        this.#stopTimer();
        this.#socket.destroy();
        return;
      }
      if (!this.#endSent && this.#closed === null && now - this.#lastSent >= keepaliveMs) {
        // on an idle connection the socket takes it at once; when data is queued, none is needed
        this.sendMessage({ type: 'keepalive' }).catch(() => undefined);
      }
    }, tick);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #lost(e: Error): TscCrocError {
    if (this.#stalled) return new TscCrocError('ERR_STALLED', 'the connection stalled: nothing came from the other side for too long', { cause: e });
    return lost(e);
  }

  /** Seal and write one record; resolves when the socket can take more. */
  send(type: RecordTypeValue, payload?: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(this.#lost(this.#closed));
    if (this.#endSent) return Promise.reject(new Error('SecureChannel: send after END'));
    const frame = this.#sealer.seal(type, payload);
    if (tracing) trace(`channel: record ${type} sealed`);
    if (payload !== undefined && (releaser === null || payload.length < RELEASE_MIN_BYTES)) collectRecordBuffers(payload.length);
    return this.#write(frame, type === RecordType.END);
  }

  async #write(bufs: Buffer[], end: boolean): Promise<void> {
    if (end) this.#endSent = true;
    this.#lastSent = Date.now();
    const s = this.#socket;
    if (!this.#corked) {
      // records sealed in this turn go out together, in one vectored write
      this.#corked = true;
      s.cork();
      setImmediate(() => this.#uncork());
    }
    let n = 0;
    for (const b of bufs) n += b.length;
    if (n <= SMALL_RECORD_BYTES) {
      if (this.#batch !== null && this.#batchLength + n > this.#batch.length) this.#flushBatch();
      const batch = (this.#batch ??= Buffer.allocUnsafe(BATCH_BYTES));
      for (const b of bufs) this.#batchLength += b.copy(batch, this.#batchLength);
    } else {
      this.#flushBatch();
      const release = releaser;
      for (const b of bufs) {
        // the write's callback runs once the kernel took the bytes (or the socket dropped them)
        if (release !== null && b.length >= RELEASE_MIN_BYTES) s.write(b, () => release(b));
        else s.write(b);
      }
    }
    // keep two records queued, so the kernel always has data while we read and seal the next record
    if (s.writableLength + this.#batchLength >= WRITE_QUEUE_BYTES) {
      this.#uncork();
      if (s.writableLength >= WRITE_QUEUE_BYTES) await this.#drain();
    }
  }

  #flushBatch(): void {
    if (this.#batchLength === 0) return;
    // a copy of the bytes used (the staging buffer is reused): a queued write holds only its bytes
    this.#socket.write(Buffer.from(this.#batch!.subarray(0, this.#batchLength)));
    this.#batchLength = 0;
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#flushBatch();
    this.#socket.uncork();
  }

  sendMessage(m: Message): Promise<void> {
    return this.send(RecordType.MESSAGE, encodeMessage(m));
  }

  /**
   * Send the END record. The socket stays open both ways: a peer socket closes its write side
   * as soon as its read side ends, so half-closing here would cut off the other side's answer.
   */
  end(): Promise<void> {
    return this.send(RecordType.END);
  }

  /** Bytes read from the socket: decrypt them now (the read buffer is reused), queue the records. */
  #onBytes(chunk: Buffer): boolean {
    if (this.#readError !== null || this.#opener.ended) return false;
    // anything that arrives shows the other side is alive: both waits start again
    if (this.#waitingSince !== null) this.#waitingSince = Date.now();
    if (this.#drainSince !== null) this.#drainSince = Date.now();
    try {
      for (const r of this.#opener.push(chunk)) {
        this.#queue.push(r);
        this.#queued += r.length + 1;
      }
      collectRecordBuffers(chunk.length);
    } catch (e) {
      this.#readError = e;
      this.#notify();
      this.#socket.pause();
      return false;
    }
    this.#notify();
    if (this.#opener.ended || this.#queued >= RECV_QUEUE_BYTES) {
      this.#paused = true;
      this.#socket.pause();
      return false;
    }
    return true;
  }

  #readFailed(e: Error): void {
    if (this.#readError === null && !this.#eof && !this.#opener.ended) this.#readError = this.#lost(e);
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /**
   * The records from the other side, in order; throws a typed error on any fault. One consumer
   * only. An async iterator written out by hand rather than an async generator: the record loop
   * is hot enough that V8 optimizes it after a few GiB, and optimizing a generator's state
   * machine took ~20 ms and ~2 MiB of compiler memory on a worker thread, which raised a 4 GiB
   * recipient's peak RSS over a 1 GiB one's (bench/README.md, "Session 5").
   */
  records(): AsyncIterableIterator<OpenedRecord> {
    let started = false;
    let stopped = false;
    const it: AsyncIterableIterator<OpenedRecord> = {
      next: () => {
        if (stopped) return Promise.resolve(DONE);
        if (!started) {
          started = true;
          try {
            this.#startReading();
          } catch (e) {
            stopped = true;
            return Promise.reject(e);
          }
        }
        return this.#nextRecord();
      },
      return: () => {
        if (started && !stopped) {
          this.#readDone = true;
          this.#waitingSince = null;
        }
        stopped = true;
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** The first call starts reading: the bytes behind the relay's reply, then the socket. */
  #startReading(): void {
    if (this.#reading) throw new Error('records() has one consumer');
    this.#reading = true;
    const first = this.#leftover;
    this.#leftover = Buffer.alloc(0);
    if (first.length > 0) this.#onBytes(first);
    const s = this.#socket;
    if (this.#tap !== null) this.#tap.onBytes = (b) => this.#onBytes(b);
    else s.on('data', (b: Buffer) => void this.#onBytes(b));
    if (!this.#opener.ended && this.#readError === null) s.resume();
  }

  /** The next record for the consumer: at once when one is queued, else once one arrives (or the read side fails). */
  #nextRecord(): Promise<IteratorResult<OpenedRecord, undefined>> {
    try {
      const r = this.#takeRecord();
      if (r !== null) return Promise.resolve(r);
    } catch (e) {
      return Promise.reject(e);
    }
    // waiting on the network, which the stall check watches
    this.#waitingSince = Date.now();
    return new Promise((resolve, reject) => {
      // woken after every read: bytes that complete no record leave it waiting (the read renewed #waitingSince)
      const wake = (): void => {
        let r: IteratorResult<OpenedRecord, undefined> | null;
        try {
          r = this.#takeRecord();
        } catch (e) {
          this.#waitingSince = null;
          return reject(e);
        }
        if (r === null) return void (this.#wake = wake);
        this.#waitingSince = null;
        resolve(r);
      };
      this.#wake = wake;
    });
  }

  /** A queued record, or the end, or null when there is nothing yet; throws the read side's failure. */
  #takeRecord(): IteratorResult<OpenedRecord, undefined> | null {
    if (this.#readDone) return DONE;
    const r = this.#queue.shift();
    if (r !== undefined) {
      this.#queued -= r.length + 1;
      if (this.#paused && this.#queued < RECV_QUEUE_BYTES / 2 && !this.#opener.ended) {
        this.#paused = false;
        this.#socket.resume();
      }
      if (tracing) trace(`channel: record ${r.type} opened`);
      if (r.type === RecordType.END) this.#readDone = true; // nothing comes after END
      return { done: false, value: r };
    }
    if (this.#readError !== null) {
      this.#readDone = true;
      const e = this.#readError;
      if (isTscCrocError(e)) throw e;
      throw this.#lost(e as Error);
    }
    if (this.#eof) {
      // cannot happen without END (finish() checked it), kept for safety
      this.#readDone = true;
      return DONE;
    }
    return null;
  }

  /** Flush what we wrote, end our side, and wait (bounded) for the socket to close. */
  async close(timeoutMs = 5000): Promise<void> {
    trace('channel: closing');
    this.#stopTimer();
    this.#uncork();
    const s = this.#socket;
    if (s.closed) return;
    if (this.#tap !== null) this.#tap.onBytes = () => undefined; // read the peer's FIN; anything else is dropped
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, timeoutMs);
      s.once('close', () => {
        trace('channel: socket closed');
        clearTimeout(t);
        resolve();
      });
      s.end();
      s.resume(); // read the peer's FIN so the socket can close
    });
  }

  destroy(): void {
    this.#stopTimer();
    this.#socket.destroy();
  }

  #drain(): Promise<void> {
    const s = this.#socket;
    this.#drainSince = Date.now();
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.#drainSince = null;
        s.off('drain', onDrain);
        s.off('close', onClose);
        s.off('error', onClose);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onClose = (e?: unknown) => {
        cleanup();
        reject(this.#lost(e instanceof Error ? e : (this.#closed ?? new Error('socket closed'))));
      };
      s.on('drain', onDrain);
      s.on('close', onClose);
      s.on('error', onClose);
    });
  }
}

function lost(e: Error): TscCrocError {
  const code = (e as NodeJS.ErrnoException).code;
  return new TscCrocError('ERR_CONNECTION_LOST', `the connection to the other side was lost${code ? ` (${code})` : ''}`, { cause: e });
}
