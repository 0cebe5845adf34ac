/**
 * The default channel backend: every record in this process's memory (no Redis needed). Commits
 * are compare-and-sets like Redis's (a request may compute its change across an await), applied
 * and announced in the same tick. The rate windows live here too.
 */
import type { ChangeEvent, ChannelBackend, ChannelRecord, Commit, CommitResult } from './channels.js';

export class MemoryBackend implements ChannelBackend {
  readonly #maxChannels: number;
  readonly #maxPerAddress: number;
  /** Every record held, by name, oldest first: closed ones and at most one open one, which is then the last. */
  readonly #channels = new Map<string, ChannelRecord[]>();
  #held = 0;
  #open = 0;
  /** Open channels (ids) each address takes part in. */
  readonly #perAddress = new Map<string, Set<string>>();
  /** The next deadline of each record that has one: id → [name, deadline]. */
  readonly #deadlines = new Map<string, [string, number]>();
  #onEvent: (e: ChangeEvent, local: boolean) => void = () => {};
  readonly #rates = new Map<string, RateLimiter>();
  readonly #distinct = new Map<string, DistinctLimiter>();

  constructor(limits: { maxChannels: number; maxChannelsPerAddress: number }) {
    this.#maxChannels = limits.maxChannels;
    this.#maxPerAddress = limits.maxChannelsPerAddress;
  }

  async start(onEvent: (e: ChangeEvent, local: boolean) => void): Promise<void> {
    this.#onEvent = onEvent;
  }

  async stop(): Promise<void> {}

  async ping(): Promise<void> {}

  async byName(name: string): Promise<ChannelRecord[]> {
    return [...(this.#channels.get(name) ?? [])];
  }

  async heldCount(): Promise<number> {
    return this.#held;
  }

  async openCount(): Promise<number> {
    return this.#open;
  }

  async openCountOf(address: string): Promise<number> {
    return this.#perAddress.get(address)?.size ?? 0;
  }

  async due(now: number, limit: number): Promise<[string, string][]> {
    const out: [string, string][] = [];
    for (const [id, [name, deadline]] of this.#deadlines) {
      if (out.length >= limit) break;
      if (deadline <= now) out.push([name, id]);
    }
    return out;
  }

  async dropDue(_name: string, id: string): Promise<void> {
    this.#deadlines.delete(id);
  }

  async commit(c: Commit, _now: number): Promise<CommitResult> {
    return this.commitNow(c);
  }

  /** The commit, synchronously (for the tests of this backend). */
  commitNow(c: Commit): CommitResult {
    const r = c.record;
    const list = this.#channels.get(r.name);
    let at = -1;
    if (c.kind === 'create') {
      const last = list?.[list.length - 1];
      if (c.fresh && list !== undefined) return { ok: false, reason: 'name-taken' };
      if (last !== undefined && !last.closed) return { ok: false, reason: 'ERR_CHANNEL_OCCUPIED' };
      if (this.#held >= this.#maxChannels) return { ok: false, reason: 'ERR_TOO_MANY_CHANNELS' };
    } else {
      at = list?.findIndex((x) => x.id === r.id) ?? -1;
      if (at < 0 || list![at]!.rev !== c.expectedRev) return { ok: false, reason: 'conflict' };
    }
    for (const a of c.addrAdd) if ((this.#perAddress.get(a)?.size ?? 0) >= this.#maxPerAddress) return { ok: false, reason: 'ERR_RATE_LIMITED' };

    const wasOpen = at >= 0 ? !list![at]!.closed : false;
    if (c.kind === 'create') {
      if (list === undefined) this.#channels.set(r.name, [r]);
      else list.push(r);
      this.#held++;
      this.#open++;
    } else if (c.kind === 'remove') {
      list!.splice(at, 1);
      if (list!.length === 0) this.#channels.delete(r.name);
      this.#held--;
      if (wasOpen) this.#open--;
    } else {
      list![at] = r;
      if (wasOpen && r.closed) this.#open--;
    }
    if (c.kind === 'remove' || c.deadline === null) this.#deadlines.delete(r.id);
    else this.#deadlines.set(r.id, [r.name, c.deadline]);
    for (const a of c.addrRemove) {
      const s = this.#perAddress.get(a);
      s?.delete(r.id);
      if (s?.size === 0) this.#perAddress.delete(a);
    }
    for (const a of c.addrAdd) {
      let s = this.#perAddress.get(a);
      if (s === undefined) this.#perAddress.set(a, (s = new Set()));
      s.add(r.id);
    }
    if (c.event !== null) this.#onEvent(c.event, true);
    return { ok: true };
  }

  async rateHit(kind: string, key: string, max: number, windowMs: number, now: number): Promise<number> {
    let l = this.#rates.get(kind);
    if (l === undefined) this.#rates.set(kind, (l = new RateLimiter(max, windowMs)));
    return l.hit(key, now);
  }

  async distinctOver(kind: string, key: string, max: number, windowMs: number, now: number): Promise<number> {
    return this.#distinctOf(kind, max, windowMs).over(key, now);
  }

  async distinctHit(kind: string, key: string, value: string, max: number, windowMs: number, now: number): Promise<void> {
    this.#distinctOf(kind, max, windowMs).hit(key, value, now);
  }

  #distinctOf(kind: string, max: number, windowMs: number): DistinctLimiter {
    let l = this.#distinct.get(kind);
    if (l === undefined) this.#distinct.set(kind, (l = new DistinctLimiter(max, windowMs)));
    return l;
  }

  purge(now: number): void {
    for (const l of this.#rates.values()) l.purge(now);
    for (const l of this.#distinct.values()) l.purge(now);
  }

  /** Processes that beat (one, unless tests share this backend between stores): id → until. */
  readonly #beats = new Map<string, number>();

  async heartbeat(id: string, ttlMs: number, now: number): Promise<void> {
    this.#beats.set(id, now + ttlMs);
  }

  async alive(id: string, now: number): Promise<boolean> {
    const until = this.#beats.get(id);
    if (until !== undefined && until <= now) this.#beats.delete(id);
    return until !== undefined && until > now;
  }
}

/**
 * Requests per address in fixed windows: an address's window starts with its first request and
 * lasts `windowMs`; beyond `max` requests in it, hit() answers how long until it ends. At most
 * MAX_TRACKED addresses are held (the oldest windows are dropped first); purge() forgets ended ones.
 */
class RateLimiter {
  static readonly MAX_TRACKED = 100_000;
  readonly #windows = new Map<string, { start: number; count: number }>();
  constructor(
    readonly max: number,
    readonly windowMs: number,
  ) {}

  /** Count a request from `key`: 0 if allowed, else the milliseconds until its window ends. */
  hit(key: string, now: number): number {
    let w = this.#windows.get(key);
    if (w === undefined || now - w.start >= this.windowMs) {
      this.#windows.delete(key); // re-inserted last: the map stays in window-start order
      if (this.#windows.size >= RateLimiter.MAX_TRACKED) {
        const oldest = this.#windows.keys().next();
        if (oldest.done !== true) this.#windows.delete(oldest.value);
      }
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
    }
    w.count++;
    return w.count <= this.max ? 0 : Math.max(1, w.start + this.windowMs - now);
  }

  /** Forget the windows that have ended. */
  purge(now: number): void {
    for (const [key, w] of this.#windows) {
      if (now - w.start < this.windowMs) break; // in start order: the rest are younger
      this.#windows.delete(key);
    }
  }
}

/**
 * Distinct values per address in fixed windows (an address's window starts with its first value
 * and lasts `windowMs`): over() tells whether `max` distinct values were counted in it. At most
 * `max` values per address are kept (hit() is not called once over), and at most MAX_TRACKED
 * addresses (the oldest windows are dropped first); purge() forgets ended windows.
 */
class DistinctLimiter {
  static readonly MAX_TRACKED = 100_000;
  readonly #windows = new Map<string, { start: number; values: Set<string> }>();
  constructor(
    readonly max: number,
    readonly windowMs: number,
  ) {}

  /** 0 if `key` may go on, else the milliseconds until its window ends. */
  over(key: string, now: number): number {
    const w = this.#windows.get(key);
    if (w === undefined) return 0;
    const left = w.start + this.windowMs - now;
    return left > 0 && w.values.size >= this.max ? left : 0;
  }

  /** Count `value` for `key` (once per window, however often it comes). */
  hit(key: string, value: string, now: number): void {
    let w = this.#windows.get(key);
    if (w === undefined || now - w.start >= this.windowMs) {
      this.#windows.delete(key); // re-inserted last: the map stays in window-start order
      if (this.#windows.size >= DistinctLimiter.MAX_TRACKED) {
        const oldest = this.#windows.keys().next();
        if (oldest.done !== true) this.#windows.delete(oldest.value);
      }
      w = { start: now, values: new Set() };
      this.#windows.set(key, w);
    }
    if (w.values.size < this.max) w.values.add(value);
  }

  /** Forget the windows that have ended. */
  purge(now: number): void {
    for (const [key, w] of this.#windows) {
      if (now - w.start < this.windowMs) break;
      this.#windows.delete(key);
    }
  }
}
