/**
 * Shared by the relay-*.test.ts files: a raw TCP test client, joins and the HTTP handshake through
 * inject(), and bounded waits on events (never a sleep).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  RELAY_PROTOCOL_VERSION,
  encodeControlFrame,
  isTcpReply,
  parseControlFrame,
  type ChannelState,
  type JoinResponse,
  type TcpReply,
} from '../src/core/relay-api.js';
import { buildRelay, type Relay, type RelayOptions } from '../src/relay/index.js';

export const WAIT_MS = 10_000;
export const X = 'a1'.repeat(32);
export const Y = 'b2'.repeat(32);
export const HH_K = 'c3'.repeat(32);
export const H_K = 'd4'.repeat(32);

/** A raw TCP client: records what it receives; tests wait on conditions over it. */
export class Client {
  readonly socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #reply: TcpReply | undefined;
  #checks = new Set<() => void>();
  received = 0;
  ended = false;
  closed = false;

  constructor(socket: net.Socket, options: { keep?: boolean } = {}) {
    this.socket = socket;
    const keep = options.keep ?? true;
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (keep || this.#reply === undefined) this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#notify();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, options: { allowHalfOpen?: boolean; keep?: boolean } = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: options.allowHalfOpen ?? false });
      socket.once('connect', () => resolve(new Client(socket, options)));
      socket.once('error', reject);
    });
  }

  hello(channel: string, uuid: string, extra?: { password?: string; data?: Buffer }): void {
    const body = extra?.password === undefined
      ? { v: RELAY_PROTOCOL_VERSION, channel, uuid }
      : { v: RELAY_PROTOCOL_VERSION, channel, uuid, password: extra.password };
    const frame = encodeControlFrame(body);
    this.socket.write(extra?.data ? Buffer.concat([frame, extra.data]) : frame);
  }

  /** The relay's control frame (the first thing it sends). */
  async reply(): Promise<TcpReply> {
    await this.until(() => this.#reply !== undefined || parseControlFrame(this.#buf).kind !== 'need-more' || this.ended || this.closed, 'a reply');
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

/** Resolve once `pred` holds, checked after each turn of the event loop; reject after `ms`. */
export async function until(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Resolve when the channel's state satisfies `pred` (checked on every change), or reject after WAIT_MS. */
export function stateUntil(relay: Relay, channel: string, pred: (s: ChannelState | undefined) => boolean, what: string): Promise<void> {
  if (pred(relay.store.get(channel))) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const unsubscribe = relay.store.subscribe(channel, () => {
      if (!pred(relay.store.get(channel))) return;
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out waiting for ${what}`));
    }, WAIT_MS);
  });
}

export interface Answer<B = Record<string, unknown>> {
  status: number;
  body: B;
  headers: Record<string, unknown>;
}

export async function post<B = Record<string, unknown>>(
  relay: Relay,
  url: string,
  payload: unknown,
  options: { remoteAddress?: string; headers?: Record<string, string> } = {},
): Promise<Answer<B>> {
  const res = await relay.app.inject({ method: 'POST', url, payload: payload as object, ...options });
  return { status: res.statusCode, body: res.json() as B, headers: res.headers };
}

export function expectError(a: Answer<unknown>, status: number, code: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal((a.body as { code: string }).code, code);
  assert.equal(typeof (a.body as { message: string }).message, 'string');
  assert.deepEqual(Object.keys(a.body as object).sort(), ['code', 'message']);
}

export interface Seats {
  channel: string;
  sender: string;
  recipient: string;
  tcpPort: number;
}

/** Join both peers and run the HTTP handshake up to h_k (the stapler admits peers only after it). */
export async function seat(relay: Relay, options: { handshake?: boolean; password?: string } = {}): Promise<Seats> {
  const pw = options.password === undefined ? {} : { password: options.password };
  const s = await post<JoinResponse>(relay, '/join', { role: 'sender', ...pw });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  const r = await post<JoinResponse>(relay, '/join', { role: 'recipient', channel: s.body.channel, ...pw });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const channel = s.body.channel;
  if (options.handshake !== false) {
    for (const body of [
      { channel, uuid: s.body.uuid, x: X },
      { channel, uuid: r.body.uuid, y: Y, hh_k: HH_K },
      { channel, uuid: s.body.uuid, h_k: H_K },
    ]) {
      const a = await post(relay, '/channel', body);
      assert.equal(a.status, 200, JSON.stringify(a.body));
    }
  }
  return { channel, sender: s.body.uuid, recipient: r.body.uuid, tcpPort: s.body.tcpPort };
}

/** Seat two peers and staple raw connections. */
export async function staple(relay: Relay, options: { allowHalfOpen?: boolean; keep?: boolean; password?: string } = {}): Promise<Seats & { a: Client; b: Client }> {
  const seats = await seat(relay, options);
  const pw = options.password === undefined ? {} : { password: options.password };
  const a = await Client.connect(seats.tcpPort, options);
  a.hello(seats.channel, seats.sender, pw);
  const b = await Client.connect(seats.tcpPort, options);
  b.hello(seats.channel, seats.recipient, pw);
  assert.deepEqual(await a.reply(), { v: 1, type: 'stapled' });
  assert.deepEqual(await b.reply(), { v: 1, type: 'stapled' });
  return { ...seats, a, b };
}

/** Expect an error reply with `code`, then the end of the connection. */
export async function expectRefused(client: Client, code: string): Promise<void> {
  const reply = await client.reply();
  assert.equal(reply.type, 'error');
  assert.equal(reply.type === 'error' && reply.code, code);
  await client.until(() => client.closed, 'the socket to close');
}

/** A listening relay on 127.0.0.1, ports 0, closed after `fn`. */
export function withRelay(options: Partial<RelayOptions>, fn: (relay: Relay) => Promise<void>): () => Promise<void> {
  return async () => {
    const relay = buildRelay({ port: 0, tcpPort: 0, ...options });
    await relay.listen();
    try {
      await fn(relay);
    } finally {
      await relay.close();
    }
  };
}

/** A scraped metric's value (labels as `name{a="b"}`), or undefined. */
export async function metric(relay: Relay, name: string): Promise<number | undefined> {
  const res = await relay.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  for (const line of res.body.split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (line.slice(0, i) === name) return Number(line.slice(i + 1));
  }
  return undefined;
}
