/**
 * The peer's side of the relay's HTTP API (POST /join, POST /channel). Every relay answer is
 * checked before use; relay errors become typed TscCrocErrors with a message for humans.
 * The relay is not trusted with anything secret: it only ever sees the public channel state.
 */
import { TscCrocError, type ErrorCode } from '../core/errors.js';
import { displayName } from '../core/path.js';
import {
  CLOSE_REASONS,
  CURVES,
  RELAY_PROTOCOL_VERSION,
  type ChannelRequest,
  type ChannelState,
  type CloseReason,
  type JoinRequest,
  type JoinResponse,
} from '../core/relay-api.js';

/** How long one long-poll asks the relay to hold its answer. */
const LONG_POLL_MS = 25_000;
/** How long a single HTTP exchange may take beyond the long-poll hold. */
const REQUEST_SLACK_MS = 15_000;

export class RelayClient {
  readonly baseUrl: URL;
  readonly #signal: AbortSignal | undefined;

  constructor(relay: string, signal?: AbortSignal) {
    this.baseUrl = parseRelayUrl(relay);
    this.#signal = signal;
  }

  /** The relay's host name as the peer should use it for the TCP port. */
  get host(): string {
    return this.baseUrl.hostname.replace(/^\[(.*)\]$/, '$1');
  }

  async join(req: JoinRequest): Promise<JoinResponse> {
    const body = await this.#post('/join', req, 0);
    if (!isJoinResponse(body)) throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed join answer');
    return body;
  }

  async channel(req: ChannelRequest): Promise<ChannelState> {
    const body = await this.#post('/channel', req, req.wait ?? 0);
    if (!isChannelState(body)) throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed channel state');
    return body;
  }

  /**
   * Long-poll the channel until `ready(state)` holds. A closed channel ends the wait with
   * ERR_CHANNEL_CLOSED unless `ready` accepts it. Bounded by `timeoutMs`.
   */
  async waitFor(
    auth: { channel: string; uuid: string },
    ready: (s: ChannelState) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<ChannelState> {
    const deadline = Date.now() + timeoutMs;
    let since = 0; // channel versions start at 1, so the first poll answers at once
    for (;;) {
      const left = deadline - Date.now();
      const state = await this.channel({ ...auth, wait: Math.max(0, Math.min(LONG_POLL_MS, left)), since });
      if (ready(state)) return state;
      if (state.closed) throw closedError(state.closeReason);
      if (Date.now() >= deadline) throw new TscCrocError('ERR_TIMEOUT', `timed out ${what}`);
      since = state.version;
    }
  }

  async close(auth: { channel: string; uuid: string }, reason: CloseReason): Promise<void> {
    try {
      await this.channel({ ...auth, close: true, reason });
    } catch {
      // best effort: the channel may already be gone
    }
  }

  async #post(path: string, body: unknown, holdMs: number): Promise<unknown> {
    const url = new URL(path, this.baseUrl);
    const timeout = AbortSignal.timeout(holdMs + REQUEST_SLACK_MS);
    const signal = this.#signal ? AbortSignal.any([this.#signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (this.#signal?.aborted) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (timeout.aborted ? 'timed out' : 'network error');
      throw new TscCrocError('ERR_RELAY_UNREACHABLE', `cannot reach the relay at ${this.baseUrl.origin} (${cause})`, { cause: e });
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch {
      throw new TscCrocError('ERR_RELAY', `the relay at ${this.baseUrl.origin} answered HTTP ${res.status} without JSON: is it a tsc-croc relay?`);
    }
    if (!res.ok) throw relayError(res.status, json);
    return json;
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

export function closedError(reason: CloseReason | null): TscCrocError {
  switch (reason) {
    case 'wrong-code':
      return new TscCrocError('ERR_WRONG_CODE', 'the code is wrong: the other side could not confirm the key');
    case 'cancelled':
      return new TscCrocError('ERR_CANCELLED', 'the other side cancelled');
    case 'expired':
      return new TscCrocError('ERR_TIMEOUT', "the code expired: nobody used it within the relay's time limit");
    default:
      return new TscCrocError('ERR_CHANNEL_CLOSED', 'the other side closed the channel');
  }
}

const RELAY_CODE_MAP: Record<string, ErrorCode> = {
  ERR_CHANNEL_NOT_FOUND: 'ERR_CHANNEL_NOT_FOUND',
  ERR_CHANNEL_FULL: 'ERR_CHANNEL_FULL',
  ERR_CHANNEL_OCCUPIED: 'ERR_CHANNEL_FULL',
  ERR_CHANNEL_CLOSED: 'ERR_CHANNEL_CLOSED',
};

function relayError(status: number, body: unknown): TscCrocError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown };
  const code = typeof b.code === 'string' ? b.code.slice(0, 64) : `HTTP_${status}`;
  // relay text is untrusted: strip control characters and bound it
  const message = typeof b.message === 'string' ? displayName(b.message.slice(0, 200)) : `HTTP ${status}`;
  switch (code) {
    case 'ERR_CHANNEL_NOT_FOUND':
      return new TscCrocError('ERR_CHANNEL_NOT_FOUND', 'no sender is waiting on that channel: check the code, and that both sides use the same relay');
    case 'ERR_CHANNEL_OCCUPIED':
      return new TscCrocError('ERR_CHANNEL_FULL', 'that channel is already in use: choose another code');
    case 'ERR_CHANNEL_FULL':
      return new TscCrocError('ERR_CHANNEL_FULL', 'someone else already joined that channel: ask the sender for a new code');
    default:
      return new TscCrocError(RELAY_CODE_MAP[code] ?? 'ERR_RELAY', `the relay refused: ${message} (${displayName(code)})`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const optHex = (v: unknown) => v === null || (typeof v === 'string' && /^[0-9a-f]{0,256}$/.test(v));

function isJoinResponse(v: unknown): v is JoinResponse {
  return (
    isObj(v) &&
    v.version === RELAY_PROTOCOL_VERSION &&
    typeof v.channel === 'string' &&
    typeof v.uuid === 'string' &&
    (v.role === 'sender' || v.role === 'recipient') &&
    (CURVES as readonly unknown[]).includes(v.curve) &&
    typeof v.tcpPort === 'number' &&
    Number.isInteger(v.tcpPort) &&
    v.tcpPort > 0 &&
    v.tcpPort < 65536
  );
}

function isChannelState(v: unknown): v is ChannelState {
  return (
    isObj(v) &&
    typeof v.channel === 'string' &&
    (CURVES as readonly unknown[]).includes(v.curve) &&
    typeof v.version === 'number' &&
    typeof v.sender === 'boolean' &&
    typeof v.recipient === 'boolean' &&
    optHex(v.x) &&
    optHex(v.y) &&
    optHex(v.hh_k) &&
    optHex(v.h_k) &&
    typeof v.stapled === 'boolean' &&
    typeof v.closed === 'boolean' &&
    (v.closeReason === null || (CLOSE_REASONS as readonly unknown[]).includes(v.closeReason))
  );
}
