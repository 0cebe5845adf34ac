/**
 * An encrypted, authenticated, ordered record stream over the stapled socket.
 * Writes respect the socket's backpressure; reads are pulled by one consumer, so a slow disk
 * on the receiving side slows the sender down instead of filling memory.
 *
 * Liveness: when we have sent nothing for `keepaliveMs`, a keepalive message goes out (the other
 * side ignores it), so a connection that is alive is never idle for the relay. When we have been
 * waiting on the network (for the next bytes, or for the socket to drain) for `stallMs`, the
 * connection is stalled: it is cut, and the error says so (ERR_STALLED). Time our own consumer
 * spends (a slow disk, a person deciding) is not waiting on the network and never counts.
 */
import type { Socket } from 'node:net';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { encodeMessage, type Message } from '../core/messages.js';
import { RecordOpener, RecordSealer, RecordType, type OpenedRecord, type RecordTypeValue } from '../core/record.js';

/** Bytes we let queue on the socket before waiting for it to drain. */
const WRITE_QUEUE_BYTES = 4 * 1024 * 1024;

export interface Liveness {
  keepaliveMs: number;
  stallMs: number;
}

export class SecureChannel {
  readonly #socket: Socket;
  #lastSent = Date.now();
  /** When we started waiting on the network, or null while we are not. */
  #waitingSince: number | null = null;
  #stalled = false;
  #endSent = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #sealer: RecordSealer;
  readonly #opener: RecordOpener;
  #leftover: Buffer;
  #reading = false;
  #closed: Error | null = null;

  constructor(socket: Socket, leftover: Buffer, sendKey: Uint8Array, recvKey: Uint8Array, liveness?: Liveness) {
    this.#socket = socket;
    this.#leftover = leftover;
    this.#sealer = new RecordSealer(sendKey);
    this.#opener = new RecordOpener(recvKey);
    socket.on('error', (e) => {
      this.#closed ??= e;
    });
    socket.on('close', () => {
      this.#closed ??= new Error('socket closed');
      this.#stopTimer();
    });
    if (liveness) this.#watch(liveness);
  }

  #watch({ keepaliveMs, stallMs }: Liveness): void {
    const tick = Math.max(10, Math.min(keepaliveMs, stallMs) / 4);
    this.#timer = setInterval(() => {
      const now = Date.now();
      if (this.#waitingSince !== null && now - this.#waitingSince >= stallMs) {
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
  async send(type: RecordTypeValue, payload?: Uint8Array): Promise<void> {
    if (this.#closed) throw this.#lost(this.#closed);
    if (this.#endSent) throw new Error('SecureChannel: send after END');
    if (type === RecordType.END) this.#endSent = true;
    this.#lastSent = Date.now();
    const bufs = this.#sealer.seal(type, payload);
    const s = this.#socket;
    s.cork();
    let ok = true;
    for (const b of bufs) ok = s.write(b);
    s.uncork();
    // keep a few MiB queued, so the kernel always has data while we read and seal the next record
    if (!ok && s.writableLength >= WRITE_QUEUE_BYTES) await this.#drain();
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

  /** The records from the other side, in order; throws a typed error on any fault. One consumer only. */
  async *records(): AsyncGenerator<OpenedRecord> {
    if (this.#reading) throw new Error('records() has one consumer');
    this.#reading = true;
    const first = this.#leftover;
    this.#leftover = Buffer.alloc(0);
    if (first.length > 0) yield* this.#opener.push(first);
    if (this.#opener.ended) return;
    try {
      // destroyOnReturn: false, so that leaving the loop at END keeps the socket open for our answer
      this.#waitingSince = Date.now();
      for await (const chunk of this.#socket.iterator({ destroyOnReturn: false })) {
        this.#waitingSince = null;
        yield* this.#opener.push(chunk as Buffer);
        if (this.#opener.ended) return;
        this.#waitingSince = Date.now();
      }
    } catch (e) {
      if (isTscCrocError(e)) throw e;
      throw this.#lost(e as Error);
    } finally {
      this.#waitingSince = null;
    }
    try {
      this.#opener.finish();
    } catch (e) {
      if (this.#stalled) throw this.#lost(e as Error);
      throw new TscCrocError('ERR_CONNECTION_LOST', 'the connection closed before the transfer finished (the other side quit, or the relay dropped it)', { cause: e });
    }
  }

  /** Flush what we wrote, end our side, and wait (bounded) for the socket to close. */
  async close(timeoutMs = 5000): Promise<void> {
    this.#stopTimer();
    const s = this.#socket;
    if (s.closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, timeoutMs);
      s.once('close', () => {
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
    const since = Date.now();
    if (this.#waitingSince === null) this.#waitingSince = since;
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        if (this.#waitingSince === since) this.#waitingSince = null;
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
