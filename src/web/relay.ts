/**
 * The relay's HTTP API (POST /join, POST /channel, docs/protocol.md §2) from the page, with
 * fetch, to the origin that served it. Every answer is checked before use; refusals and closed
 * channels become the CLI's errors (src/core/relay-words.ts).
 */
import { TscCrocError } from '../core/errors.js';
import { displayName } from '../core/path.js';
import { closedError, knownRefusal } from '../core/relay-words.js';
import { CURVES, MAX_PASSWORD_LENGTH, type ChannelRequest, type ChannelState, type CloseReason, type JoinRequest, type JoinResponse, type Role } from '../core/relay-api.js';

const LONG_POLL_MS = 25_000;
const MIN_POLL_INTERVAL_MS = 1000;

/** The relay's refusal of a missing or wrong password, in the page's words (the CLI's name an environment variable). */
export const passwordRefused = (): TscCrocError => new TscCrocError('ERR_RELAY', 'the relay needs a password, or refused the one given', { cause: UNAUTHORIZED });

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Marks the error of a relay that wants a password (or another one): the page then asks for it. */
const UNAUTHORIZED = Symbol('unauthorized');

/** Whether `e` says the relay needs a password, or refused the one given. */
export function needsPassword(e: unknown): boolean {
  return e instanceof TscCrocError && e.cause === UNAUTHORIZED;
}

export class WebRelay {
  readonly origin: string;
  /** The relay's password, when it has one (typed into the page; sent on /join and in the hello, nowhere else). */
  readonly password: string | undefined;
  constructor(origin: string, password?: string) {
    this.origin = origin;
    this.password = password === '' ? undefined : password;
    if (this.password !== undefined && this.password.length > MAX_PASSWORD_LENGTH)
      throw new TscCrocError('ERR_INVALID_ARGUMENT', `a relay password has 1 to ${MAX_PASSWORD_LENGTH} characters`);
  }

  async join(req: JoinRequest): Promise<JoinResponse> {
    const b = await this.#post('/join', this.password === undefined ? req : { ...req, password: this.password });
    if (!isObj(b) || typeof b.channel !== 'string' || typeof b.uuid !== 'string' || b.role !== req.role || !(CURVES as readonly unknown[]).includes(b.curve))
      throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed join answer');
    if (req.channel !== undefined && b.channel !== req.channel) throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed join answer');
    return b as unknown as JoinResponse;
  }

  async channel(req: ChannelRequest): Promise<ChannelState> {
    const b = await this.#post('/channel', req);
    if (!isObj(b) || typeof b.version !== 'number' || typeof b.closed !== 'boolean') throw new TscCrocError('ERR_RELAY', 'the relay sent a malformed channel state');
    return b as unknown as ChannelState;
  }

  /** Long-poll until `ready(state)`; a closed channel ends the wait with the CLI's words for its reason. */
  async waitFor(auth: { channel: string; uuid: string }, ready: (s: ChannelState) => boolean, timeoutMs: number, what: string, role: Role): Promise<ChannelState> {
    const deadline = Date.now() + timeoutMs;
    let since = 0;
    for (;;) {
      const asked = Date.now();
      const wait = Math.max(0, Math.min(LONG_POLL_MS, deadline - asked));
      const state = await this.channel({ ...auth, wait, since });
      if (ready(state)) return state;
      if (state.closed) throw closedError(state.closeReason, role);
      if (Date.now() >= deadline) throw new TscCrocError('ERR_TIMEOUT', `timed out ${what}`);
      if (state.version <= since && Date.now() - asked < wait) await new Promise((r) => setTimeout(r, MIN_POLL_INTERVAL_MS));
      since = state.version;
    }
  }

  /** Say goodbye (best effort). */
  async close(auth: { channel: string; uuid: string }, reason: CloseReason): Promise<void> {
    try {
      await this.#post('/channel', { ...auth, close: true, reason });
    } catch {
      // the channel may be gone already
    }
  }

  async #post(path: string, body: object): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.origin), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new TscCrocError('ERR_RELAY_UNREACHABLE', `cannot reach the relay at ${this.origin}`);
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch {
      throw new TscCrocError('ERR_RELAY', `the relay at ${this.origin} did not answer like a tsc-croc relay (HTTP ${res.status})`);
    }
    if (res.ok) return json;
    const b = isObj(json) ? json : {};
    if (typeof b.code !== 'string' || !/^ERR_[A-Z_]{1,60}$/.test(b.code))
      throw new TscCrocError('ERR_RELAY', `the relay at ${this.origin} did not answer like a tsc-croc relay (HTTP ${res.status})`);
    if (b.code === 'ERR_UNAUTHORIZED') throw passwordRefused();
    const message = typeof b.message === 'string' ? displayName(b.message.slice(0, 200)) : `HTTP ${res.status}`;
    throw knownRefusal(b.code) ?? new TscCrocError('ERR_RELAY', `the relay refused: ${message} (${displayName(b.code)})`);
  }
}
