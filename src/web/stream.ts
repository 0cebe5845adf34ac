/**
 * The stapled stream from the page: a WebSocket to the relay's /v1/stream (docs/relay-api.md,
 * "WebSocket"), the hello and the relay's reply as on TCP, then records (src/core/record-web.ts)
 * both ways. Binary messages carry bytes; an empty one ends a direction.
 */
import { TscCrocError } from '../core/errors.js';
import { encodeMessage, type Message } from '../core/messages.js';
import { displayName } from '../core/path.js';
import { MAX_HELLO_BYTES, RELAY_PROTOCOL_VERSION, isTcpReply, type JoinResponse } from '../core/relay-api.js';
import { knownRefusal } from '../core/relay-words.js';
import { RecordType, WebRecordOpener, WebRecordSealer, type WebOpenedRecord } from '../core/record-web.js';
import { utf8, fromUtf8 } from '../core/utf8.js';
import { passwordRefused } from './relay.js';

/** Bytes we let the WebSocket buffer before waiting for it to drain (the WebSocket API). */
const SEND_QUEUE_BYTES = 4 * 1024 * 1024;
/** A keepalive goes out after this long without sending (the relay cuts idle pairs; docs/protocol.md §6). */
const KEEPALIVE_MS = 15_000;
/** How long we wait for the relay to staple us. */
const STAPLE_MS = 60_000;
/** How long we wait on a full send queue before calling the connection stalled. */
const STALL_MS = 120_000;

function helloFrame(channel: string, uuid: string, password: string | undefined): Uint8Array {
  const json = utf8(JSON.stringify({ v: RELAY_PROTOCOL_VERSION, channel, uuid, ...(password === undefined ? {} : { password }) }));
  if (json.length > MAX_HELLO_BYTES) throw new RangeError('hello too large');
  const out = new Uint8Array(2 + json.length);
  new DataView(out.buffer).setUint16(0, json.length);
  out.set(json, 2);
  return out;
}

/** Bytes both ways over the relay's WebSocket: binary messages carry bytes, an empty one ends a direction. */
interface Wire {
  /** The next chunk received; null once the other side ended its direction; throws when the connection is gone. */
  next(): Promise<Uint8Array | null>;
  /** Put bytes back in front (the rest of the relay's reply). */
  unshift(b: Uint8Array): void;
  /** Send one message; resolves when there is room for the next (the connection's backpressure). */
  send(b: Uint8Array): Promise<void>;
  /** Send what is queued, then close cleanly (bounded by STALL_MS). */
  close(): Promise<void>;
  /** Cut the connection. */
  abort(): void;
}

const lost = (): TscCrocError => new TscCrocError('ERR_CONNECTION_LOST', 'the connection to the relay was lost');
const unreachable = (origin: string): TscCrocError => new TscCrocError('ERR_RELAY_UNREACHABLE', `cannot open the relay's stream at ${origin}`);
const textOnStream = (): TscCrocError => new TscCrocError('ERR_RELAY', 'the relay sent text on the stream');
const stalled = (): TscCrocError => new TscCrocError('ERR_STALLED', 'the connection stalled: nothing moved for 120 s');

/** `p`, or `onTimeout()` thrown after `ms`. */
async function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * WebSocketStream (Chromium 124+): its readable is read only as fast as the page takes records,
 * so the browser stops reading the socket when the page is behind (TCP's flow control reaches
 * the sender through the relay) and received bytes never pile up in the page.
 */
class StreamWire implements Wire {
  readonly #wss: WebSocketStream;
  readonly #reader: ReadableStreamDefaultReader<ArrayBuffer | string>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array | string>;
  #rest: Uint8Array[] = [];
  #ended = false;
  #writeError: unknown = null;

  private constructor(wss: WebSocketStream, readable: ReadableStream<ArrayBuffer | string>, writable: WritableStream<Uint8Array | string>) {
    this.#wss = wss;
    this.#reader = readable.getReader();
    this.#writer = writable.getWriter();
  }

  static async open(url: URL, origin: string): Promise<StreamWire> {
    const wss = new WebSocketStream!(url.href);
    wss.closed.catch(() => undefined);
    try {
      const { readable, writable } = await within(wss.opened, STAPLE_MS, () => new TscCrocError('ERR_TIMEOUT', 'timed out connecting to the relay'));
      return new StreamWire(wss, readable, writable);
    } catch (e) {
      wss.close();
      throw e instanceof TscCrocError ? e : unreachable(origin);
    }
  }

  async next(): Promise<Uint8Array | null> {
    const r = this.#rest.shift();
    if (r !== undefined) return r;
    if (this.#ended) return null;
    let got: ReadableStreamReadResult<ArrayBuffer | string>;
    try {
      got = await this.#reader.read();
    } catch {
      throw lost();
    }
    if (got.done) throw lost();
    if (typeof got.value === 'string') throw textOnStream();
    if (got.value.byteLength === 0) {
      this.#ended = true;
      return null;
    }
    return new Uint8Array(got.value);
  }

  unshift(b: Uint8Array): void {
    if (b.length > 0) this.#rest.unshift(b);
  }

  async send(b: Uint8Array): Promise<void> {
    if (this.#writeError !== null) throw lost();
    try {
      await within(this.#writer.ready, STALL_MS, stalled);
    } catch (e) {
      throw e instanceof TscCrocError ? e : lost();
    }
    this.#writer.write(b).catch((e: unknown) => (this.#writeError ??= e));
  }

  async close(): Promise<void> {
    try {
      // every queued write goes out first (the writable closes after its queue)
      await within(this.#writer.close(), STALL_MS, stalled);
    } catch {
      // closed below all the same
    }
    this.#wss.close({ closeCode: 1000 });
  }

  abort(): void {
    try {
      this.#wss.close({ closeCode: 1000 });
    } catch {
      // already closed
    }
  }
}

/**
 * The WebSocket API (every browser): messages are delivered as they come, whatever the page's
 * pace, so a page slower than its sender holds the difference (the browser has no backpressure
 * for it); sending waits while SEND_QUEUE_BYTES are queued.
 */
class SocketWire implements Wire {
  readonly #ws: WebSocket;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
      if (typeof ev.data === 'string') return this.#fail(textOnStream());
      if (ev.data.byteLength === 0) this.#ended = true;
      else this.#chunks.push(new Uint8Array(ev.data));
      this.#notify();
    };
    ws.onclose = () => this.#fail(lost());
  }

  static async open(url: URL, origin: string): Promise<SocketWire> {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.close();
        reject(new TscCrocError('ERR_TIMEOUT', 'timed out connecting to the relay'));
      }, STAPLE_MS);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(unreachable(origin));
      };
    });
    return new SocketWire(ws);
  }

  #fail(e: Error): void {
    this.#error ??= e;
    this.#notify();
  }
  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const c = this.#chunks.shift();
      if (c !== undefined) return c;
      if (this.#ended) return null;
      if (this.#error) throw this.#error;
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  unshift(b: Uint8Array): void {
    if (b.length > 0) this.#chunks.unshift(b);
  }

  async send(b: Uint8Array): Promise<void> {
    const since = Date.now();
    while (this.#ws.bufferedAmount > SEND_QUEUE_BYTES) {
      if (this.#ws.readyState !== WebSocket.OPEN) throw lost();
      if (Date.now() - since > STALL_MS) throw stalled();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.#ws.readyState !== WebSocket.OPEN) throw lost();
    this.#ws.send(b as Uint8Array<ArrayBuffer>);
  }

  async close(): Promise<void> {
    const since = Date.now();
    while (this.#ws.bufferedAmount > 0 && this.#ws.readyState === WebSocket.OPEN && Date.now() - since < STALL_MS) await new Promise((r) => setTimeout(r, 10));
    this.#ws.close(1000);
  }

  abort(): void {
    try {
      this.#ws.close(1000);
    } catch {
      // already closed
    }
  }
}

export interface StreamKeys {
  /** The key we seal with. */
  send: Uint8Array;
  /** The key the other side seals with. */
  receive: Uint8Array;
}

/** An encrypted, ordered record stream over the relay's WebSocket. */
/**
 * Records opened ahead of the page's writes: while the page writes one record, the next ones are
 * read and decrypted (at most this many waiting, each at most 1 MiB), so decryption and network
 * overlap the disk; with the wire's backpressure the page's memory stays bounded.
 */
const RECORDS_AHEAD = 8;

/** Wakes one waiter (or nobody). */
class Signal {
  #wake: (() => void) | null = null;
  wait(): Promise<void> {
    return new Promise((r) => (this.#wake = r));
  }
  notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}

/** An encrypted, ordered record stream over the relay's WebSocket. */
export class WebChannel {
  readonly #wire: Wire;
  readonly #sealer: WebRecordSealer;
  readonly #opener: WebRecordOpener;
  #lastSent = Date.now();
  #open = true;
  #sending: Promise<void> = Promise.resolve();
  readonly #keepalive: ReturnType<typeof setInterval>;

  private constructor(wire: Wire, keys: StreamKeys) {
    this.#wire = wire;
    this.#sealer = new WebRecordSealer(keys.send);
    this.#opener = new WebRecordOpener(keys.receive);
    this.#keepalive = setInterval(() => {
      if (Date.now() - this.#lastSent >= KEEPALIVE_MS && this.#open) void this.sendMessage({ type: 'keepalive' }).catch(() => undefined);
    }, KEEPALIVE_MS / 3);
  }

  /** Open the WebSocket (WebSocketStream where the browser has it), send the hello, wait for `stapled`. */
  static async open(origin: string, join: JoinResponse, keys: StreamKeys, password?: string): Promise<WebChannel> {
    const url = new URL('/v1/stream', origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const wire: Wire = typeof WebSocketStream === 'function' ? await StreamWire.open(url, origin) : await SocketWire.open(url, origin);
    try {
      await wire.send(helloFrame(join.channel, join.uuid, password));
      // the reply: u16be length, then JSON
      const reply = async (): Promise<void> => {
        let buf = new Uint8Array(0);
        for (;;) {
          if (buf.length >= 2) {
            const len = (buf[0]! << 8) | buf[1]!;
            if (len === 0 || len > MAX_HELLO_BYTES) throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed reply');
            if (buf.length >= 2 + len) {
              let body: unknown;
              try {
                body = JSON.parse(fromUtf8(buf.subarray(2, 2 + len)));
              } catch {
                throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed reply');
              }
              if (!isTcpReply(body)) throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed reply');
              if (body.type === 'error' && body.code === 'ERR_UNAUTHORIZED') throw passwordRefused();
              if (body.type === 'error')
                throw knownRefusal(body.code) ?? new TscCrocError('ERR_RELAY', `the relay refused the TCP connection: ${displayName(body.message.slice(0, 200))}`);
              wire.unshift(buf.subarray(2 + len));
              return;
            }
          }
          const c = await wire.next();
          if (c === null) throw new TscCrocError('ERR_RELAY', 'the relay ended the stream before stapling');
          const next = new Uint8Array(buf.length + c.length);
          next.set(buf);
          next.set(c, buf.length);
          buf = next;
        }
      };
      await within(reply(), STAPLE_MS, () => new TscCrocError('ERR_TIMEOUT', 'timed out waiting for the other side to connect to the relay'));
    } catch (e) {
      wire.abort();
      throw e;
    }
    return new WebChannel(wire, keys);
  }

  /**
   * The other side's records, in order, up to its END; then the stream must end. Up to
   * RECORDS_AHEAD records are read and opened ahead of the caller (a failure comes after the
   * records opened before it, as it would one at a time).
   */
  async *records(): AsyncGenerator<WebOpenedRecord> {
    const queue: WebOpenedRecord[] = [];
    let finished = false;
    let failure: unknown = null;
    let stopped = false;
    const ready = new Signal();
    const room = new Signal();
    void (async () => {
      try {
        while (!stopped) {
          if (queue.length >= RECORDS_AHEAD) {
            await room.wait();
            continue;
          }
          let c: Uint8Array | null;
          try {
            c = await this.#wire.next();
          } catch (e) {
            // after the END record the stream is complete, however the connection then goes
            if (this.#opener.ended) return;
            this.#opener.finish(); // ERR_RECORD_TRUNCATED, in the CLI's words
            throw e;
          }
          if (c === null) {
            this.#opener.finish();
            return;
          }
          for (const r of await this.#opener.push(c)) queue.push(r);
          ready.notify();
        }
      } catch (e) {
        failure = e;
      } finally {
        finished = true;
        ready.notify();
      }
    })();
    try {
      for (;;) {
        const r = queue.shift();
        if (r !== undefined) {
          room.notify();
          yield r;
        } else if (finished) {
          if (failure !== null) throw failure;
          return;
        } else await ready.wait();
      }
    } finally {
      stopped = true;
      room.notify();
    }
  }

  sendMessage(m: Message): Promise<void> {
    return this.send(RecordType.MESSAGE, encodeMessage(m));
  }

  /** Seal and send one record, in order; waits while the connection's queue is full. */
  send(type: (typeof RecordType)[keyof typeof RecordType], payload?: Uint8Array): Promise<void> {
    const p = this.#sending.then(async () => {
      const frame = await this.#sealer.seal(type, payload);
      await this.#wire.send(frame);
      this.#lastSent = Date.now();
    });
    this.#sending = p.catch(() => undefined);
    return p;
  }

  /** Send our END record, then end our direction. */
  async end(): Promise<void> {
    await this.send(RecordType.END);
    clearInterval(this.#keepalive);
    await this.#wire.send(new Uint8Array(0));
  }

  /** Send everything queued, then close. */
  async close(): Promise<void> {
    clearInterval(this.#keepalive);
    this.#open = false;
    await this.#wire.close();
  }

  /** Cut the connection (after an error). */
  abort(): void {
    clearInterval(this.#keepalive);
    this.#open = false;
    this.#wire.abort();
  }
}
