/**
 * The relay's channel state machine: who joined, which PAKE fields are written, whether the TCP
 * connections are stapled, whether the channel is closed. The rules live here, once, as changes
 * of a plain record (ChannelRecord); where the records live is a ChannelBackend's business:
 * store-memory.ts (one process, the default) or store-redis.ts (shared by a fleet of processes).
 * No sockets, no HTTP, no timers; the clock and the randomness come from the caller.
 * docs/relay-api.md lists every transition ("Stores" says what lives where).
 *
 * Every change is read → computed here → committed as a compare-and-set on the record's revision
 * (with its index and quota changes, atomically: one Lua script in Redis); a commit that lost a
 * race is computed again from the fresh record. So two recipients racing through two processes
 * are ordered: one takes the seat, the other reads it taken (409 ERR_CHANNEL_FULL).
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
  ERR_STORE_UNAVAILABLE: 503,
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

/** Seconds a client is told to wait (Retry-After) when the store is unreachable. */
export const STORE_RETRY_AFTER_S = 2;

/** The store (Redis) cannot be reached: 503 with Retry-After; the relay recovers by itself when it is back. */
export function storeUnavailable(): RelayError {
  return new RelayError('ERR_STORE_UNAVAILABLE', 'the relay cannot reach its store right now, try again in a few seconds');
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
  /** The TCP stapling address the creating process advertised (`HOST:PORT`), or null: the answering process's own port. */
  tcp: string | null;
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
  /**
   * This relay process, among those sharing the backend (a random id per process). A channel it
   * staples records it as the owner; the owner's heartbeat (heartbeat()) keeps the channel's lease.
   */
  instanceId: string;
  /**
   * A stapled channel's lease: every this long, expire() checks that the process holding its sockets
   * still beats; a channel whose owner stopped (a process killed) is closed 'expired', freeing its
   * name and its addresses' quota. The owner's heartbeat lives this long.
   */
  stapledLeaseMs: number;
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
export interface Evicted {
  readonly uuid: string;
  readonly address: string;
  /** What its view reads as closeReason: 'wrong-code' (rejected), 'expired' (too slow), or what it posted when leaving. */
  readonly reason: CloseReason;
  /** The channel's version right after the eviction: its view stays at it. */
  version: number;
}

/** Evicted uuids remembered per channel (the oldest are forgotten; they then read 403 ERR_UNKNOWN_PARTICIPANT). */
const MAX_EVICTED = 16;

/** One channel, as a backend holds it: plain JSON. */
export interface ChannelRecord {
  /** Unique per channel ever created (a name is reused, an id never). */
  readonly id: string;
  readonly name: string;
  readonly curve: CurveName;
  readonly createdAt: number;
  version: number;
  /** Revision of the record: every commit of a change bumps it (the compare-and-set token). */
  rev: number;
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
  evicted: Evicted[];
  /**
   * `HOST:PORT` (IPv6 host bracketed) of the TCP stapler the creating process advertised
   * (--advertise-tcp), named in every join answer of the channel; absent or null: none advertised.
   */
  tcp?: string | null;
  /** The process (instanceId) whose stapler holds the channel's sockets; absent: not stapled (or an older record). */
  owner?: string;
  /** When expire() next checks that the owner still beats (stapled channels). */
  leaseAt?: number;
  /** The recipient's proof that everything arrived (ChannelRequest.fin), once written. */
  fin?: string;
}

/** A change of one record, handed to the backend to commit atomically. */
export interface Commit {
  /** 'create': a new record; 'update': replace the record if its rev is still `expectedRev`; 'remove': delete it if so. */
  kind: 'create' | 'update' | 'remove';
  /** The new record (for 'remove': the record as read). */
  record: ChannelRecord;
  expectedRev: number;
  /** create: refuse ('name-taken') if any channel (open or closed) holds the name: relay-picked names. */
  fresh: boolean;
  /** Addresses that start counting this channel against maxChannelsPerAddress (checked: 'ERR_RATE_LIMITED'). */
  addrAdd: string[];
  /** Addresses that stop counting it. */
  addrRemove: string[];
  /** When expire() must look at the record next (null: never, a stapled channel). */
  deadline: number | null;
  /** How long the backend may keep the record if nobody removes it (a crashed fleet leaks nothing). */
  ttlMs: number;
  /** The change to announce to every watcher (every process), or null if the version did not change. */
  event: ChangeEvent | null;
}

export type CommitResult =
  | { ok: true }
  | { ok: false; reason: 'conflict' | 'name-taken' | 'ERR_CHANNEL_OCCUPIED' | 'ERR_TOO_MANY_CHANNELS' | 'ERR_RATE_LIMITED' };

/** A change of a channel, announced to every process's watchers. */
export interface ChangeEvent {
  name: string;
  id: string;
  version: number;
  /** The change closed the channel (or removed it while open) with this reason. */
  closed?: CloseReason;
  removed?: boolean;
}

/** Where the records live: store-memory.ts (this process) or store-redis.ts (a fleet). */
export interface ChannelBackend {
  /** Connect and subscribe; `onEvent` gets every change of every channel (from any process), `local` when this process made it. */
  start(onEvent: (e: ChangeEvent, local: boolean) => void, onResync: () => void): Promise<void>;
  stop(): Promise<void>;
  /** Every record held under `name`, oldest first. */
  byName(name: string): Promise<ChannelRecord[]>;
  commit(c: Commit, now: number): Promise<CommitResult>;
  /** Records whose deadline is ≤ now (at most `limit`): [name, id]. */
  due(now: number, limit: number): Promise<[string, string][]>;
  /** Forget a due entry whose record is gone (its TTL ran out). */
  dropDue(name: string, id: string): Promise<void>;
  heldCount(now: number): Promise<number>;
  openCount(now: number): Promise<number>;
  openCountOf(address: string, now: number): Promise<number>;
  /** Throws storeUnavailable() if the store cannot be reached. */
  ping(): Promise<void>;
  /** A fixed-window request counter per key: 0 if allowed, else ms until the window ends. */
  rateHit(kind: string, key: string, max: number, windowMs: number, now: number): Promise<number>;
  /** Distinct values per key per window: over() tells (ms left) whether `max` were counted. */
  distinctOver(kind: string, key: string, max: number, windowMs: number, now: number): Promise<number>;
  distinctHit(kind: string, key: string, value: string, max: number, windowMs: number, now: number): Promise<void>;
  /** Forget ended windows (memory); Redis lets them expire. */
  purge(now: number): void;
  /** Process `id` is alive for `ttlMs` more (its stapled channels keep their lease). */
  heartbeat(id: string, ttlMs: number, now: number): Promise<void>;
  /** Whether process `id` beat within the ttl of its last heartbeat. */
  alive(id: string, now: number): Promise<boolean>;
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
/** Commits that lost a race are computed again, at most this many times per request. */
const MAX_RETRIES = 64;
/** Extra lifetime of a record in the backend beyond its last deadline (its TTL in Redis). */
const TTL_SLACK_MS = 60_000;
/** A stapled channel has no deadline (the stapler closes it); its record lives this long in Redis at most. */
const STAPLED_TTL_MS = 24 * 3600_000;
/** Records expire() asks the backend for at a time, and batches per call at most (the next sweep does the rest). */
const EXPIRE_BATCH = 1000;
const EXPIRE_BATCHES = 10;

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

function snapshot(c: ChannelRecord, maxAttempts: number): ChannelState {
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
    ...(c.fin !== undefined ? { fin: c.fin } : {}),
    attempts: c.attempts,
    maxAttempts,
  };
}

/** What an evicted recipient reads: the channel closed for it, at the version of its eviction. */
function evictedView(c: ChannelRecord, e: Evicted, maxAttempts: number): ChannelState {
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

/** What one computed change does besides the record: collected, then committed with it. */
class Effects {
  changed = false;
  /** The record changed without a change anyone watches (a lease renewed): committed, announced to nobody. */
  touched = false;
  closed: CloseReason | undefined;
  readonly addrAdd = new Set<string>();
  readonly addrRemove = new Set<string>();
}

/** Returned by a change that must be committed before the request is computed again (a seat freed on the way). */
const AGAIN = Symbol('again');

/** The distinct addresses of a channel's participants. */
function addressesOf(c: ChannelRecord): Set<string> {
  const set = new Set<string>();
  if (c.sender !== null) set.add(c.sender.address);
  if (c.recipient !== null) set.add(c.recipient.address);
  return set;
}

function isMember(c: ChannelRecord, uuid: string): boolean {
  return [c.sender, c.recipient].some((q) => q !== null && sameToken(q.uuid, uuid)) || c.evicted.some((e) => sameToken(e.uuid, uuid));
}

/** The newest channel of that name, open or closed. */
function latestOf(list: ChannelRecord[]): ChannelRecord | undefined {
  return list[list.length - 1];
}

/** The open channel holding that name, if any. */
function openOf(list: ChannelRecord[]): ChannelRecord | undefined {
  const c = latestOf(list);
  return c !== undefined && !c.closed ? c : undefined;
}

function notFound(channel: string): RelayError {
  return new RelayError('ERR_CHANNEL_NOT_FOUND', `no channel ${channel}`);
}

/**
 * The channel of that name `uuid` takes part in (or was evicted from), newest first; if none, the
 * newest of the name (whose checks then refuse the uuid as unknown).
 */
function findFor(list: ChannelRecord[], channel: string, uuid: string): ChannelRecord {
  if (list.length === 0) throw notFound(channel);
  for (let i = list.length - 1; i >= 0; i--) if (isMember(list[i]!, uuid)) return list[i]!;
  return list[list.length - 1]!;
}

function clone(c: ChannelRecord): ChannelRecord {
  return { ...c, evicted: c.evicted.map((e) => ({ ...e })) };
}

/**
 * The channel store: the rules of docs/relay-api.md over a backend. Every method is async (a
 * backend may be across the network); the memory backend answers in the same tick.
 */
export class ChannelStore {
  readonly #config: ChannelStoreConfig;
  readonly #backend: ChannelBackend;
  /** Local watchers (long-polls) by channel name. */
  readonly #watchers = new Map<string, Set<(e: ChangeEvent | undefined) => void>>();
  readonly #closeListeners = new Set<(channel: string, reason: CloseReason, local: boolean) => void>();
  #started: Promise<void> | undefined;

  constructor(config: ChannelStoreConfig, backend: ChannelBackend) {
    this.#config = config;
    this.#backend = backend;
  }

  get backend(): ChannelBackend {
    return this.#backend;
  }

  /** Connect the backend (idempotent); every other method waits for it. */
  start(): Promise<void> {
    this.#started ??= this.#backend.start(
      (e, local) => this.#onEvent(e, local),
      () => this.#resync(),
    );
    return this.#started;
  }

  async stop(): Promise<void> {
    if (this.#started === undefined) return;
    await this.#started.catch(() => {});
    await this.#backend.stop();
  }

  async #b(): Promise<ChannelBackend> {
    await this.start();
    return this.#backend;
  }

  #snap(c: ChannelRecord): ChannelState {
    return snapshot(c, this.#config.maxAttempts);
  }

  /** Channels held, open or closed-but-retained. */
  async heldCount(): Promise<number> {
    return (await this.#b()).heldCount(this.#config.now());
  }

  /** Channels not closed (waiting, in the handshake, or stapled). */
  async openCount(): Promise<number> {
    return (await this.#b()).openCount(this.#config.now());
  }

  /** Open channels `address` takes part in. */
  async openCountOf(address: string): Promise<number> {
    return (await this.#b()).openCountOf(normalizeAddress(address), this.#config.now());
  }

  /** Throws storeUnavailable() when the backend cannot be reached. */
  async ping(): Promise<void> {
    return (await this.#b()).ping();
  }

  async #list(name: string): Promise<ChannelRecord[]> {
    return (await this.#b()).byName(name);
  }

  // ------------------------------------------------------------ commits

  #deadline(c: ChannelRecord): number | null {
    if (c.closed) return (c.closedAt ?? 0) + this.#config.closedRetentionMs;
    let d = c.stapled ? (c.leaseAt ?? Infinity) : c.createdAt + this.#config.channelTtlMs;
    if (c.recipientDeadline !== null) d = Math.min(d, c.recipientDeadline);
    return d === Infinity ? null : d;
  }

  #ttl(c: ChannelRecord, now: number): number {
    const d = c.closed
      ? (c.closedAt ?? now) + this.#config.closedRetentionMs
      : c.stapled
        ? now + STAPLED_TTL_MS
        : c.createdAt + this.#config.channelTtlMs + this.#config.closedRetentionMs;
    return Math.max(1_000, Math.min(d - now, 30 * 24 * 3600_000)) + TTL_SLACK_MS;
  }

  #commitOf(kind: Commit['kind'], c: ChannelRecord, expectedRev: number, fx: Effects, fresh = false): Commit {
    const now = this.#config.now();
    const removed = kind === 'remove';
    const event: ChangeEvent | null =
      fx.changed || removed
        ? { name: c.name, id: c.id, version: c.version, ...(fx.closed !== undefined ? { closed: fx.closed } : {}), ...(removed ? { removed: true } : {}) }
        : null;
    return {
      kind,
      record: c,
      expectedRev,
      fresh,
      addrAdd: [...fx.addrAdd],
      addrRemove: [...fx.addrRemove],
      deadline: removed ? null : this.#deadline(c),
      ttlMs: this.#ttl(c, now),
      event,
    };
  }

  /**
   * Read the records of `name`, pick one, compute the change on a copy, commit it if anything
   * changed; a commit that lost a race is computed again. An error thrown by `fn` after it changed
   * the record is thrown after the commit.
   */
  async #mutate<T>(
    name: string,
    pick: (list: ChannelRecord[]) => ChannelRecord,
    fn: (c: ChannelRecord, fx: Effects) => T | typeof AGAIN,
  ): Promise<T> {
    const backend = await this.#b();
    for (let i = 0; i < MAX_RETRIES; i++) {
      const c0 = pick(await backend.byName(name));
      const c = clone(c0);
      const fx = new Effects();
      let result: T | typeof AGAIN;
      let error: unknown;
      let failed = false;
      try {
        result = fn(c, fx);
      } catch (e) {
        failed = true;
        error = e;
        result = AGAIN;
      }
      if (fx.changed || fx.touched) {
        c.rev = c0.rev + 1;
        const r = await backend.commit(this.#commitOf('update', c, c0.rev, fx), this.#config.now());
        if (!r.ok) {
          if (r.reason === 'conflict') continue;
          throw new RelayError(r.reason === 'name-taken' ? 'ERR_INTERNAL' : r.reason, quotaMessage(r.reason));
        }
      }
      if (failed) throw error;
      if (result === AGAIN) continue;
      return result;
    }
    throw new RelayError('ERR_STORE_UNAVAILABLE', 'the channel is too busy right now, try again');
  }

  // ------------------------------------------------------------ joins

  /**
   * POST /join. A sender creates the channel (named by it, or picked by the relay); a recipient
   * takes the second seat of an existing one.
   */
  join(req: JoinRequest, address: string, tcp: string | null = null): Promise<JoinResult> {
    return req.role === 'sender' ? this.#joinSender(req, address, tcp) : this.#joinRecipient(req, address);
  }

  /** `tcp`: the TCP stapling address this process advertises (`HOST:PORT`), recorded in the channel it creates. */
  async #joinSender(req: JoinRequest, address: string, tcp: string | null): Promise<JoinResult> {
    const backend = await this.#b();
    const addr = normalizeAddress(address);
    const participant: Participant = { uuid: randomUUID(), role: 'sender', address: addr };
    const create = async (name: string, fresh: boolean): Promise<JoinResult | undefined> => {
      const channel: ChannelRecord = {
        id: randomUUID(),
        name,
        curve: req.curve ?? DEFAULT_CURVE,
        createdAt: this.#config.now(),
        version: 1,
        rev: 1,
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
        tcp,
      };
      const fx = new Effects();
      fx.changed = true;
      fx.addrAdd.add(addr);
      const r = await backend.commit(this.#commitOf('create', channel, 0, fx, fresh), this.#config.now());
      if (r.ok) return { participant, state: this.#snap(channel), tcp };
      if (r.reason === 'name-taken') return undefined;
      if (r.reason === 'ERR_CHANNEL_OCCUPIED') throw new RelayError('ERR_CHANNEL_OCCUPIED', `channel ${name} already has a sender`);
      if (r.reason === 'conflict') throw new RelayError('ERR_INTERNAL', 'unexpected conflict creating a channel');
      throw new RelayError(r.reason, quotaMessage(r.reason));
    };
    // a closed channel no longer holds its name: a fixed code can be used again at once
    if (req.channel !== undefined) return (await create(req.channel, false))!;
    // A free decimal name; terminates: PICKS_PER_RANGE tries per range, then a wider range.
    let digits = channelNameDigits(await backend.heldCount(this.#config.now()));
    for (; digits <= LAST_DIGITS; digits++) {
      for (let i = 0; i < PICKS_PER_RANGE; i++) {
        const n = this.#config.randomInt(1, 10 ** digits);
        if (!Number.isSafeInteger(n) || n < 1 || n >= 10 ** digits) continue;
        const joined = await create(String(n), true);
        if (joined !== undefined) return joined;
      }
    }
    throw new RelayError('ERR_TOO_MANY_CHANNELS', 'no free channel name found, try again later');
  }

  async #joinRecipient(req: JoinRequest, address: string): Promise<JoinResult> {
    const name = req.channel;
    if (name === undefined) throw new RelayError('ERR_BAD_REQUEST', 'a recipient must name the channel');
    const addr = normalizeAddress(address);
    return this.#mutate(
      name,
      // only an open channel is joined: a closed one's name waits for its next sender
      (list) => openOf(list) ?? throwIt(notFound(name)),
      (c, fx) => {
        // a seat whose time ran out is freed now, not at the next sweep
        if (c.recipientDeadline !== null && this.#config.now() >= c.recipientDeadline) {
          this.#evict(c, fx, 'expired', false);
          return AGAIN;
        }
        if (c.recipient !== null) throw new RelayError('ERR_CHANNEL_FULL', `channel ${c.name} already has a recipient`);
        if (req.curve !== undefined && req.curve !== c.curve)
          throw new RelayError('ERR_BAD_REQUEST', `channel ${c.name} uses curve ${c.curve}, not ${req.curve}`);
        const participant: Participant = { uuid: randomUUID(), role: 'recipient', address: addr };
        if (!addressesOf(c).has(addr)) fx.addrAdd.add(addr);
        c.recipient = participant;
        this.#startDeadline(c);
        this.#bump(c, fx);
        return { participant, state: this.#snap(c), tcp: c.tcp ?? null };
      },
    );
  }

  // ------------------------------------------------------------ reads

  /** Check that `uuid` is a participant of `channel` and uses it from the address it joined from. */
  async authenticate(channel: string, uuid: string, address: string): Promise<Participant> {
    const c = findFor(await this.#list(channel), channel, uuid);
    const p = this.#who(c, uuid, address);
    if ('role' in p) return p;
    throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed to this recipient`);
  }

  /** A participant, or a recipient that was evicted; checked against the address it joined from. */
  #who(c: ChannelRecord, uuid: string, address: string): Participant | Evicted {
    const p: Participant | Evicted | undefined =
      [c.sender, c.recipient].find((q): q is Participant => q !== null && sameToken(q.uuid, uuid)) ??
      c.evicted.find((e) => sameToken(e.uuid, uuid));
    if (p === undefined) throw new RelayError('ERR_UNKNOWN_PARTICIPANT', `not a participant of channel ${c.name}`);
    if (p.address !== normalizeAddress(address))
      throw new RelayError('ERR_ADDRESS_MISMATCH', `${'role' in p ? `the ${p.role}` : 'a former recipient'} of channel ${c.name} joined from another address`);
    return p;
  }

  /** POST /channel without writes: the state, for a participant (closed channels too, until removed). */
  async read(ref: { channel: string; uuid: string }, address: string): Promise<ChannelState> {
    const c = findFor(await this.#list(ref.channel), ref.channel, ref.uuid);
    const p = this.#who(c, ref.uuid, address);
    return 'role' in p ? this.#snap(c) : evictedView(c, p, this.#config.maxAttempts);
  }

  /** The state of the newest channel of that name (the open one, if any), or undefined if there is none. */
  async get(channel: string): Promise<ChannelState | undefined> {
    const c = latestOf(await this.#list(channel));
    return c === undefined ? undefined : this.#snap(c);
  }

  /**
   * What `ref.uuid` reads of its own channel of that name (a closed or evicted view included),
   * without the address check; undefined once that channel is gone. For the long-polls.
   */
  async peek(ref: { channel: string; uuid: string }): Promise<ChannelState | undefined> {
    const c = (await this.#list(ref.channel)).find((x) => isMember(x, ref.uuid));
    if (c === undefined) return undefined;
    const e = c.evicted.find((x) => sameToken(x.uuid, ref.uuid));
    return e !== undefined ? evictedView(c, e, this.#config.maxAttempts) : this.#snap(c);
  }

  /** The participant seated as `role` in the newest channel of that name, if any (for tests). */
  async participant(channel: string, role: Role): Promise<Participant | undefined> {
    const c = latestOf(await this.#list(channel));
    return (role === 'sender' ? c?.sender : c?.recipient) ?? undefined;
  }

  // ------------------------------------------------------------ writes

  /**
   * POST /channel: authenticate, then apply the writes (x; y with hh_k; h_k) and `close`, all or
   * nothing, as one change (one version bump). `wait` and `since` are the HTTP layer's business.
   */
  update(req: ChannelRequest, address: string): Promise<ChannelState> {
    return this.#mutate(
      req.channel,
      (list) => findFor(list, req.channel, req.uuid),
      (c, fx) => this.#update(c, fx, req, address),
    );
  }

  #update(c: ChannelRecord, fx: Effects, req: ChannelRequest, address: string): ChannelState {
    const who = this.#who(c, req.uuid, address);
    const fields = req.x !== undefined || req.y !== undefined || req.hh_k !== undefined || req.h_k !== undefined;
    const writes = fields || req.reject === true;
    const fin = req.fin !== undefined;
    if (req.reason !== undefined && req.close !== true)
      throw new RelayError('ERR_BAD_REQUEST', 'reason is only allowed with close: true');
    if (req.reason !== undefined && !peerCloseReasons.has(req.reason))
      throw new RelayError('ERR_BAD_REQUEST', 'unknown close reason');
    if (req.reject === true && (fields || fin || req.close === true))
      throw new RelayError('ERR_BAD_REQUEST', 'reject comes alone, without writes or close');
    if (!('role' in who)) {
      // an evicted recipient: the channel is closed for it; it may read and say goodbye, nothing more
      if (writes || fin) throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed to this recipient`);
      return evictedView(c, who, this.#config.maxAttempts);
    }
    const p = who;
    if (!writes && !fin && req.close !== true) return this.#snap(c);
    if (fin) {
      // the recipient's proof that everything arrived: kept even in a closed channel (the sender
      // may have closed it on a dropped connection before the proof came), for its retention
      if (p.role !== 'recipient') throw new RelayError('ERR_WRONG_ROLE', 'only the recipient writes fin');
      if (c.h_k === null) throw new RelayError('ERR_OUT_OF_ORDER', 'fin follows h_k');
      if (c.fin !== undefined && c.fin !== req.fin) throw new RelayError('ERR_FIELD_ALREADY_SET', 'fin is already set');
      if (c.fin === undefined) {
        c.fin = req.fin;
        // an open channel's change is counted below; a closed channel's version stays (its view never changes)
        if (c.closed) fx.touched = true;
      }
    }
    if (c.closed) {
      if (!writes) return this.#snap(c); // closing twice is harmless: both peers may say goodbye
      throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed`);
    }
    if (req.reject === true) {
      if (p.role !== 'sender') throw new RelayError('ERR_WRONG_ROLE', 'only the sender rejects a recipient');
      if (c.h_k !== null) throw new RelayError('ERR_FIELD_ALREADY_SET', 'h_k is already set: the recipient was accepted');
      if (c.y === null) throw new RelayError('ERR_OUT_OF_ORDER', 'reject follows y and hh_k');
      this.#evict(c, fx, 'wrong-code', true);
      return this.#snap(c);
    }
    if (writes) checkWrites(c, p, req);
    if (req.close === true && p.role === 'recipient' && c.h_k === null) {
      // a recipient that has not been accepted cannot end the sender's transfer: it leaves the seat
      // (a guess it committed with y + hh_k counts as an attempt)
      const gone = this.#evict(c, fx, req.reason ?? 'done', c.y !== null || req.y !== undefined);
      return evictedView(c, gone!, this.#config.maxAttempts);
    }

    if (req.x !== undefined) c.x = req.x;
    if (req.y !== undefined) c.y = req.y;
    if (req.hh_k !== undefined) c.hh_k = req.hh_k;
    if (req.h_k !== undefined) c.h_k = req.h_k;
    if (req.x !== undefined) this.#startDeadline(c);
    if (req.y !== undefined) c.recipientDeadline = null;
    if (req.close === true) this.#close(c, fx, req.reason ?? 'done');
    else this.#bump(c, fx);
    return this.#snap(c);
  }

  /** A seated recipient with x there for it and no y yet: its time to answer starts (once). */
  #startDeadline(c: ChannelRecord): void {
    if (c.recipient !== null && c.x !== null && c.y === null && c.recipientDeadline === null)
      c.recipientDeadline = this.#config.now() + this.#config.recipientTimeoutMs;
  }

  /**
   * Take the recipient's seat away before the key agreement completed: its uuid reads the channel
   * as closed with `reason`; x, y and hh_k are cleared; `attempt` counts a failed attempt, and the
   * last allowed one closes the channel 'wrong-code'. One change (one version).
   */
  #evict(c: ChannelRecord, fx: Effects, reason: CloseReason, attempt: boolean): Evicted | undefined {
    const r = c.recipient;
    if (r === null) return undefined;
    const e: Evicted = { uuid: r.uuid, address: r.address, reason, version: 0 };
    c.evicted.push(e);
    if (c.evicted.length > MAX_EVICTED) c.evicted.shift();
    c.recipient = null;
    if (c.sender?.address !== r.address) fx.addrRemove.add(r.address);
    c.x = null;
    c.y = null;
    c.hh_k = null;
    c.recipientDeadline = null;
    if (attempt) c.attempts++;
    if (attempt && c.attempts >= this.#config.maxAttempts) this.#close(c, fx, 'wrong-code');
    else this.#bump(c, fx);
    e.version = c.version;
    return e;
  }

  /** The TCP side joined both peers' connections. Throws if the channel is gone or closed. */
  markStapled(channel: string): Promise<ChannelState> {
    return this.#mutate(
      channel,
      (list) => latestOf(list) ?? throwIt(notFound(channel)), // the newest: the open one, if any
      (c, fx) => {
        if (c.closed) throw new RelayError('ERR_CHANNEL_CLOSED', `channel ${c.name} is closed`);
        if (!c.stapled) {
          c.stapled = true;
          c.owner = this.#config.instanceId;
          c.leaseAt = this.#config.now() + this.#config.stapledLeaseMs;
          this.#bump(c, fx);
        }
        return this.#snap(c);
      },
    );
  }

  /** Close the newest channel of that name (idempotent). Its state stays readable until expire() removes it. */
  close(channel: string, reason: CloseReason): Promise<ChannelState> {
    return this.#mutate(
      channel,
      (list) => latestOf(list) ?? throwIt(notFound(channel)),
      (c, fx) => {
        if (!c.closed) this.#close(c, fx, reason);
        return this.#snap(c);
      },
    );
  }

  /** Forget every channel of that name now. Watchers are woken (they will find it gone); close listeners run if one was open. */
  async remove(channel: string): Promise<boolean> {
    const list = await this.#list(channel);
    if (list.length === 0) return false;
    for (const c of list) await this.#removeRecord(c);
    return true;
  }

  /** Remove one record (re-read on a lost race); false if it is gone already. */
  async #removeRecord(c0: ChannelRecord): Promise<boolean> {
    const backend = await this.#b();
    let c: ChannelRecord | undefined = c0;
    for (let i = 0; i < MAX_RETRIES && c !== undefined; i++) {
      const fx = new Effects();
      if (!c.closed) {
        for (const a of addressesOf(c)) fx.addrRemove.add(a);
        fx.closed = 'error';
      }
      const r = await backend.commit(this.#commitOf('remove', c, c.rev, fx), this.#config.now());
      if (r.ok) return true;
      const id: string = c.id;
      c = (await backend.byName(c.name)).find((x) => x.id === id);
    }
    return false;
  }

  /**
   * Close open channels that were not stapled within channelTtlMs of their creation (reason 'expired'),
   * close stapled channels whose owner process stopped beating (checked every stapledLeaseMs),
   * evict recipients whose recipientTimeoutMs ran out, and remove closed channels older than closedRetentionMs.
   * Several processes may sweep at once: each change is a compare-and-set, done by one of them.
   */
  async expire(now: number): Promise<ExpireResult> {
    // this process beats first, so that no sweep, its own or another's, takes it for gone
    await (await this.#b()).heartbeat(this.#config.instanceId, this.#config.stapledLeaseMs, now);
    const result: ExpireResult = { closed: [], removed: [], evicted: [] };
    const backend = await this.#b();
    for (let batch = 0; batch < EXPIRE_BATCHES; batch++) {
      const due = await backend.due(now, EXPIRE_BATCH);
      for (const [name, id] of due) await this.#expireOne(now, name, id, result);
      if (due.length < EXPIRE_BATCH) break;
    }
    return result;
  }

  async #expireOne(now: number, name: string, id: string, result: ExpireResult): Promise<void> {
    const backend = await this.#b();
    {
      const c = (await backend.byName(name)).find((x) => x.id === id);
      if (c === undefined) return void (await backend.dropDue(name, id));
      if (c.closed) {
        if (c.closedAt !== null && now - c.closedAt >= this.#config.closedRetentionMs) {
          if (await this.#removeRecord(c)) result.removed.push(name);
        }
        return;
      }
      // a stapled channel whose lease is due: is the process holding its sockets still there?
      const ownerAlive =
        c.stapled && c.owner !== undefined && c.leaseAt !== undefined && now >= c.leaseAt
          ? c.owner === this.#config.instanceId || (await backend.alive(c.owner, now))
          : undefined;
      const done = await this.#mutate(
        name,
        (list) => list.find((x) => x.id === id) ?? throwIt(notFound(name)),
        (x, fx): keyof ExpireResult | undefined => {
          if (x.closed) return undefined;
          if (!x.stapled && now - x.createdAt >= this.#config.channelTtlMs) {
            this.#close(x, fx, 'expired');
            return 'closed';
          }
          if (x.stapled && ownerAlive !== undefined && x.owner === c.owner && x.leaseAt !== undefined && now >= x.leaseAt) {
            if (!ownerAlive) {
              // its process is gone, and its sockets with it: the peers went on elsewhere, or not at all
              this.#close(x, fx, 'expired');
              return 'closed';
            }
            x.leaseAt = now + this.#config.stapledLeaseMs;
            fx.touched = true;
            return undefined;
          }
          if (x.recipientDeadline !== null && now >= x.recipientDeadline) {
            this.#evict(x, fx, 'expired', false);
            return 'evicted';
          }
          return undefined;
        },
      ).catch((e: unknown) => {
        if (isRelayError(e, 'ERR_CHANNEL_NOT_FOUND')) return undefined;
        throw e;
      });
      if (done !== undefined) result[done].push(name);
    }
  }

  // ------------------------------------------------------------ watchers

  /**
   * Call `fn` after every change of a channel of that name (and when one is removed), whichever
   * process made it; `fn` reads what it needs (peek). Returns the unsubscribe function.
   */
  subscribe(channel: string | { channel: string; uuid: string }, fn: () => void): () => void {
    const name = typeof channel === 'string' ? channel : channel.channel;
    let set = this.#watchers.get(name);
    if (set === undefined) this.#watchers.set(name, (set = new Set()));
    const w = (): void => fn();
    set.add(w);
    return () => {
      const s = this.#watchers.get(name);
      if (s === undefined) return;
      s.delete(w);
      if (s.size === 0) this.#watchers.delete(name);
    };
  }

  /** Watchers of one channel name, or of all: a leak check for tests. */
  watcherCount(channel?: string): number {
    if (channel !== undefined) return this.#watchers.get(channel)?.size ?? 0;
    let n = 0;
    for (const s of this.#watchers.values()) n += s.size;
    return n;
  }

  /**
   * Call `fn` whenever a channel becomes closed or an open channel is removed, in any process of
   * the fleet; `local` is true in the process that made the change (count it there only).
   */
  onClose(fn: (channel: string, reason: CloseReason, local: boolean) => void): () => void {
    this.#closeListeners.add(fn);
    return () => {
      this.#closeListeners.delete(fn);
    };
  }

  #onEvent(e: ChangeEvent, local: boolean): void {
    const set = this.#watchers.get(e.name);
    if (set !== undefined) for (const fn of [...set]) fn(e);
    if (e.closed !== undefined) for (const fn of [...this.#closeListeners]) fn(e.name, e.closed, local);
  }

  /** Changes may have been missed (the store was unreachable): every watcher reads again. */
  #resync(): void {
    for (const set of [...this.#watchers.values()]) for (const fn of [...set]) fn(undefined);
  }

  // ------------------------------------------------------------ helpers

  #close(c: ChannelRecord, fx: Effects, reason: CloseReason): void {
    for (const a of addressesOf(c)) fx.addrRemove.add(a);
    c.closed = true;
    c.closeReason = reason;
    c.closedAt = this.#config.now();
    c.recipientDeadline = null;
    fx.closed = reason;
    this.#bump(c, fx);
  }

  #bump(c: ChannelRecord, fx: Effects): void {
    c.version++;
    fx.changed = true;
  }
}

function checkWrites(c: ChannelRecord, p: Participant, req: ChannelRequest): void {
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

function quotaMessage(code: string): string {
  switch (code) {
    case 'ERR_TOO_MANY_CHANNELS':
      return 'the relay holds too many channels, try again later';
    case 'ERR_RATE_LIMITED':
      return 'too many open channels from this address, try again later';
    default:
      return 'internal relay error';
  }
}

function throwIt(e: Error): never {
  throw e;
}

/** Digits of a relay-picked channel name while `held` channels are held: the fewest (≥ 4) with 10^d ≥ NAME_SPREAD × (held + 1). */
export function channelNameDigits(held: number): number {
  let digits = FIRST_DIGITS;
  while (digits < LAST_DIGITS && 10 ** digits < NAME_SPREAD * (held + 1)) digits++;
  return digits;
}
