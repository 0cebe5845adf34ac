/**
 * Relay options: the defaults live in RELAY_DEFAULTS, the checks in resolveRelayOptions.
 * Nothing else in src/relay supplies a default or validates an option.
 */
import { randomInt } from 'node:crypto';
import type { FastifyServerOptions } from 'fastify';
import { aint, astring } from '../core/assert.js';
import { checkStoreUrl } from './store-url.js';
import { parseAdvertiseTcp } from '../core/tcp-host.js';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_RECIPIENT_TIMEOUT_MS, MAX_PASSWORD_LENGTH } from '../core/relay-api.js';

/** The pino options fastify accepts (level, redact, transport...). */
export type RelayLoggerOptions = Exclude<NonNullable<FastifyServerOptions['logger']>, boolean>;

export interface RelayOptions {
  /** Address both servers bind to. The library binds to loopback; the CLI passes its own. */
  host: string;
  /** HTTP port; 0 picks a free one. */
  port: number;
  /** TCP stapling port; 0 picks a free one. */
  tcpPort: number;
  /**
   * `HOST[:PORT]` peers should use for this process's TCP stapler (a fleet behind a load balancer):
   * recorded in every channel this process creates and named in every join answer of it (`tcpHost`,
   * `tcpPort`), whichever process answers. The port defaults to the bound TCP port. Undefined: the
   * answer names only `tcpPort`, on the host the peer used for HTTP (docs/relay-api.md "TCP stapling").
   */
  advertiseTcp: string | undefined;
  /** An open channel that is not stapled this long after its creation is closed (reason 'expired'). */
  channelTtlMs: number;
  /** A closed channel stays readable this long (so the other peer learns why), then is removed. */
  closedRetentionMs: number;
  /**
   * A recipient that has not written y and hh_k this long after x is there for it is evicted (its
   * seat is freed for the real recipient). Checked by the sweep, and at once by a recipient join.
   */
  recipientTimeoutMs: number;
  /** Failed key confirmations per channel (recipients rejected by the sender, or gone after writing y + hh_k); at this many the channel closes 'wrong-code'. */
  maxAttempts: number;
  /** Period of the expiry sweep started by listen(). */
  sweepIntervalMs: number;
  /** Most channels held at once (open, stapled, or closed-but-retained); beyond it a sender join gets 503. */
  maxChannels: number;
  /** Most open (not closed) channels one address may take part in; beyond it a join gets 429. */
  maxChannelsPerAddress: number;
  /** A stapled pair that moves no byte either way for this long is closed (reason 'expired'). */
  stapledIdleMs: number;
  /**
   * A fleet: a stapled channel whose process (the one holding its sockets) stopped beating is closed
   * (reason 'expired') within about two of these, freeing its name and its addresses' quota (the
   * peers went on through another process, or not at all). Every sweep beats; keep it well above
   * sweepIntervalMs.
   */
  stapledLeaseMs: number;
  /** This process among those sharing a store (a random id per process when not given). */
  instanceId: string;
  /**
   * Most TCP sockets that have not sent their hello yet (each for at most helloTimeoutMs); beyond it
   * a new one is refused. A socket whose hello is admitted takes its channel's seat instead: seats
   * follow channels (two per channel), so they are bounded by maxChannels and maxChannelsPerAddress.
   */
  maxPendingSockets: number;
  /** Most of those from one address. */
  maxPendingSocketsPerAddress: number;
  /** Most HTTP connections open at once (idle keep-alive ones included); beyond it a new one is answered 503 and closed. */
  maxHttpConnections: number;
  /**
   * Most of those from one socket address; beyond it 429. Counted on the socket, so behind a
   * reverse proxy (trustProxy set) every connection comes from the proxy: the cap is then not applied.
   */
  maxHttpConnectionsPerAddress: number;
  /** Most long-polls (/channel with `wait`) held at once; beyond it a long-poll is answered at once, as if `wait` were 0. */
  maxLongPolls: number;
  /** Most of those from one address (the client address, X-Forwarded-For's with trustProxy). */
  maxLongPollsPerAddress: number;
  /** Joins per address per rateWindowMs; beyond it 429 ERR_RATE_LIMITED. */
  joinRateLimit: number;
  /**
   * Distinct names per address that recipient joins named with no open channel (404), per
   * channelTtlMs window (a recipient waiting for its sender asks for one name again and again: it
   * counts once); beyond it every recipient join from that address gets 429 until the window ends,
   * so a scan of relay-picked names costs addresses (docs/protocol.md §8).
   */
  joinMissLimit: number;
  /** /channel requests per address per rateWindowMs; beyond it 429 ERR_RATE_LIMITED. */
  channelRateLimit: number;
  /** The window of both rate limits. */
  rateWindowMs: number;
  /** The relay password required on /join and in the TCP hello; undefined: none. Never logged. */
  password: string | undefined;
  /**
   * Trust X-Forwarded-For from a reverse proxy (fastify's trustProxy): true trusts every hop, a
   * string lists trusted proxy addresses/CIDRs (comma-separated). false: the socket address is the peer.
   */
  trustProxy: boolean | string;
  /** GET /metrics: 'loopback' answers only requests from 127.0.0.0/8 or ::1, 'public' everyone, 'off' nobody (404). */
  metrics: 'off' | 'loopback' | 'public';
  /** Serve the browser page at `/` and take peers' streams over a WebSocket at /v1/stream (docs/relay-api.md). */
  web: boolean;
  /** A TCP peer must send its whole hello within this time. */
  helloTimeoutMs: number;
  /** Largest HTTP request body, in bytes; beyond it 413 ERR_BODY_TOO_LARGE. */
  bodyLimit: number;
  /**
   * false: silent; true: pino at 'info'; an object: pino options (secrets are redacted regardless).
   * No line per request at 'info' (refusals are at 'debug'). Without a `stream` of its own, lines go
   * to stdout through a bounded buffer: lines that do not fit are dropped and counted in /metrics.
   */
  logger: boolean | RelayLoggerOptions;
  /**
   * Where the channel state, the rate windows and the per-address quotas live: undefined keeps
   * them in this process's memory (the default); `redis://HOST:PORT[/DB]` (or rediss://) shares
   * them with every relay process using the same Redis or Valkey (docs/relay-api.md "Stores").
   */
  store: string | undefined;
  /** Prefix of every key the relay writes in the store (several fleets may share one Redis). */
  storePrefix: string;
  /** The clock, in milliseconds. Injectable for tests. With a shared store, the processes' clocks must agree (NTP). */
  now: () => number;
  /** A uniform integer in [min, max): picks relay-chosen channel names. Injectable for tests. */
  randomInt: (min: number, max: number) => number;
}

const MAX_TIMER_MS = 2_147_483_647; // setTimeout's limit

export const RELAY_DEFAULTS: Readonly<RelayOptions> = Object.freeze({
  host: '127.0.0.1',
  port: 9009,
  tcpPort: 9010,
  advertiseTcp: undefined,
  channelTtlMs: 10 * 60_000,
  closedRetentionMs: 60_000,
  recipientTimeoutMs: DEFAULT_RECIPIENT_TIMEOUT_MS,
  maxAttempts: DEFAULT_MAX_ATTEMPTS,
  sweepIntervalMs: 5_000,
  maxChannels: 10_000,
  maxChannelsPerAddress: 20,
  stapledIdleMs: 5 * 60_000,
  stapledLeaseMs: 60_000,
  instanceId: '',
  maxPendingSockets: 4_000,
  maxPendingSocketsPerAddress: 8,
  maxHttpConnections: 10_000,
  maxHttpConnectionsPerAddress: 16,
  maxLongPolls: 4_000,
  maxLongPollsPerAddress: 8,
  joinRateLimit: 60,
  joinMissLimit: 10,
  channelRateLimit: 1_200,
  rateWindowMs: 60_000,
  password: undefined,
  trustProxy: false,
  metrics: 'loopback',
  web: true,
  helloTimeoutMs: 5_000,
  bodyLimit: 4096,
  logger: false,
  store: undefined,
  storePrefix: 'tsc-croc:',
  now: () => Date.now(),
  randomInt: (min: number, max: number) => randomInt(min, max),
});

const KNOWN = new Set(Object.keys(RELAY_DEFAULTS));

/** Merge `partial` over RELAY_DEFAULTS and check every option; throws TypeError/RangeError naming it. */
export function resolveRelayOptions(partial: Partial<RelayOptions> = {}): RelayOptions {
  if (typeof partial !== 'object' || partial === null) throw new TypeError('relay options must be an object');
  for (const key of Object.keys(partial)) {
    if (!KNOWN.has(key)) throw new TypeError(`unknown relay option "${key}"`);
  }
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  const o: RelayOptions = { ...RELAY_DEFAULTS, ...defined };

  astring(o.host, 'host', 255);
  if (o.host.length === 0) throw new RangeError('host must not be empty');
  aint(o.port, 'port', 0, 65_535);
  aint(o.tcpPort, 'tcpPort', 0, 65_535);
  if (o.port !== 0 && o.port === o.tcpPort) throw new RangeError(`tcpPort must differ from port, both are ${o.port}`);
  if (o.advertiseTcp !== undefined) {
    astring(o.advertiseTcp, 'advertiseTcp', 300);
    parseAdvertiseTcp(o.advertiseTcp);
  }
  aint(o.channelTtlMs, 'channelTtlMs', 1, MAX_TIMER_MS);
  aint(o.closedRetentionMs, 'closedRetentionMs', 0, MAX_TIMER_MS);
  aint(o.recipientTimeoutMs, 'recipientTimeoutMs', 1, MAX_TIMER_MS);
  aint(o.maxAttempts, 'maxAttempts', 1, 1000);
  aint(o.joinMissLimit, 'joinMissLimit', 1, 10_000_000);
  aint(o.sweepIntervalMs, 'sweepIntervalMs', 1, MAX_TIMER_MS);
  aint(o.maxChannels, 'maxChannels', 1, 10_000_000);
  aint(o.maxChannelsPerAddress, 'maxChannelsPerAddress', 1, 10_000_000);
  aint(o.stapledIdleMs, 'stapledIdleMs', 1, MAX_TIMER_MS);
  aint(o.stapledLeaseMs, 'stapledLeaseMs', 1, MAX_TIMER_MS);
  astring(o.instanceId, 'instanceId', 64);
  aint(o.maxPendingSockets, 'maxPendingSockets', 1, 10_000_000);
  aint(o.maxPendingSocketsPerAddress, 'maxPendingSocketsPerAddress', 1, 10_000_000);
  aint(o.maxHttpConnections, 'maxHttpConnections', 1, 10_000_000);
  aint(o.maxHttpConnectionsPerAddress, 'maxHttpConnectionsPerAddress', 1, 10_000_000);
  aint(o.maxLongPolls, 'maxLongPolls', 1, 10_000_000);
  aint(o.maxLongPollsPerAddress, 'maxLongPollsPerAddress', 1, 10_000_000);
  aint(o.joinRateLimit, 'joinRateLimit', 1, 10_000_000);
  aint(o.channelRateLimit, 'channelRateLimit', 1, 10_000_000);
  aint(o.rateWindowMs, 'rateWindowMs', 1, MAX_TIMER_MS);
  if (o.password !== undefined) {
    astring(o.password, 'password', MAX_PASSWORD_LENGTH);
    if (o.password.length === 0) throw new RangeError('password must not be empty');
  }
  if (typeof o.trustProxy !== 'boolean' && typeof o.trustProxy !== 'string')
    throw new TypeError('trustProxy must be a boolean or a string of addresses');
  if (!['off', 'loopback', 'public'].includes(o.metrics)) throw new RangeError('metrics must be "off", "loopback" or "public"');
  if (typeof o.web !== 'boolean') throw new TypeError('web must be a boolean');
  aint(o.helloTimeoutMs, 'helloTimeoutMs', 1, MAX_TIMER_MS);
  aint(o.bodyLimit, 'bodyLimit', 512, 1 << 20);
  if (typeof o.logger !== 'boolean' && (typeof o.logger !== 'object' || o.logger === null || Array.isArray(o.logger)))
    throw new TypeError('logger must be a boolean or a pino options object');
  if (o.store !== undefined) {
    astring(o.store, 'store', 2048);
    checkStoreUrl(o.store);
  }
  astring(o.storePrefix, 'storePrefix', 100);
  if (!/^[A-Za-z0-9:_.-]{1,100}$/.test(o.storePrefix)) throw new RangeError('storePrefix must be 1-100 of A-Z a-z 0-9 : _ . -');
  if (typeof o.now !== 'function') throw new TypeError('now must be a function');
  if (typeof o.randomInt !== 'function') throw new TypeError('randomInt must be a function');
  return o;
}
