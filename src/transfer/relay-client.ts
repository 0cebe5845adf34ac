/**
 * The peer's side of the relay's HTTP API (POST /join, POST /channel). Every relay answer is
 * checked before use; relay errors become typed TscCrocErrors with a message for humans.
 * The relay is not trusted with anything secret: it only ever sees the public channel state.
 */
import type { Agent as HttpAgent, AgentOptions, request as httpRequest } from 'node:http';
import { Http1Connections, type Http1Exchange } from './http1.js';
import { TscCrocError } from '../core/errors.js';
import { closedError, knownRefusal } from '../core/relay-words.js';

export { closedError, knownRefusal } from '../core/relay-words.js';
import { displayName } from '../core/path.js';
import { isTcpHost, tcpHostRefusal } from '../core/tcp-host.js';
import { brokenError, netError, notARelayError, type NetTarget } from './net-errors.js';
import {
  CHANNEL_PATTERN,
  CLOSE_REASONS,
  CURVES,
  MAX_PASSWORD_LENGTH,
  UUID_PATTERN,
  RELAY_PROTOCOL_VERSION,
  type ChannelRequest,
  type ChannelState,
  type CloseReason,
  type JoinRequest,
  type JoinResponse,
  type Role,
} from '../core/relay-api.js';

/** How long one long-poll asks the relay to hold its answer. */
const LONG_POLL_MS = 25_000;
/** How long a single HTTP exchange may take beyond the long-poll hold. */
const REQUEST_SLACK_MS = 15_000;
/** Least time between two polls that brought no change. */
const MIN_POLL_INTERVAL_MS = 1000;
/** Largest relay answer we read: the honest ones are a few hundred bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** How long a goodbye (`close`) may take: it is sent after a cancel too, and must not hold the exit. */
const FAREWELL_MS = 5000;

/** Wait `ms`, or reject with ERR_CANCELLED when `signal` aborts first. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(new TscCrocError('ERR_CANCELLED', 'cancelled'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Pause before a waiting recipient's next join: 0.1 s, doubling to 2 s, then every 2 s. A sender
 * started at about the same time is found within a fraction of a second; a long wait costs 30
 * joins a minute (the first minute 34), half the relay's default join limit. The relay counts a
 * name it does not hold once per address, however often it is asked.
 */
export function senderPollPauseMs(attempt: number): number {
  return Math.min(2000, 100 * 2 ** Math.max(0, Math.min(attempt, 5)));
}

/** A duration for a message: "40 s", "5 min". */
export function formatWait(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 && s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}

/**
 * Join as the recipient, waiting for a sender that has not started yet: while the relay holds no
 * channel of that name (ERR_CHANNEL_NOT_FOUND), `onWaiting` is called once and the join is tried
 * again after senderPollPauseMs(), up to `waitMs` (0: fail at once). Ends with ERR_TIMEOUT, or
 * ERR_CANCELLED when `signal` aborts.
 */
export async function joinWhenSenderThere<T>(
  join: () => Promise<T>,
  opts: { waitMs: number; relay: string; signal?: AbortSignal | undefined; onWaiting?: (untilMs: number) => void },
): Promise<T> {
  const until = Date.now() + opts.waitMs;
  let told = false;
  for (let attempt = 0; ; attempt++) {
    try {
      return await join();
    } catch (e) {
      if (!(e instanceof TscCrocError && e.code === 'ERR_CHANNEL_NOT_FOUND') || opts.waitMs <= 0) throw e;
      const left = until - Date.now();
      if (left <= 0)
        throw new TscCrocError(
          'ERR_TIMEOUT',
          `no sender started on the relay at ${opts.relay} within ${formatWait(opts.waitMs)}: check that the sender is running, that the number at the start of the code is the one it shows, and that it uses this same relay`,
        );
      if (!told) {
        told = true;
        opts.onWaiting?.(until);
      }
      await pause(Math.min(senderPollPauseMs(attempt), left), opts.signal);
    }
  }
}

export class RelayClient {
  readonly baseUrl: URL;
  /** The relay's password, if it has one: sent on join and in the TCP hello, never logged. */
  readonly password: string | undefined;
  readonly #signal: AbortSignal | undefined;

  constructor(relay: string, opts: { signal?: AbortSignal | undefined; password?: string | undefined } = {}) {
    this.baseUrl = parseRelayUrl(relay);
    this.#signal = opts.signal;
    if (opts.password !== undefined && (opts.password.length < 1 || opts.password.length > MAX_PASSWORD_LENGTH))
      throw new TscCrocError('ERR_INVALID_ARGUMENT', `a relay password has 1 to ${MAX_PASSWORD_LENGTH} characters`);
    this.password = opts.password;
  }

  /** The same relay, with another signal (a task of its own that can be stopped: its requests are cancelled with it). */
  withSignal(signal: AbortSignal): RelayClient {
    return new RelayClient(this.baseUrl.href, { signal, password: this.password });
  }

  /** The relay's host name as the peer should use it for the TCP port. */
  get host(): string {
    return this.baseUrl.hostname.replace(/^\[(.*)\]$/, '$1');
  }

  /** `onSent`: called once the request has been handed to the kernel (work that can wait for the answer goes there). */
  async join(req: JoinRequest, onSent?: () => void): Promise<JoinResponse> {
    const body = await this.#post('/join', this.password === undefined ? req : { ...req, password: this.password }, 0, undefined, false, onSent);
    // the relay is not trusted: its answer must be well-formed and about what we asked for
    if (!isJoinResponse(body) || body.role !== req.role || (req.channel !== undefined && body.channel !== req.channel))
      throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed join answer');
    // a relay reached over the network does not send its peers to their own machine's loopback
    if (body.tcpHost !== undefined && tcpHostRefusal(body.tcpHost, this.host) !== null)
      throw new TscCrocError('ERR_RELAY', 'the relay named a loopback TCP address although it is not on this machine');
    return body;
  }

  /** Where this join's TCP stapler is: the answer's tcpHost (a relay fleet), else the HTTP host. */
  tcpHostOf(join: JoinResponse): string {
    return join.tcpHost ?? this.host;
  }

  channel(req: ChannelRequest): Promise<ChannelState> {
    return this.#channel(req);
  }

  async #channel(req: ChannelRequest, stop?: AbortSignal): Promise<ChannelState> {
    const body = await this.#post('/channel', req, req.wait ?? 0, stop);
    if (!isChannelState(body)) throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed channel state');
    return body;
  }

  /**
   * Long-poll the channel until `ready(state)` holds. A closed channel ends the wait with the
   * error of its close reason (closedError, as `role` sees it) unless `ready` accepts it. Bounded by `timeoutMs`.
   */
  async waitFor(
    auth: { channel: string; uuid: string },
    ready: (s: ChannelState) => boolean,
    timeoutMs: number,
    what: string,
    stop?: AbortSignal,
    role: Role = 'sender',
  ): Promise<ChannelState> {
    const deadline = Date.now() + timeoutMs;
    let since = 0; // channel versions start at 1, so the first poll answers at once
    for (;;) {
      const asked = Date.now();
      const wait = Math.max(0, Math.min(LONG_POLL_MS, deadline - asked));
      const state = await this.#channel({ ...auth, wait, since }, stop);
      if (ready(state)) return state;
      if (state.closed) throw closedError(state.closeReason, role);
      if (Date.now() >= deadline) throw new TscCrocError('ERR_TIMEOUT', `timed out ${what}`);
      // a relay that answers early without a change must not make us spin
      if (state.version <= since && Date.now() - asked < wait) await pause(MIN_POLL_INTERVAL_MS, this.#signal);
      since = state.version;
    }
  }

  /**
   * Say goodbye: the relay closes the channel, which frees its name for the next transfer at once.
   * Sent even after a cancel (the client's signal is not applied), bounded by FAREWELL_MS. A
   * recipient that received everything leaves its proof (`fin`, src/core/received-proof.ts) with it.
   */
  async close(auth: { channel: string; uuid: string }, reason: CloseReason, fin?: string): Promise<void> {
    try {
      await this.#post('/channel', { ...auth, close: true, reason, ...(fin === undefined ? {} : { fin }) }, 0, undefined, true);
    } catch {
      // best effort: the channel may already be gone
    }
  }

  /** What net-errors.ts words failures about. */
  get #target(): NetTarget {
    return { kind: 'relay-http', where: this.baseUrl.origin, host: this.host };
  }

  async #post(path: string, body: unknown, holdMs: number, stop?: AbortSignal, farewell = false, onSent?: () => void): Promise<unknown> {
    if (!farewell && (this.#signal?.aborted || stop?.aborted)) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
    const payload = Buffer.from(JSON.stringify(body), 'utf8');
    let answer: { status: number; text: string };
    try {
      answer = await this.#exchange(path, payload, farewell ? FAREWELL_MS : holdMs + REQUEST_SLACK_MS, stop, farewell, onSent);
    } catch (e) {
      if (e instanceof TscCrocError) throw e;
      if (!farewell && (this.#signal?.aborted || stop?.aborted)) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
      if ((e as { phase?: string }).phase === 'body') throw brokenError(e, this.#target);
      throw netError(e, this.#target);
    }
    let json: unknown;
    try {
      json = JSON.parse(answer.text);
    } catch {
      throw notARelayError(answer.status, this.#target);
    }
    // JSON, but not a relay's answer (another JSON service): its error has no relay code
    if (answer.status < 200 || answer.status > 299) throw relayError(answer.status, json, this.#target);
    return json;
  }

  /**
   * POST `payload`; resolves with the status and the body (at most MAX_ANSWER_BYTES). A request
   * that fails on a kept-alive connection the relay had just closed is sent once more on a new one
   * (the relay never saw it: no answer had started).
   */
  async #exchange(path: string, payload: Buffer, timeoutMs: number, stop: AbortSignal | undefined, farewell: boolean, onSent?: () => void): Promise<{ status: number; text: string }> {
    let sent = onSent;
    const once = sent === undefined ? undefined : () => (sent?.(), (sent = undefined));
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(path, payload, timeoutMs, stop, farewell, once);
      } catch (e) {
        const { code, reused } = e as { code?: string; reused?: boolean };
        if (attempt > 0 || reused !== true || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw e;
      }
    }
  }

  #once(path: string, payload: Buffer, timeoutMs: number, stop: AbortSignal | undefined, farewell: boolean, onSent?: () => void): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let phase: 'request' | 'body' = 'request';
      const signals = farewell ? [] : [this.#signal, stop].filter((x): x is AbortSignal => x !== undefined);
      const target = new URL(path, this.baseUrl).pathname;
      const ex = this.baseUrl.protocol === 'https:' ? this.#httpsPost(target, payload) : this.#http1().post(target, 'application/json', payload, MAX_ANSWER_BYTES);
      ex.onAnswerStarted = () => (phase = 'body');
      if (onSent !== undefined) ex.sent.then(onSent, () => undefined);
      const finish = (err: unknown, value?: { status: number; text: string }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        for (const sig of signals) sig.removeEventListener('abort', onAbort);
        if (err) {
          ex.destroy();
          if (typeof err === 'object' && err !== null && !(err instanceof TscCrocError))
            Object.assign(err, { phase, reused: ex.reused && phase === 'request' });
          reject(err);
        } else resolve(value!);
      };
      const onAbort = () => finish(new TscCrocError('ERR_CANCELLED', 'cancelled'));
      const timer = setTimeout(
        () =>
          finish(
            phase === 'request'
              ? netError(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }), this.#target)
              : new TscCrocError('ERR_RELAY_UNREACHABLE', `the relay at ${this.baseUrl.origin} started to answer, then stopped: try again`),
          ),
        timeoutMs,
      );
      for (const sig of signals) sig.addEventListener('abort', onAbort, { once: true });
      ex.answer.then(
        (a) => finish(null, { status: a.status, text: a.body.toString('utf8') }),
        (e: unknown) => finish((e as { code?: string }).code === 'ERR_ANSWER_TOO_LARGE' ? new TscCrocError('ERR_RELAY', 'the relay sent an oversized answer') : e),
      );
    });
  }

  /** http:// relays: kept-alive connections of our own (http1.ts), made on first use. */
  #conns: Http1Connections | undefined;
  #http1(): Http1Connections {
    const url = this.baseUrl;
    return (this.#conns ??= new Http1Connections(this.host, url.port === '' ? 80 : Number(url.port), url.host));
  }

  /** https:// relays: node:https, loaded on first use, with one pool of kept-alive connections per client. */
  #https: { request: typeof httpRequest; agent: HttpAgent } | undefined;
  #httpsPost(path: string, payload: Buffer): Http1Exchange {
    if (this.#https === undefined) {
      // taken synchronously (an ES import of a built-in builds its namespace and costs a turn of the loop)
      const mod = process.getBuiltinModule('node:https') as typeof import('node:https');
      // idle connections are unref'ed by the agent: they never keep the process alive
      this.#https = { request: mod.request as unknown as typeof httpRequest, agent: new mod.Agent({ keepAlive: true, noDelay: true } as AgentOptions) };
    }
    const url = this.baseUrl;
    const req = this.#https.request({
      agent: this.#https.agent,
      protocol: url.protocol,
      hostname: this.host,
      port: url.port === '' ? undefined : Number(url.port),
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
    });
    const ex: Http1Exchange = {
      get reused() {
        return req.reusedSocket;
      },
      sent: new Promise((resolve) => req.once('finish', () => resolve())),
      onAnswerStarted: undefined,
      destroy: () => req.destroy(),
      answer: new Promise((resolve, reject) => {
        req.on('error', reject);
        req.on('response', (res) => {
          ex.onAnswerStarted?.();
          const tooLarge = () => reject(Object.assign(new Error('oversized answer'), { code: 'ERR_ANSWER_TOO_LARGE' }));
          if (Number(res.headers['content-length'] ?? 0) > MAX_ANSWER_BYTES) return tooLarge();
          const parts: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) return tooLarge();
            parts.push(chunk);
          });
          res.on('error', reject);
          res.on('aborted', () => reject(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
        });
      }),
    };
    req.end(payload);
    return ex;
  }
}

export function parseRelayUrl(relay: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(relay) ? relay : `http://${relay}`);
  } catch {
    throw new TscCrocError('ERR_INVALID_ARGUMENT', `not a relay address: ${JSON.stringify(displayName(relay))} (expected http://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TscCrocError('ERR_INVALID_ARGUMENT', `the relay address must be http:// or https://, not ${url.protocol}`);
  return url;
}


function relayError(status: number, body: unknown, target: NetTarget): TscCrocError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown };
  if (typeof b.code !== 'string' || !/^ERR_[A-Z_]{1,60}$/.test(b.code)) return notARelayError(status, target);
  const code = b.code;
  // relay text is untrusted: strip control characters and bound it
  const message = typeof b.message === 'string' ? displayName(b.message.slice(0, 200)) : `HTTP ${status}`;
  return knownRefusal(code) ?? new TscCrocError('ERR_RELAY', `the relay refused: ${message} (${displayName(code)})`);
}


const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const optHex = (v: unknown) => v === null || (typeof v === 'string' && /^[0-9a-f]{0,256}$/.test(v));

const channelRe = new RegExp(CHANNEL_PATTERN);
const uuidRe = new RegExp(UUID_PATTERN);

function isJoinResponse(v: unknown): v is JoinResponse {
  return (
    isObj(v) &&
    v.version === RELAY_PROTOCOL_VERSION &&
    typeof v.channel === 'string' &&
    channelRe.test(v.channel) &&
    typeof v.uuid === 'string' &&
    uuidRe.test(v.uuid) &&
    (v.role === 'sender' || v.role === 'recipient') &&
    (CURVES as readonly unknown[]).includes(v.curve) &&
    typeof v.tcpPort === 'number' &&
    Number.isInteger(v.tcpPort) &&
    v.tcpPort > 0 &&
    v.tcpPort < 65536 &&
    (v.tcpHost === undefined || isTcpHost(v.tcpHost)) &&
    (v.web === undefined || typeof v.web === 'boolean') &&
    (v.state === undefined || (isChannelState(v.state) && v.state.channel === v.channel && v.state.curve === v.curve))
  );
}

function isChannelState(v: unknown): v is ChannelState {
  return (
    isObj(v) &&
    typeof v.channel === 'string' &&
    channelRe.test(v.channel) &&
    (CURVES as readonly unknown[]).includes(v.curve) &&
    typeof v.version === 'number' &&
    Number.isSafeInteger(v.version) &&
    typeof v.sender === 'boolean' &&
    typeof v.recipient === 'boolean' &&
    optHex(v.x) &&
    optHex(v.y) &&
    optHex(v.hh_k) &&
    optHex(v.h_k) &&
    typeof v.stapled === 'boolean' &&
    typeof v.closed === 'boolean' &&
    (v.attempts === undefined || (typeof v.attempts === 'number' && Number.isSafeInteger(v.attempts) && v.attempts >= 0)) &&
    (v.maxAttempts === undefined || (typeof v.maxAttempts === 'number' && Number.isSafeInteger(v.maxAttempts) && v.maxAttempts >= 1)) &&
    (v.closeReason === null || (CLOSE_REASONS as readonly unknown[]).includes(v.closeReason)) &&
    (v.fin === undefined || (typeof v.fin === 'string' && /^[0-9a-f]{64}$/.test(v.fin)))
  );
}
