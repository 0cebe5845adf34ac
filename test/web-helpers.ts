/** A raw WebSocket peer of the stapler (GET /v1/stream), the WebSocket twin of relay-helpers' Client. */
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { RELAY_PROTOCOL_VERSION, encodeControlFrame, isTcpReply, parseControlFrame, type TcpReply } from '../src/core/relay-api.js';
import { WAIT_MS } from './relay-helpers.js';

export class WsClient {
  readonly ws: WebSocket;
  #buf: Buffer = Buffer.alloc(0);
  #reply: TcpReply | undefined;
  #checks = new Set<() => void>();
  received = 0;
  /** The relay ended its direction (an empty binary message). */
  ended = false;
  closed = false;
  closeCode = 0;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      if (data.length === 0) this.ended = true;
      this.received += data.length;
      this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
      this.#notify();
    });
    ws.on('close', (code: number) => {
      this.closed = true;
      this.closeCode = code;
      this.#notify();
    });
    ws.on('error', () => {});
  }

  static connect(httpPort: number, options: { localAddress?: string; path?: string } = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${httpPort}${options.path ?? '/v1/stream'}`, {
        perMessageDeflate: false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  send(data: Uint8Array): void {
    this.ws.send(data, { binary: true });
  }

  hello(channel: string, uuid: string, extra?: { password?: string; data?: Buffer }): void {
    const body = extra?.password === undefined ? { v: RELAY_PROTOCOL_VERSION, channel, uuid } : { v: RELAY_PROTOCOL_VERSION, channel, uuid, password: extra.password };
    const frame = encodeControlFrame(body);
    this.send(extra?.data ? Buffer.concat([frame, extra.data]) : frame);
  }

  /** End our direction (the WebSocket's half-close). */
  end(): void {
    this.ws.send(new Uint8Array(0), { binary: true });
  }

  async reply(): Promise<TcpReply> {
    await this.until(() => parseControlFrame(this.#buf).kind !== 'need-more' || this.#reply !== undefined || this.closed, 'a reply');
    if (this.#reply === undefined) {
      const parsed = parseControlFrame(this.#buf);
      assert.equal(parsed.kind, 'frame', 'the relay answers a control frame');
      if (parsed.kind !== 'frame') throw new Error('unreachable');
      assert.ok(isTcpReply(parsed.body), 'the frame is a reply');
      this.#reply = parsed.body;
      this.#buf = Buffer.from(parsed.rest);
    }
    return this.#reply;
  }

  get data(): Buffer {
    return this.#buf;
  }

  until(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        this.#checks.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#checks.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.#checks.add(check);
    });
  }

  #notify(): void {
    for (const check of [...this.#checks]) check();
  }
}
