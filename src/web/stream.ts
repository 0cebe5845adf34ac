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

/** Bytes we let the WebSocket buffer before waiting for it to drain. */
const SEND_QUEUE_BYTES = 4 * 1024 * 1024;
/** A keepalive goes out after this long without sending (the relay cuts idle pairs; docs/protocol.md §6). */
const KEEPALIVE_MS = 15_000;
/** How long we wait for the relay to staple us. */
const STAPLE_MS = 60_000;
/** How long we wait on a full send queue before calling the connection stalled. */
const STALL_MS = 120_000;

function helloFrame(channel: string, uuid: string): Uint8Array {
  const json = utf8(JSON.stringify({ v: RELAY_PROTOCOL_VERSION, channel, uuid }));
  if (json.length > MAX_HELLO_BYTES) throw new RangeError('hello too large');
  const out = new Uint8Array(2 + json.length);
  new DataView(out.buffer).setUint16(0, json.length);
  out.set(json, 2);
  return out;
}

/** A byte queue fed by the WebSocket, read by one consumer. */
class Inbox {
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;

  push(b: Uint8Array): void {
    this.#chunks.push(b);
    this.#notify();
  }
  end(): void {
    this.#ended = true;
    this.#notify();
  }
  fail(e: Error): void {
    this.#error ??= e;
    this.#notify();
  }
  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
  /** The next chunk, or null at the end; throws the connection's error. */
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
}

export interface StreamKeys {
  /** The key we seal with. */
  send: Uint8Array;
  /** The key the other side seals with. */
  receive: Uint8Array;
}

/** An encrypted, ordered record stream over the relay's WebSocket. */
export class WebChannel {
  readonly #ws: WebSocket;
  readonly #inbox: Inbox;
  readonly #sealer: WebRecordSealer;
  readonly #opener: WebRecordOpener;
  #lastSent = Date.now();
  #sending: Promise<void> = Promise.resolve();
  readonly #keepalive: ReturnType<typeof setInterval>;

  private constructor(ws: WebSocket, inbox: Inbox, keys: StreamKeys) {
    this.#ws = ws;
    this.#inbox = inbox;
    this.#sealer = new WebRecordSealer(keys.send);
    this.#opener = new WebRecordOpener(keys.receive);
    this.#keepalive = setInterval(() => {
      if (Date.now() - this.#lastSent >= KEEPALIVE_MS && this.#ws.readyState === WebSocket.OPEN) void this.sendMessage({ type: 'keepalive' }).catch(() => undefined);
    }, KEEPALIVE_MS / 3);
  }

  /** Open the WebSocket, send the hello, wait for `stapled`. */
  static async open(origin: string, join: JoinResponse, keys: StreamKeys): Promise<WebChannel> {
    const url = new URL('/v1/stream', origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const inbox = new Inbox();
    ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
      if (typeof ev.data === 'string') return inbox.fail(new TscCrocError('ERR_RELAY', 'the relay sent text on the stream'));
      if (ev.data.byteLength === 0) inbox.end();
      else inbox.push(new Uint8Array(ev.data));
    };
    ws.onclose = () => inbox.fail(new TscCrocError('ERR_CONNECTION_LOST', 'the connection to the relay was lost'));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new TscCrocError('ERR_TIMEOUT', 'timed out connecting to the relay')), STAPLE_MS);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new TscCrocError('ERR_RELAY_UNREACHABLE', `cannot open the relay's stream at ${origin}`));
      };
    });
    ws.send(helloFrame(join.channel, join.uuid));
    // the reply: u16be length, then JSON
    let buf = new Uint8Array(0);
    const deadline = setTimeout(() => inbox.fail(new TscCrocError('ERR_TIMEOUT', 'timed out waiting for the other side to connect to the relay')), STAPLE_MS);
    try {
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
            if (body.type === 'error')
              throw knownRefusal(body.code) ?? new TscCrocError('ERR_RELAY', `the relay refused the TCP connection: ${displayName(body.message.slice(0, 200))}`);
            inbox.unshift(buf.subarray(2 + len));
            return new WebChannel(ws, inbox, keys);
          }
        }
        const c = await inbox.next();
        if (c === null) throw new TscCrocError('ERR_RELAY', 'the relay ended the stream before stapling');
        const next = new Uint8Array(buf.length + c.length);
        next.set(buf);
        next.set(c, buf.length);
        buf = next;
      }
    } catch (e) {
      ws.close();
      throw e;
    } finally {
      clearTimeout(deadline);
    }
  }

  /** The other side's records, in order, up to its END; then the stream must end. */
  async *records(): AsyncGenerator<WebOpenedRecord> {
    for (;;) {
      let c: Uint8Array | null;
      try {
        c = await this.#inbox.next();
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
      for (const r of await this.#opener.push(c)) yield r;
    }
  }

  sendMessage(m: Message): Promise<void> {
    return this.send(RecordType.MESSAGE, encodeMessage(m));
  }

  /** Seal and send one record, in order; waits while the WebSocket's queue is full. */
  send(type: (typeof RecordType)[keyof typeof RecordType], payload?: Uint8Array): Promise<void> {
    const p = this.#sending.then(async () => {
      const frame = await this.#sealer.seal(type, payload);
      const since = Date.now();
      while (this.#ws.bufferedAmount > SEND_QUEUE_BYTES) {
        if (this.#ws.readyState !== WebSocket.OPEN) throw new TscCrocError('ERR_CONNECTION_LOST', 'the connection to the relay was lost');
        if (Date.now() - since > STALL_MS) throw new TscCrocError('ERR_STALLED', 'the connection stalled: nothing moved for 120 s');
        await new Promise((r) => setTimeout(r, 5));
      }
      if (this.#ws.readyState !== WebSocket.OPEN) throw new TscCrocError('ERR_CONNECTION_LOST', 'the connection to the relay was lost');
      this.#ws.send(frame);
      this.#lastSent = Date.now();
    });
    this.#sending = p.catch(() => undefined);
    return p;
  }

  /** Send our END record, then end our direction. */
  async end(): Promise<void> {
    await this.send(RecordType.END);
    clearInterval(this.#keepalive);
    this.#ws.send(new Uint8Array(0));
  }

  /** Wait until the WebSocket has sent everything, then close it. */
  async close(): Promise<void> {
    clearInterval(this.#keepalive);
    const since = Date.now();
    while (this.#ws.bufferedAmount > 0 && this.#ws.readyState === WebSocket.OPEN && Date.now() - since < STALL_MS) await new Promise((r) => setTimeout(r, 10));
    this.#ws.close(1000);
  }

  /** Cut the connection (after an error). */
  abort(): void {
    clearInterval(this.#keepalive);
    try {
      this.#ws.close(1000);
    } catch {
      // already closed
    }
  }
}
