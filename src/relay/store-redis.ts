/**
 * The Redis (or Valkey) channel backend, for a fleet of relay processes sharing their channel
 * state (`tsc-croc relay --store redis://HOST:PORT[/DB]`). Loaded with a dynamic import only when
 * a store URL is given: the default relay and the peer CLI never load ioredis.
 *
 * Keys (under the prefix, default 'tsc-croc:'), every one with a TTL so that nothing leaks when
 * the whole fleet crashes:
 *   c:{id}      the channel record (JSON), PX its TTL (deadline + slack; 24 h while stapled)
 *   n:{name}    LIST of the ids held under the name, oldest first
 *   o:{name}    the id of the open channel holding the name
 *   held, open  ZSETs of ids scored by their record's expiry (counted after dropping expired ones)
 *   a:{addr}    ZSET of the open channels an address takes part in (maxChannelsPerAddress)
 *   due         ZSET of "name id" scored by the next deadline expire() must look at
 *   r:{kind}:{key} / d:{kind}:{key}  rate windows (HASH start/count) and distinct-name windows (+ SET)
 *   hb:{process} a relay process's heartbeat: the time its beat ends (set by every sweep); its stapled
 *               channels (record `owner`) are closed by any process's sweep once it is gone
 *   ev          the pub/sub channel: one message per change ({name,id,version,closed?,removed?,o})
 * Every commit is one Lua script (EVALSHA): compare the record's revision, check the name, the
 * channels cap and the address quota, then write the record, its indexes and counters, and
 * publish the change, atomically. `now` comes from the caller's clock, never from Redis TIME
 * (the processes' clocks are assumed to agree within a second or so: NTP).
 * Needs a single Redis primary (not Cluster: the scripts build their keys).
 */
import { randomUUID } from 'node:crypto';

/** How long a heartbeat key outlives its end (clocks of the fleet agree within a second or so). */
const TTL_SLACK_MS = 60_000;
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { isRelayError, storeUnavailable, type ChangeEvent, type ChannelBackend, type ChannelRecord, type Commit, type CommitResult } from './channels.js';

/** Store round trips and failures, for /metrics. */
export interface StoreObserver {
  roundTrip(seconds: number): void;
  error(): void;
}

const COUNT = `
local function count(key, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
`;

/** ARGV: prefix, commit JSON, now, maxChannels, maxPerAddress, event message ('' for none). */
const COMMIT_LUA = `${COUNT}
local P = ARGV[1]
local c = cjson.decode(ARGV[2])
local now = tonumber(ARGV[3])
local maxCh = tonumber(ARGV[4])
local maxPer = tonumber(ARGV[5])
local id = c.id
local name = c.name
local ck = P .. 'c:' .. id
local nk = P .. 'n:' .. name
local ok = P .. 'o:' .. name
local ttl = c.ttl
local exp = now + ttl
if c.kind == 'create' then
  if c.fresh and redis.call('EXISTS', nk) == 1 then return 'name-taken' end
  local cur = redis.call('GET', ok)
  if cur and redis.call('EXISTS', P .. 'c:' .. cur) == 1 then return 'ERR_CHANNEL_OCCUPIED' end
  if count(P .. 'held', now) >= maxCh then return 'ERR_TOO_MANY_CHANNELS' end
else
  local cur = redis.call('GET', ck)
  if not cur then return 'conflict' end
  if cjson.decode(cur).rev ~= c.expectedRev then return 'conflict' end
end
for _, a in ipairs(c.addrAdd) do
  if count(P .. 'a:' .. a, now) >= maxPer then return 'ERR_RATE_LIMITED' end
end
local member = name .. ' ' .. id
if c.kind == 'remove' then
  redis.call('DEL', ck)
  redis.call('LREM', nk, 0, id)
  if redis.call('GET', ok) == id then redis.call('DEL', ok) end
  redis.call('ZREM', P .. 'held', id)
  redis.call('ZREM', P .. 'open', id)
  redis.call('ZREM', P .. 'due', member)
else
  redis.call('SET', ck, c.json, 'PX', ttl)
  if c.kind == 'create' then redis.call('RPUSH', nk, id) end
  extend(nk, ttl)
  redis.call('ZADD', P .. 'held', exp, id)
  extend(P .. 'held', ttl)
  if c.open then
    redis.call('SET', ok, id, 'PX', ttl)
    redis.call('ZADD', P .. 'open', exp, id)
    extend(P .. 'open', ttl)
  else
    if redis.call('GET', ok) == id then redis.call('DEL', ok) end
    redis.call('ZREM', P .. 'open', id)
  end
  if c.deadline >= 0 then
    redis.call('ZADD', P .. 'due', c.deadline, member)
    extend(P .. 'due', ttl)
  else
    redis.call('ZREM', P .. 'due', member)
  end
end
for _, a in ipairs(c.addrRemove) do redis.call('ZREM', P .. 'a:' .. a, id) end
for _, a in ipairs(c.addrAdd) do
  redis.call('ZADD', P .. 'a:' .. a, exp, id)
  extend(P .. 'a:' .. a, ttl)
end
if ARGV[6] ~= '' then redis.call('PUBLISH', P .. 'ev', ARGV[6]) end
return 'ok'
`;

/** ARGV: prefix, name. The records held under the name, oldest first (ids whose record expired are dropped). */
const BY_NAME_LUA = `
local P = ARGV[1]
local nk = P .. 'n:' .. ARGV[2]
local ids = redis.call('LRANGE', nk, 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('GET', P .. 'c:' .. id)
  if v then out[#out + 1] = v else redis.call('LREM', nk, 0, id) end
end
return out
`;

/** ARGV: prefix, now, limit. Members of 'due' at or before now. */
const DUE_LUA = `
local P = ARGV[1]
return redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
`;

/** ARGV: prefix, member. */
const DROP_DUE_LUA = `
return redis.call('ZREM', ARGV[1] .. 'due', ARGV[2])
`;

/** ARGV: prefix, key (ZSET suffix), now. */
const COUNT_LUA = `${COUNT}
return count(ARGV[1] .. ARGV[2], tonumber(ARGV[3]))
`;

/** ARGV: key, max, windowMs, now. A fixed window: 0 if allowed, else ms until it ends. */
const RATE_LUA = `
local k = ARGV[1]
local max = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local s = tonumber(redis.call('HGET', k, 's'))
if s == nil or now - s >= win or now < s then
  redis.call('HSET', k, 's', now, 'n', 0)
  s = now
end
redis.call('PEXPIRE', k, win + 60000)
local n = redis.call('HINCRBY', k, 'n', 1)
if n <= max then return 0 end
return math.max(1, s + win - now)
`;

/** ARGV: key, max, windowMs, now, mode ('over' | 'hit'), value. Distinct values per window. */
const DISTINCT_LUA = `
local k = ARGV[1]
local vk = k .. ':v'
local max = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local s = tonumber(redis.call('HGET', k, 's'))
if ARGV[5] == 'over' then
  if s == nil then return 0 end
  local left = s + win - now
  if left > 0 and redis.call('SCARD', vk) >= max then return left end
  return 0
end
if s == nil or now - s >= win or now < s then
  redis.call('DEL', vk)
  redis.call('HSET', k, 's', now)
end
if redis.call('SCARD', vk) < max then redis.call('SADD', vk, ARGV[6]) end
redis.call('PEXPIRE', k, win + 60000)
redis.call('PEXPIRE', vk, win + 60000)
return 0
`;

interface Scripts {
  tcCommit(...args: (string | number)[]): Promise<string>;
  tcByName(...args: string[]): Promise<string[]>;
  tcDue(...args: (string | number)[]): Promise<string[]>;
  tcDropDue(...args: string[]): Promise<number>;
  tcCount(...args: (string | number)[]): Promise<number>;
  tcRate(...args: (string | number)[]): Promise<number>;
  tcDistinct(...args: (string | number)[]): Promise<number>;
}

type Client = RedisClient & Scripts;

export interface RedisBackendOptions {
  url: string;
  prefix: string;
  maxChannels: number;
  maxChannelsPerAddress: number;
  /** A command not answered within this is failed (503 to the client). */
  commandTimeoutMs?: number;
  observer?: StoreObserver;
  /** Told when the connection is lost or back (for the log). */
  onConnection?: (up: boolean, err?: Error) => void;
}

export class RedisBackend implements ChannelBackend {
  readonly #o: RedisBackendOptions;
  readonly #origin = randomUUID();
  #cmd: Client | undefined;
  #sub: RedisClient | undefined;
  #up = false;
  #stopping = false;
  readonly #upWaiters = new Set<() => void>();

  constructor(options: RedisBackendOptions) {
    this.#o = options;
  }

  async start(onEvent: (e: ChangeEvent, local: boolean) => void, onResync: () => void): Promise<void> {
    // ioredis is CommonJS: its named export, or (through a bundler's interop) the default's
    const mod = (await import('ioredis')) as unknown as { Redis?: typeof RedisClient; default?: { Redis?: typeof RedisClient } & typeof RedisClient };
    const Redis = mod.Redis ?? mod.default?.Redis ?? mod.default;
    if (typeof Redis !== 'function') throw new Error('the ioredis module has no Redis client');
    const base: RedisOptions = {
      lazyConnect: true,
      // fail at once while disconnected (the client gets 503 and retries), never queue without bound
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: this.#o.commandTimeoutMs ?? 2_000,
      connectTimeout: 2_000,
      // reconnect for ever, at most a second apart: the relay recovers without a restart
      retryStrategy: (n: number) => Math.min(50 * n, 1_000),
    };
    const cmd = new Redis(this.#o.url, base) as Client;
    cmd.defineCommand('tcCommit', { numberOfKeys: 0, lua: COMMIT_LUA });
    cmd.defineCommand('tcByName', { numberOfKeys: 0, lua: BY_NAME_LUA });
    cmd.defineCommand('tcDue', { numberOfKeys: 0, lua: DUE_LUA });
    cmd.defineCommand('tcDropDue', { numberOfKeys: 0, lua: DROP_DUE_LUA });
    cmd.defineCommand('tcCount', { numberOfKeys: 0, lua: COUNT_LUA });
    cmd.defineCommand('tcRate', { numberOfKeys: 0, lua: RATE_LUA });
    cmd.defineCommand('tcDistinct', { numberOfKeys: 0, lua: DISTINCT_LUA });
    // the subscriber queues its SUBSCRIBE until connected, and resubscribes after a reconnect
    const sub = new Redis(this.#o.url, { ...base, enableOfflineQueue: true, commandTimeout: undefined });
    this.#cmd = cmd;
    this.#sub = sub;
    cmd.on('error', () => {});
    sub.on('error', () => {});
    let wasUp = false;
    const state = (): void => {
      const up = cmd.status === 'ready' && sub.status === 'ready';
      if (up === this.#up || this.#stopping) return;
      this.#up = up;
      this.#o.onConnection?.(up);
      if (up) for (const fn of [...this.#upWaiters]) fn();
      // changes published while this process was cut off are lost: every watcher reads again
      if (up && wasUp) onResync();
      if (up) wasUp = true;
    };
    for (const c of [cmd, sub]) for (const ev of ['ready', 'close', 'end', 'reconnecting']) c.on(ev, state);
    sub.on('message', (_ch: string, message: string) => {
      let e: (ChangeEvent & { o?: string }) | undefined;
      try {
        e = JSON.parse(message) as ChangeEvent & { o?: string };
      } catch {
        return;
      }
      if (typeof e?.name !== 'string' || typeof e.id !== 'string' || typeof e.version !== 'number') return;
      const local = e.o === this.#origin;
      delete e.o;
      onEvent(e, local);
    });
    try {
      await cmd.connect();
      await sub.connect();
      await sub.subscribe(this.#o.prefix + 'ev');
    } catch (e) {
      // the first connection failed: keep trying in the background; requests get 503 meanwhile
      this.#o.onConnection?.(false, e as Error);
      if (cmd.status === 'wait' || cmd.status === 'end') cmd.connect().catch(() => {});
      if (sub.status === 'wait' || sub.status === 'end') sub.connect().catch(() => {});
      void sub.subscribe(this.#o.prefix + 'ev').catch(() => {});
    }
    state();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const all = [this.#cmd, this.#sub];
    this.#cmd = undefined;
    this.#sub = undefined;
    await Promise.all(
      all.map(async (c) => {
        if (c === undefined) return;
        try {
          if (c.status === 'ready') await c.quit();
          else c.disconnect();
        } catch {
          c.disconnect();
        }
      }),
    );
  }

  /** Run one store command, timed; any failure of the store becomes 503 ERR_STORE_UNAVAILABLE. */
  async #run<T>(f: (c: Client) => Promise<T>): Promise<T> {
    const c = this.#cmd;
    if (c === undefined) throw storeUnavailable();
    const t0 = process.hrtime.bigint();
    try {
      const r = await f(c);
      this.#o.observer?.roundTrip(Number(process.hrtime.bigint() - t0) / 1e9);
      return r;
    } catch (e) {
      if (isRelayError(e)) throw e;
      this.#o.observer?.error();
      throw storeUnavailable();
    }
  }

  get connected(): boolean {
    return this.#up;
  }

  /** Resolve when both connections (commands, pub/sub) are up: at once if they are. */
  whenUp(): Promise<void> {
    if (this.#up) return Promise.resolve();
    return new Promise((resolve) => {
      const fn = (): void => {
        this.#upWaiters.delete(fn);
        resolve();
      };
      this.#upWaiters.add(fn);
    });
  }

  async ping(): Promise<void> {
    if (this.#sub?.status !== 'ready') {
      this.#o.observer?.error();
      throw storeUnavailable();
    }
    await this.#run((c) => c.ping());
  }

  async byName(name: string): Promise<ChannelRecord[]> {
    const raw = await this.#run((c) => c.tcByName(this.#o.prefix, name));
    return raw.map((s) => JSON.parse(s) as ChannelRecord);
  }

  async commit(c: Commit, now: number): Promise<CommitResult> {
    const r = c.record;
    const payload = JSON.stringify({
      kind: c.kind,
      id: r.id,
      name: r.name,
      expectedRev: c.expectedRev,
      fresh: c.fresh,
      addrAdd: c.addrAdd,
      addrRemove: c.addrRemove,
      deadline: c.deadline ?? -1,
      ttl: Math.round(c.ttlMs),
      open: !r.closed,
      json: c.kind === 'remove' ? '' : JSON.stringify(r),
    });
    const event = c.event === null ? '' : JSON.stringify({ ...c.event, o: this.#origin });
    const res = await this.#run((x) => x.tcCommit(this.#o.prefix, payload, now, this.#o.maxChannels, this.#o.maxChannelsPerAddress, event));
    if (res === 'ok') return { ok: true };
    return { ok: false, reason: res as Exclude<CommitResult, { ok: true }>['reason'] };
  }

  async due(now: number, limit: number): Promise<[string, string][]> {
    const raw = await this.#run((c) => c.tcDue(this.#o.prefix, now, limit));
    return raw.map((m) => {
      const i = m.indexOf(' ');
      return [m.slice(0, i), m.slice(i + 1)] as [string, string];
    });
  }

  async dropDue(name: string, id: string): Promise<void> {
    await this.#run((c) => c.tcDropDue(this.#o.prefix, `${name} ${id}`));
  }

  heldCount(now: number): Promise<number> {
    return this.#run((c) => c.tcCount(this.#o.prefix, 'held', now));
  }

  openCount(now: number): Promise<number> {
    return this.#run((c) => c.tcCount(this.#o.prefix, 'open', now));
  }

  openCountOf(address: string, now: number): Promise<number> {
    return this.#run((c) => c.tcCount(this.#o.prefix, 'a:' + address, now));
  }

  rateHit(kind: string, key: string, max: number, windowMs: number, now: number): Promise<number> {
    return this.#run((c) => c.tcRate(`${this.#o.prefix}r:${kind}:${key}`, max, windowMs, now));
  }

  async distinctOver(kind: string, key: string, max: number, windowMs: number, now: number): Promise<number> {
    return this.#run((c) => c.tcDistinct(`${this.#o.prefix}d:${kind}:${key}`, max, windowMs, now, 'over', ''));
  }

  async distinctHit(kind: string, key: string, value: string, max: number, windowMs: number, now: number): Promise<void> {
    await this.#run((c) => c.tcDistinct(`${this.#o.prefix}d:${kind}:${key}`, max, windowMs, now, 'hit', value));
  }

  purge(): void {}

  /** The beat holds its end on the callers' clock (as every deadline here); Redis's TTL only cleans up. */
  async heartbeat(id: string, ttlMs: number, now: number): Promise<void> {
    const ms = Math.max(1, Math.round(ttlMs));
    await this.#run((c) => c.set(`${this.#o.prefix}hb:${id}`, String(now + ms), 'PX', ms + TTL_SLACK_MS));
  }

  async alive(id: string, now: number): Promise<boolean> {
    const until = Number(await this.#run((c) => c.get(`${this.#o.prefix}hb:${id}`)));
    return Number.isFinite(until) && until > now;
  }
}
