/**
 * The relay's channel state machine: who joined, which PAKE fields are written, whether the TCP
 * connections are stapled, whether the channel is closed. Pure: no sockets, no HTTP, no timers;
 * the clock and the randomness come from the caller. docs/relay-api.md lists every transition.
 *
 * A channel's life: created by a sender join (version 1) → a recipient joins → x (sender) →
 * y + hh_k together (recipient) → h_k (sender) → stapled (the TCP side) → closed → removed.
 * Every change bumps `version` by one and wakes the channel's watchers (the long-polls).
 *
 * A name belongs to one open channel at a time. When that channel closes, its name is free at
 * once: the next sender join of the name creates a fresh channel, and recipient joins find that
 * one (or none). The closed channel stays readable by its own participants (found by their uuid
 * among the channels held under the name) until closedRetentionMs, then it is removed.
 *
 * Until h_k is written the recipient seat is not for keeps: the sender may reject a recipient whose
 * confirmation failed, a recipient that does not write y and hh_k within recipientTimeoutMs of x
 * being there for it is evicted, and a recipient that closes before h_k just leaves. Each eviction
 * clears x, y and hh_k (the sender writes a fresh x for the next recipient); an evicted uuid reads
 * the channel as closed (its own view) and may write nothing. A recipient that wrote y and hh_k
 * and was not accepted counts as one failed attempt; at maxAttempts the channel closes 'wrong-code'.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import {
  DEFAULT_CURVE,
  PEER_CLOSE_REASONS,
  type ChannelRequest,
  type ChannelState,
  type CloseReason,
  type CurveName,
  type JoinRequest,
  type RelayErrorCode,
  type Role,
} from '../core/relay-api.js';

/** The HTTP status of every relay error code: the one place this mapping lives. */
export const RELAY_ERROR_STATUS: Readonly<Record<RelayErrorCode, number>> = Object.freeze({
  ERR_BAD_REQUEST: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_UNKNOWN_PARTICIPANT: 403,
  ERR_ADDRESS_MISMATCH: 403,
  ERR_WRONG_ROLE: 403,
  ERR_CHANNEL_NOT_FOUND: 404,
  ERR_NOT_FOUND: 404,
  ERR_CHANNEL_OCCUPIED: 409,
  ERR_CHANNEL_FULL: 409,
  ERR_FIELD_ALREADY_SET: 409,
  ERR_OUT_OF_ORDER: 409,
  ERR_CHANNEL_CLOSED: 410,
  ERR_BODY_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
  ERR_INTERNAL: 500,
  ERR_TOO_MANY_CHANNELS: 503,
  ERR_TOO_MANY_CONNECTIONS: 503,
  ERR_SHUTTING_DOWN: 503,
});

/** A refused request: a stable code, its HTTP status, and a message without secrets. */
export class RelayError extends Error {
  readonly code: RelayErrorCode;
  readonly statusCode: number;
  constructor(code: RelayErrorCode, message: string) {
    super(message);
    this.name = 'RelayError';
    this.code = code;
    this.statusCode = RELAY_ERROR_STATUS[code];
  }
}

export function isRelayError(e: unknown, code?: RelayErrorCode): e is RelayError {
  return e instanceof RelayError && (code === undefined || e.code === code);
}

/** One joined peer. The uuid is its bearer token; it is valid only from `address`. */
export interface Participant {
  readonly uuid: string;
  readonly role: Role;
  readonly address: string;
}

export interface JoinResult {
  participant: Participant;
  state: ChannelState;
}

export interface ChannelStoreConfig {
  now: () => number;
  /** A uniform integer in [min, max). */
  randomInt: (min: number, max: number) => number;
  maxChannels: number;
  /** Most open channels one address may take part in (counted once per channel). */
  maxChannelsPerAddress: number;
  channelTtlMs: number;
  closedRetentionMs: number;
  /** A recipient that has not written y and hh_k this long after x is there for it is evicted. */
  recipientTimeoutMs: number;
  /** Failed attempts (recipients that wrote y + hh_k and were not accepted) before the channel closes 'wrong-code'. */
  maxAttempts: number;
}

/** What expire() did. */
export interface ExpireResult {
  /** Open channels closed (reason 'expired') because they were not stapled within channelTtlMs. */
  closed: string[];
  /** Closed channels removed after closedRetentionMs. */
  removed: string[];
  /** Channels whose recipient was evicted for not writing y and hh_k within recipientTimeoutMs. */
  evicted: string[];
}

/** A recipient that was removed from a channel before the key agreement completed. */
interface Evicted {
  readonly uuid: string;
  readonly address: string;
  /** What its view reads as closeReason: 'wrong-code' (rejected), 'expired' (too slow), or what it posted when leaving. */
  readonly reason: CloseReason;
  /** The channel's version right after the eviction: its view stays at it. */
  version: number;
}

/** Evicted uuids remembered per channel (the oldest are forgotten; they then read 403 ERR_UNKNOWN_PARTICIPANT). */
const MAX_EVICTED = 16;

interface Channel {
  readonly name: string;
  readonly curve: CurveName;
  readonly createdAt: number;
  version: number;
  sender: Participant | null;
  recipient: Participant | null;
  x: string | null;
  y: string | null;
  hh_k: string | null;
  h_k: string | null;
  stapled: boolean;
  closed: boolean;
  closeReason: CloseReason | null;
  closedAt: number | null;
  /** Failed attempts so far. */
  attempts: number;
  /** When the seated recipient is evicted unless it has written y and hh_k (null: no deadline running). */
  recipientDeadline: number | null;
  readonly evicted: Evicted[];
  readonly watchers: Set<() => void>;
}

/**
 * Relay-picked names: decimal, 1..10^d - 1, with d the fewest digits (at least 4) for which
 * 10^d >= NAME_SPREAD × (channels held + 1): at most about one name in NAME_SPREAD is in use, so a
 * probe of a random name finds a channel with probability at most about 1/NAME_SPREAD, and scanning
 * the whole range takes at least NAME_SPREAD × (held + 1) joins (docs/protocol.md §8 has the
 * figures; the relay also bounds the misses of each address, http.ts). 4 digits while the relay
 * holds fewer than 10 other channels.
 */
const FIRST_DIGITS = 4;
const LAST_DIGITS = 12; // 10^12 < 2^48, crypto.randomInt's range limit
const PICKS_PER_RANGE = 8;
export const NAME_SPREAD = 1000;

const peerCloseReasons: ReadonlySet<string> = new Set(PEER_CLOSE_REASONS);

/** '::ffff:1.2.3.4' (an IPv4 peer on a dual-stack socket) and '1.2.3.4' are the same peer. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function sameToken(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

function snapshot(c: Channel, maxAttempts: number): ChannelState {
  return {
    channel: c.name,
    curve: c.curve,
    version: c.version,
    sender: c.sender !== null,
    recipient: c.recipient !== null,
    x: c.x,
    y: c.y,
    hh_k: c.hh_k,
    h_k: c.h_k,
    stapled: c.stapled,
    closed: c.closed,
    closeReason: c.closeReason,
    attempts: c.attempts,
    maxAttempts,
  };
}

/** What an evicted recipient reads: the channel closed for it, at the version of its eviction. */
function evictedView(c: Channel, e: Evicted, maxAttempts: number): ChannelState {
  return {
    channel: c.name,
    curve: c.curve,
    version: e.version,
    sender: c.sender !== null,
    recipient: false,
    x: null,
    y: null,
    hh_k: null,
    h_k: null,
    stapled: false,
    closed: true,
    closeReason: e.reason,
    attempts: c.attempts,
    maxAttempts,
  };
}

export class ChannelStore {
  readonly #config: ChannelStoreConfig;
  /**
   * Every channel held, by name, oldest first: closed ones (kept for their participants until
   * closedRetentionMs) and at most one open one, which is then the last.
   */
  readonly #channels = new Map<string, Channel[]>();
  #held = 0;
  readonly #closeListeners = new Set<(channel: string, reason: CloseReason) => void>();
  /** Open channels each address takes part in. */
  readonly #perAddress = new Map<string, number>();
  #open = 0;

  constructor(config: ChannelStoreConfig) {
    this.#config = config;
  }

  #snap(c: Channel): ChannelState {
    return snapshot(c, this.#config.maxAttempts);
  }

  /** Channels held, open or closed-but-retained. */
  get size(): number {
    return this.#held;
  }

  /** Channels not closed (waiting, in the handshake, or stapled). */
  get openCount(): number {
    return this.#open;
  }

  /** Open channels `address` takes part in. */
  openCountOf(address: string): number {
    return this.#perAddress.get(normalizeAddress(address)) ?? 0;
  }

  #checkAddressQuota(address: string): void {
    if ((this.#perAddress.get(address) ?? 0) >= this.#config.maxChannelsPerAddress)
      throw new RelayError('ERR_RATE_LIMITED', 'too many open channels from this address, try again later');
  }

  #addressTaken(address: string, delta: 1 | -1): void {
    const n = (this.#perAddress.get(address) ?? 0) + delta;
    if (n <= 0) this.#perAddress.delete(address);
    else this.#perAddress.set(address, n);
  }

  /** The distinct addresses of a channel's participants. */
  #addresses(c: Channel): Set<string> {
    const set = new Set<string>();
    if (c.sender !== null) set.add(c.sender.address);
    if (c.recipient !== null) set.add(c.recipient.address);
    return set;
  }

  /**
   * POST /join. A sender creates the channel (named by it, or picked by the relay); a recipient
   * takes the second seat of an existing one.
   */
  join(req: JoinRequest, address: string): JoinResult {
    return req.role === 'sender' ? this.#joinSender(req, address) : this.#joinRecipient(req, address);
  }

  #joinSender(req: JoinRequest, address: string): JoinResult {
    // a closed channel no longer holds its name: a fixed code can be used again at once
    if (req.channel !== undefined && this.#openNamed(req.channel) !== undefined)
      throw new RelayError('ERR_CHANNEL_OCCUPIED', `channel ${req.channel} already has a sender`);
    if (this.#held >= this.#config.maxChannels)
      throw new RelayError('ERR_TOO_MANY_CHANNELS', 'the relay holds too many channels, try again later');
    const addr = normalizeAddress(address);
    this.#checkAddressQuota(addr);
    const name = req.channel ?? this.#pickName();
    const participant: Participant = { uuid: randomUUID(), role: 'sender', address: addr };
    const channel: Channel = {
      name,
      curve: req.curve ?? DEFAULT_CURVE,
      createdAt: this.#config.now(),
      version: 1,
      sender: participant,
      recipient: null,
      x: null,
      y: null,
      hh_k: null,
      h_k: null,
      stapled: false,
      closed: false,
      closeReason: null,
      closedAt: null,
      attempts: 0,
      recipientDeadline: null,
      evicted: [],
      watchers: new Set(),
    };
    const list = this.#channels.get(name);
    if (list === undefined) this.#channels.set(name, [channel]);
    else list.push(channel);
    this.#held++;
    this.#open++;
    this.#addressTaken(addr, 1);
    return { participant, state: this.#snap(channel) };
  }

  #joinRecipient(req: JoinRequest, address: string): JoinResult {
    if (req.channel === undefined) throw new RelayError('ERR_BAD_REQUEST', 'a recipient must name the channel');
    // only an open channel is joined: a closed one's name waits for its next sender
    const c = this.#openNamed(req.channel);
    if (c === undefined) throw new RelayError('ERR_CHANNEL_NOT_FOUND', `no channel ${req.channel}`);
    // a seat whose time ran out is freed now, not at the next sweep
    if (c.recipientDeadline !== null && this.#config.now() >= c.recipientDeadline) this.#evict(c, 'expired', false);
    if (c.recipient !== null) throw new RelayError('ERR_CHANNEL_FULL', `channel ${c.name} already has a recipient`);
    if (req.curve !== undefined && req.curve !== c.curve)
      throw new RelayError('ERR_BAD_REQUEST', `channel ${c.name} uses curve ${c.curve}, not ${req.curve}`);
    const addr = normalizeAddress(address);
    const newAddress = !this.#addresses(c).has(addr);
    if (newAddress) this.#checkAddressQuota(addr);
    const participant: Participant = { uuid: randomUUID(), role: 'recipient', address: addr };
    c.recipient = participant;
    if (newAddress) this.#addressTaken(addr, 1);
    this.#startDeadline(c);
    this.#bump(c);
    return { participant, state: this.#snap(c) };
  }

  /** A free decimal name; terminates: PICKS_PER_RANGE tries per range, then a wider range. */
  #pickName(): string {
    let digits = channelNameDigits(this.#held);
    for (; digits <= LAST_DIGITS; digits++) {
      for (let i = 0; i < PICKS_PER_RANGE; i++) {
        const n = this.#config.randomInt(1, 10 ** digits);
        if (!Number.isSafeInteger(n) || n < 1 || n >= 10 ** digits) continue;
        const name = String(n);
        if (!this.#channels.has(name)) return name;
      }
    }
    throw new RelayError('ERR_TOO_MANY_CHANNELS', 'no free channel name found, try again later');
  }

  /** Check that `uuid` is a participant of `channel` and uses it from the address it joined from. */
  authenticate(channel: string, uuid: string, address: string): Participant {
    const c = this.#findFor(channel, uuid);
    return this.#authenticate(c, uuid, address);
  }

  #authenticate(c: Channel, uuid: string, address: string): Participant {
    const p = this.#who(c, uuid, address);
    if ('role' in p) return p;
    throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed to this recipient`);
  }

  /** A participant, or a recipient that was evicted; checked against the address it joined from. */
  #who(c: Channel, uuid: string, address: string): Participant | Evicted {
    const p: Participant | Evicted | undefined =
      [c.sender, c.recipient].find((q): q is Participant => q !== null && sameToken(q.uuid, uuid)) ??
      c.evicted.find((e) => sameToken(e.uuid, uuid));
    if (p === undefined) throw new RelayError('ERR_UNKNOWN_PARTICIPANT', `not a participant of channel ${c.name}`);
    if (p.address !== normalizeAddress(address))
      throw new RelayError('ERR_ADDRESS_MISMATCH', `${'role' in p ? `the ${p.role}` : 'a former recipient'} of channel ${c.name} joined from another address`);
    return p;
  }

  /** POST /channel without writes: the state, for a participant (closed channels too, until removed). */
  read(ref: { channel: string; uuid: string }, address: string): ChannelState {
    const c = this.#findFor(ref.channel, ref.uuid);
    const p = this.#who(c, ref.uuid, address);
    return 'role' in p ? this.#snap(c) : evictedView(c, p, this.#config.maxAttempts);
  }

  /**
   * POST /channel: authenticate, then apply the writes (x; y with hh_k; h_k) and `close`, all or
   * nothing, as one change (one version bump). `wait` and `since` are the HTTP layer's business.
   */
  update(req: ChannelRequest, address: string): ChannelState {
    const c = this.#findFor(req.channel, req.uuid);
    const who = this.#who(c, req.uuid, address);
    const fields = req.x !== undefined || req.y !== undefined || req.hh_k !== undefined || req.h_k !== undefined;
    const writes = fields || req.reject === true;
    if (req.reason !== undefined && req.close !== true)
      throw new RelayError('ERR_BAD_REQUEST', 'reason is only allowed with close: true');
    if (req.reason !== undefined && !peerCloseReasons.has(req.reason))
      throw new RelayError('ERR_BAD_REQUEST', 'unknown close reason');
    if (req.reject === true && (fields || req.close === true))
      throw new RelayError('ERR_BAD_REQUEST', 'reject comes alone, without writes or close');
    if (!('role' in who)) {
      // an evicted recipient: the channel is closed for it; it may read and say goodbye, nothing more
      if (writes) throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed to this recipient`);
      return evictedView(c, who, this.#config.maxAttempts);
    }
    const p = who;
    if (!writes && req.close !== true) return this.#snap(c);
    if (c.closed) {
      if (!writes) return this.#snap(c); // closing twice is harmless: both peers may say goodbye
      throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed`);
    }
    if (req.reject === true) {
      if (p.role !== 'sender') throw new RelayError('ERR_WRONG_ROLE', 'only the sender rejects a recipient');
      if (c.h_k !== null) throw new RelayError('ERR_FIELD_ALREADY_SET', 'h_k is already set: the recipient was accepted');
      if (c.y === null) throw new RelayError('ERR_OUT_OF_ORDER', 'reject follows y and hh_k');
      this.#evict(c, 'wrong-code', true);
      return this.#snap(c);
    }
    if (writes) this.#checkWrites(c, p, req);
    if (req.close === true && p.role === 'recipient' && c.h_k === null) {
      // a recipient that has not been accepted cannot end the sender's transfer: it leaves the seat
      // (a guess it committed with y + hh_k counts as an attempt)
      const gone = this.#evict(c, req.reason ?? 'done', c.y !== null || req.y !== undefined);
      return evictedView(c, gone!, this.#config.maxAttempts);
    }

    if (req.x !== undefined) c.x = req.x;
    if (req.y !== undefined) c.y = req.y;
    if (req.hh_k !== undefined) c.hh_k = req.hh_k;
    if (req.h_k !== undefined) c.h_k = req.h_k;
    if (req.x !== undefined) this.#startDeadline(c);
    if (req.y !== undefined) c.recipientDeadline = null;
    if (req.close === true) this.#close(c, req.reason ?? 'done');
    else this.#bump(c);
    return this.#snap(c);
  }

  /** A seated recipient with x there for it and no y yet: its time to answer starts (once). */
  #startDeadline(c: Channel): void {
    if (c.recipient !== null && c.x !== null && c.y === null && c.recipientDeadline === null)
      c.recipientDeadline = this.#config.now() + this.#config.recipientTimeoutMs;
  }

  /**
   * Take the recipient's seat away before the key agreement completed: its uuid reads the channel
   * as closed with `reason`; x, y and hh_k are cleared; `attempt` counts a failed attempt, and the
   * last allowed one closes the channel 'wrong-code'. One change (one version).
   */
  #evict(c: Channel, reason: CloseReason, attempt: boolean): Evicted | undefined {
    const r = c.recipient;
    if (r === null) return undefined;
    const e: Evicted = { uuid: r.uuid, address: r.address, reason, version: 0 };
    c.evicted.push(e);
    if (c.evicted.length > MAX_EVICTED) c.evicted.shift();
    c.recipient = null;
    if (c.sender?.address !== r.address) this.#addressTaken(r.address, -1);
    c.x = null;
    c.y = null;
    c.hh_k = null;
    c.recipientDeadline = null;
    if (attempt) c.attempts++;
    if (attempt && c.attempts >= this.#config.maxAttempts) this.#close(c, 'wrong-code');
    else this.#bump(c);
    e.version = c.version; // set before any watcher reads it: they read in a later tick
    return e;
  }

  #checkWrites(c: Channel, p: Participant, req: ChannelRequest): void {
    if ((req.y === undefined) !== (req.hh_k === undefined))
      throw new RelayError('ERR_BAD_REQUEST', 'y and hh_k are written together, in one request');
    if (req.x !== undefined) {
      if (p.role !== 'sender') throw new RelayError('ERR_WRONG_ROLE', 'only the sender writes x');
      if (c.x !== null) throw new RelayError('ERR_FIELD_ALREADY_SET', 'x is already set');
    }
    if (req.y !== undefined) {
      if (p.role !== 'recipient') throw new RelayError('ERR_WRONG_ROLE', 'only the recipient writes y and hh_k');
      if (c.y !== null) throw new RelayError('ERR_FIELD_ALREADY_SET', 'y and hh_k are already set');
      if (c.x === null) throw new RelayError('ERR_OUT_OF_ORDER', 'y and hh_k follow x');
    }
    if (req.h_k !== undefined) {
      if (p.role !== 'sender') throw new RelayError('ERR_WRONG_ROLE', 'only the sender writes h_k');
      if (c.h_k !== null) throw new RelayError('ERR_FIELD_ALREADY_SET', 'h_k is already set');
      if (c.y === null) throw new RelayError('ERR_OUT_OF_ORDER', 'h_k follows y and hh_k');
    }
  }

  /** The state of the newest channel of that name (the open one, if any), or undefined if there is none. */
  get(channel: string): ChannelState | undefined {
    const c = this.#latest(channel);
    return c === undefined ? undefined : this.#snap(c);
  }

  /**
   * What `ref.uuid` reads of its own channel of that name (a closed or evicted view included),
   * without the address check; undefined once that channel is gone. For the long-polls.
   */
  peek(ref: { channel: string; uuid: string }): ChannelState | undefined {
    const c = this.#channels.get(ref.channel)?.find((x) => this.#member(x, ref.uuid));
    if (c === undefined) return undefined;
    const e = c.evicted.find((x) => sameToken(x.uuid, ref.uuid));
    return e !== undefined ? evictedView(c, e, this.#config.maxAttempts) : this.#snap(c);
  }

  /** The participant seated as `role` in the newest channel of that name, if any (for the stapler's bookkeeping and tests). */
  participant(channel: string, role: Role): Participant | undefined {
    const c = this.#latest(channel);
    return (role === 'sender' ? c?.sender : c?.recipient) ?? undefined;
  }

  /** The TCP side joined both peers' connections. Throws if the channel is gone or closed. */
  markStapled(channel: string): ChannelState {
    const c = this.#find(channel); // the newest: the open one, if any
    if (c.closed) throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed`);
    if (!c.stapled) {
      c.stapled = true;
      this.#bump(c);
    }
    return this.#snap(c);
  }

  /** Close the newest channel of that name (idempotent). Its state stays readable until expire() removes it. */
  close(channel: string, reason: CloseReason): ChannelState {
    const c = this.#find(channel);
    if (!c.closed) this.#close(c, reason);
    return this.#snap(c);
  }

  /** Forget every channel of that name now. Watchers are woken (they will find it gone); close listeners run if one was open. */
  remove(channel: string): boolean {
    const list = this.#channels.get(channel);
    if (list === undefined) return false;
    for (const c of [...list]) this.#remove(c);
    return true;
  }

  #remove(c: Channel): void {
    const list = this.#channels.get(c.name);
    const i = list?.indexOf(c) ?? -1;
    if (list === undefined || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.#channels.delete(c.name);
    this.#held--;
    const wasOpen = !c.closed;
    if (wasOpen) {
      c.closed = true;
      c.closeReason = 'error';
      this.#released(c);
    }
    this.#wake(c);
    if (wasOpen) this.#notifyClosed(c.name, 'error');
  }

  /**
   * Close open channels that were not stapled within channelTtlMs of their creation (reason 'expired'),
   * evict recipients whose recipientTimeoutMs ran out, and remove closed channels older than closedRetentionMs.
   */
  expire(now: number): ExpireResult {
    const result: ExpireResult = { closed: [], removed: [], evicted: [] };
    for (const c of [...this.#channels.values()].flat()) {
      if (c.closed) {
        if (c.closedAt !== null && now - c.closedAt >= this.#config.closedRetentionMs) {
          this.#remove(c);
          result.removed.push(c.name);
        }
      } else if (!c.stapled && now - c.createdAt >= this.#config.channelTtlMs) {
        this.#close(c, 'expired');
        result.closed.push(c.name);
      } else if (c.recipientDeadline !== null && now >= c.recipientDeadline) {
        this.#evict(c, 'expired', false);
        result.evicted.push(c.name);
      }
    }
    return result;
  }

  /**
   * Call `fn` after every change of a channel (and when it is removed): the newest of that name,
   * or with a `{ channel, uuid }` reference the one that uuid takes part in. Returns the unsubscribe function.
   */
  subscribe(channel: string | { channel: string; uuid: string }, fn: () => void): () => void {
    const c = typeof channel === 'string' ? this.#find(channel) : this.#findFor(channel.channel, channel.uuid);
    c.watchers.add(fn);
    return () => {
      c.watchers.delete(fn);
    };
  }

  /** Watchers of one channel, or of all channels: a leak check for tests. */
  watcherCount(channel?: string): number {
    let n = 0;
    for (const c of channel !== undefined ? (this.#channels.get(channel) ?? []) : [...this.#channels.values()].flat()) n += c.watchers.size;
    return n;
  }

  /** Call `fn` whenever a channel becomes closed or an open channel is removed. */
  onClose(fn: (channel: string, reason: CloseReason) => void): () => void {
    this.#closeListeners.add(fn);
    return () => {
      this.#closeListeners.delete(fn);
    };
  }

  /** The newest channel of that name, open or closed. */
  #latest(channel: string): Channel | undefined {
    const list = this.#channels.get(channel);
    return list?.[list.length - 1];
  }

  /** The open channel holding that name, if any. */
  #openNamed(channel: string): Channel | undefined {
    const c = this.#latest(channel);
    return c !== undefined && !c.closed ? c : undefined;
  }

  #find(channel: string): Channel {
    const c = this.#latest(channel);
    if (c === undefined) throw new RelayError('ERR_CHANNEL_NOT_FOUND', `no channel ${channel}`);
    return c;
  }

  /**
   * The channel of that name `uuid` takes part in (or was evicted from), newest first; if none, the
   * newest of the name (whose checks then refuse the uuid as unknown).
   */
  #findFor(channel: string, uuid: string): Channel {
    const list = this.#channels.get(channel);
    if (list === undefined) throw new RelayError('ERR_CHANNEL_NOT_FOUND', `no channel ${channel}`);
    for (let i = list.length - 1; i >= 0; i--) if (this.#member(list[i]!, uuid)) return list[i]!;
    return list[list.length - 1]!;
  }

  #member(c: Channel, uuid: string): boolean {
    return [c.sender, c.recipient].some((q) => q !== null && sameToken(q.uuid, uuid)) || c.evicted.some((e) => sameToken(e.uuid, uuid));
  }

  /** An open channel became closed (or was removed while open): it no longer counts as open. */
  #released(c: Channel): void {
    this.#open--;
    for (const a of this.#addresses(c)) this.#addressTaken(a, -1);
  }

  #close(c: Channel, reason: CloseReason): void {
    this.#released(c);
    c.closed = true;
    c.closeReason = reason;
    c.closedAt = this.#config.now();
    this.#bump(c);
    this.#notifyClosed(c.name, reason);
  }

  #bump(c: Channel): void {
    c.version++;
    this.#wake(c);
  }

  #wake(c: Channel): void {
    for (const fn of [...c.watchers]) fn();
  }

  #notifyClosed(name: string, reason: CloseReason): void {
    for (const fn of [...this.#closeListeners]) fn(name, reason);
  }
}

/** Digits of a relay-picked channel name while `held` channels are held: the fewest (≥ 4) with 10^d ≥ NAME_SPREAD × (held + 1). */
export function channelNameDigits(held: number): number {
  let digits = FIRST_DIGITS;
  while (digits < LAST_DIGITS && 10 ** digits < NAME_SPREAD * (held + 1)) digits++;
  return digits;
}
