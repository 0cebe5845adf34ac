/**
 * Shared by the relay-*.test.ts files: a raw TCP test client, joins and the HTTP handshake through
 * inject(), and bounded waits on events (never a sleep).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  RELAY_PROTOCOL_VERSION,
  encodeControlFrame,
  isTcpReply,
  parseControlFrame,
  type ChannelState,
  type JoinResponse,
  type TcpReply,
} from '../src/core/relay-api.js';
import { after, before, describe } from 'node:test';
import { buildRelay, startRelay, type Relay, type RelayOptions, type RunningRelay } from '../src/relay/index.js';
import { RedisServer, redisSkip } from './helpers/redis.js';

export const WAIT_MS = 10_000;
export const X = 'a1'.repeat(32);
export const Y = 'b2'.repeat(32);
export const HH_K = 'c3'.repeat(32);
export const H_K = 'd4'.repeat(32);

/**
 * A raw peer of the stapler, over TCP (Client) or a WebSocket (web-helpers' WsClient): records what
 * it receives; tests wait on conditions over it.
 */
export abstract class StaplerPeer {
  #buf: Buffer = Buffer.alloc(0);
  #reply: TcpReply | undefined;
  #checks = new Set<() => void>();
  readonly #keep: boolean;
  received = 0;
  /** The relay ended its direction. */
  ended = false;
  closed = false;

  protected constructor(keep: boolean) {
    this.#keep = keep;
  }

  /** Send bytes to the relay. */
  abstract write(data: Uint8Array): void;

  /** Bytes from the relay (kept unless `keep` is false, then only until the reply). */
  protected took(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.#keep || this.#reply === undefined) this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.notify();
  }

  /** Something a condition may wait on changed. */
  protected notify(): void {
    for (const check of [...this.#checks]) check();
  }

  hello(channel: string, uuid: string, extra?: { password?: string; data?: Buffer }): void {
    const body = extra?.password === undefined
      ? { v: RELAY_PROTOCOL_VERSION, channel, uuid }
      : { v: RELAY_PROTOCOL_VERSION, channel, uuid, password: extra.password };
    const frame = encodeControlFrame(body);
    this.write(extra?.data ? Buffer.concat([frame, extra.data]) : frame);
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
}

/** A raw TCP peer of the stapler. */
export class Client extends StaplerPeer {
  readonly socket: net.Socket;

  constructor(socket: net.Socket, options: { keep?: boolean } = {}) {
    super(options.keep ?? true);
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.took(chunk));
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, options: { allowHalfOpen?: boolean; keep?: boolean; localAddress?: string } = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: '127.0.0.1',
        port,
        allowHalfOpen: options.allowHalfOpen ?? false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
      socket.once('connect', () => resolve(new Client(socket, options)));
      socket.once('error', reject);
    });
  }

  write(data: Uint8Array): void {
    this.socket.write(data);
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

/** Resolve when the channel's state satisfies `pred` (read again on every change, from any process), or reject after WAIT_MS. */
export function stateUntil(relay: Relay, channel: string, pred: (s: ChannelState | undefined) => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      if (err === undefined) resolve();
      else reject(err);
    };
    const check = async (): Promise<void> => {
      try {
        if (!done && pred(await relay.store.get(channel))) finish();
      } catch {
        // the store is unreachable now: the next change reads again
      }
    };
    const unsubscribe = relay.store.subscribe(channel, () => void check());
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    void check();
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
  return stapleSeats(await seat(relay, options), options);
}

/** Connect the two seated peers to the stapler (a: sender, b: recipient); both are told `stapled`. */
export async function stapleSeats(seats: Seats, options: { allowHalfOpen?: boolean; keep?: boolean; password?: string } = {}): Promise<Seats & { a: Client; b: Client }> {
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

// ---------------------------------------------------------------- both stores

/** One of the relay's stores, for running a suite against each (docs/relay-api.md "Stores"). */
export interface StoreVariant {
  readonly name: 'memory' | 'redis';
  /** `options` with this store (Redis: a fresh key prefix, so that every relay starts empty). */
  options(options?: Partial<RelayOptions>): Partial<RelayOptions>;
  /** buildRelay with this store (not listening: inject()). */
  build(options?: Partial<RelayOptions>): Relay;
  /** A relay with this store, not listening (inject()), closed after `fn`. */
  inject(options: Partial<RelayOptions>, fn: (relay: Relay) => Promise<void>): () => Promise<void>;
  /** A listening relay with this store on 127.0.0.1, ports 0, closed after `fn`. */
  withRelay(options: Partial<RelayOptions>, fn: (relay: Relay) => Promise<void>): () => Promise<void>;
  start(options?: Partial<RelayOptions>): Promise<RunningRelay>;
  /** The Redis server of the redis variant (started before its suite, stopped after). */
  readonly redis: RedisServer | undefined;
}

let prefixes = 0;

function variant(name: 'memory' | 'redis', server: () => RedisServer | undefined): StoreVariant {
  const v: StoreVariant = {
    name,
    get redis() {
      return server();
    },
    options(options = {}) {
      const r = server();
      if (name === 'memory' || r === undefined) return options;
      return { storePrefix: `t${process.pid}-${++prefixes}:`, ...options, store: r.url };
    },
    build: (options = {}) => buildRelay(v.options(options)),
    inject: (options, fn) => async () => {
      const relay = v.build(options);
      try {
        await fn(relay);
      } finally {
        await relay.close();
      }
    },
    withRelay: (options, fn) => withRelay(v.options(options), fn),
    start: (options = {}) => startRelay(v.options(options)),
  };
  return v;
}

export const MEMORY_STORE: StoreVariant = variant('memory', () => undefined);

/**
 * Define the suite `fn` twice: 'memory store' and 'redis store' (a real redis-server on a free
 * loopback port, for this file; skipped with the reason when redis-server is not installed).
 */
export function forEachStore(fn: (store: StoreVariant) => void, options: { redis?: boolean } = {}): void {
  describe('memory store', () => fn(MEMORY_STORE));
  if (options.redis === false) return;
  let server: RedisServer | undefined;
  const skip = redisSkip();
  describe('redis store', skip === undefined ? {} : { skip }, () => {
    before(async () => {
      server = await RedisServer.start();
    });
    after(async () => {
      await server?.stop();
    });
    fn(variant('redis', () => server));
  });
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

// ---------------------------------------------------------------- the built CLI relay as a child process

export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export interface RelayProcess {
  child: ChildProcess;
  httpPort: number;
  tcpPort: number;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Resolve when `re` matches stderr; reject after `ms`. */
  waitFor: (re: RegExp, ms?: number) => Promise<void>;
  /** Resolve with the exit code (128 + n for a signal); reject after `ms`. */
  exit: (ms?: number) => Promise<number>;
}

/** Spawn `tsc-croc relay` (the Dockerfile's command) with `env`; resolve once it prints its ports. */
export async function spawnRelay(args: string[], env: NodeJS.ProcessEnv = {}, cli = CLI): Promise<RelayProcess> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TSC_CROC_')) childEnv[k] = v;
  const child = spawn(process.execPath, [cli, 'relay', ...args], { env: { ...childEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const poke = (): void => listeners.forEach((l) => l());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), poke()));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => ((err += d), poke()));
  let code: number | undefined;
  child.once('exit', (c, sig) => {
    code = c ?? 128 + (sig === 'SIGKILL' ? 9 : 15);
    poke();
  });
  const wait = (pred: () => boolean, what: string, ms: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        listeners.delete(check);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}\n--- stderr:\n${err.slice(-2000)}`));
      }, ms);
      listeners.add(check);
      check();
    });
  const waitFor = (re: RegExp, ms = WAIT_MS): Promise<void> => wait(() => re.test(err), String(re), ms);
  const exit = async (ms = WAIT_MS): Promise<number> => {
    await wait(() => code !== undefined, 'the relay to exit', ms).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
    return code!;
  };
  await wait(() => /HTTP on \S+:\d+, TCP on \S+:\d+/.test(err) || code !== undefined, 'the relay to start', WAIT_MS);
  const m = /HTTP on \S+:(\d+), TCP on \S+:(\d+)/.exec(err);
  if (m === null) throw new Error(`the relay did not start (exit ${code}):\n${err}`);
  const httpPort = Number(m[1]);
  return { child, httpPort, tcpPort: Number(m[2]), url: `http://127.0.0.1:${httpPort}`, stdout: () => out, stderr: () => err, waitFor, exit };
}

/** POST JSON over real HTTP. */
export async function httpPost<B = Record<string, unknown>>(url: string, body: object): Promise<{ status: number; body: B }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as B };
}

/** Join both peers over real HTTP and run the handshake up to h_k. */
export async function seatOverHttp(url: string): Promise<Seats> {
  const s = await httpPost<JoinResponse>(`${url}/join`, { role: 'sender' });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  const r = await httpPost<JoinResponse>(`${url}/join`, { role: 'recipient', channel: s.body.channel });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const channel = s.body.channel;
  for (const body of [
    { channel, uuid: s.body.uuid, x: X },
    { channel, uuid: r.body.uuid, y: Y, hh_k: HH_K },
    { channel, uuid: s.body.uuid, h_k: H_K },
  ]) {
    const a = await httpPost(`${url}/channel`, body);
    assert.equal(a.status, 200, JSON.stringify(a.body));
  }
  return { channel, sender: s.body.uuid, recipient: r.body.uuid, tcpPort: s.body.tcpPort };
}

/** Peak resident set (VmHWM) and CPU seconds (user + system) of a process, from /proc (Linux); undefined elsewhere. */
export function procUsage(pid: number): { peakRssBytes: number; cpuSeconds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15 of stat)
    if (hwm === null || !Number.isFinite(ticks)) return undefined;
    return { peakRssBytes: Number(hwm[1]) * 1024, cpuSeconds: ticks / 100 };
  } catch {
    return undefined;
  }
}
