/**
 * The `tsc-croc relay` command's configuration: flags first, then TSC_CROC_RELAY_* environment
 * variables, then RELAY_DEFAULTS (src/relay/options.ts). Every value is checked here and a bad one
 * is a usage error (ERR_INVALID_ARGUMENT, exit code 2) naming the flag and the variable.
 * Durations are in seconds on the command line, in milliseconds in RelayOptions.
 */
import { TscCrocError } from '../core/errors.js';
import { MAX_PASSWORD_LENGTH } from '../core/relay-api.js';
import { BoundedLogSink, LOG_BUFFER_BYTES } from './log-sink.js';
import { prettyLogLine } from './log-pretty.js';
import { RELAY_DEFAULTS, type RelayOptions } from './options.js';
import { checkStoreUrl } from './store-url.js';
import { parseAdvertiseTcp } from '../core/tcp-host.js';

/** What commander hands over: every value a string (or a bare boolean flag). */
export interface RelayCliFlags {
  host?: string;
  port?: string;
  tcpPort?: string;
  advertiseTcp?: string;
  password?: string;
  trustProxy?: boolean | string;
  maxChannels?: string;
  maxChannelsPerAddress?: string;
  maxPendingSockets?: string;
  maxPendingSocketsPerAddress?: string;
  maxHttpConnections?: string;
  maxHttpConnectionsPerAddress?: string;
  maxLongPolls?: string;
  maxLongPollsPerAddress?: string;
  channelTtl?: string;
  idleTimeout?: string;
  stapledLease?: string;
  recipientTimeout?: string;
  maxAttempts?: string;
  joinRate?: string;
  joinMissLimit?: string;
  channelRate?: string;
  metrics?: string;
  shutdownGrace?: string;
  quiet?: boolean;
  /** false with --no-web (commander's negated flag). */
  web?: boolean;
  logFormat?: string;
  store?: string;
  storePrefix?: string;
}

/** One flag: its name on the command line, its environment variable, its default shown in the help. */
export const RELAY_FLAGS = {
  host: { flag: '--host <host>', env: 'TSC_CROC_RELAY_HOST', help: 'address to listen on', def: '0.0.0.0' },
  port: { flag: '--port <port>', env: 'TSC_CROC_RELAY_PORT', help: 'HTTP port', def: String(RELAY_DEFAULTS.port) },
  tcpPort: { flag: '--tcp-port <port>', env: 'TSC_CROC_RELAY_TCP_PORT', help: 'TCP stapling port', def: String(RELAY_DEFAULTS.tcpPort) },
  advertiseTcp: {
    flag: '--advertise-tcp <host[:port]>',
    env: 'TSC_CROC_RELAY_ADVERTISE_TCP',
    help: "the address peers reach this process's TCP port at, named in join answers (a fleet behind one HTTP address; port: --tcp-port)",
    def: undefined,
  },
  password: {
    flag: '--password <password>',
    env: 'TSC_CROC_RELAY_PASSWORD',
    help: 'require this relay password from peers (visible in process lists: prefer the environment variable)',
    def: undefined,
  },
  trustProxy: {
    flag: '--trust-proxy [addresses]',
    env: 'TSC_CROC_RELAY_TRUST_PROXY',
    help: 'take peer addresses from X-Forwarded-For: every hop, or only from these comma-separated proxies',
    def: 'false',
  },
  maxChannels: { flag: '--max-channels <n>', env: 'TSC_CROC_RELAY_MAX_CHANNELS', help: 'channels held at once', def: String(RELAY_DEFAULTS.maxChannels) },
  maxChannelsPerAddress: {
    flag: '--max-channels-per-address <n>',
    env: 'TSC_CROC_RELAY_MAX_CHANNELS_PER_ADDRESS',
    help: 'open channels one address may take part in',
    def: String(RELAY_DEFAULTS.maxChannelsPerAddress),
  },
  maxPendingSockets: {
    flag: '--max-pending-sockets <n>',
    env: 'TSC_CROC_RELAY_MAX_PENDING_SOCKETS',
    help: 'TCP sockets that have not sent their hello yet',
    def: String(RELAY_DEFAULTS.maxPendingSockets),
  },
  maxPendingSocketsPerAddress: {
    flag: '--max-pending-sockets-per-address <n>',
    env: 'TSC_CROC_RELAY_MAX_PENDING_SOCKETS_PER_ADDRESS',
    help: 'of those, from one address',
    def: String(RELAY_DEFAULTS.maxPendingSocketsPerAddress),
  },
  maxHttpConnections: {
    flag: '--max-http-connections <n>',
    env: 'TSC_CROC_RELAY_MAX_HTTP_CONNECTIONS',
    help: 'HTTP connections open at once',
    def: String(RELAY_DEFAULTS.maxHttpConnections),
  },
  maxHttpConnectionsPerAddress: {
    flag: '--max-http-connections-per-address <n>',
    env: 'TSC_CROC_RELAY_MAX_HTTP_CONNECTIONS_PER_ADDRESS',
    help: 'of those, from one address (not applied with --trust-proxy)',
    def: String(RELAY_DEFAULTS.maxHttpConnectionsPerAddress),
  },
  maxLongPolls: {
    flag: '--max-long-polls <n>',
    env: 'TSC_CROC_RELAY_MAX_LONG_POLLS',
    help: 'long-polls held at once',
    def: String(RELAY_DEFAULTS.maxLongPolls),
  },
  maxLongPollsPerAddress: {
    flag: '--max-long-polls-per-address <n>',
    env: 'TSC_CROC_RELAY_MAX_LONG_POLLS_PER_ADDRESS',
    help: 'of those, from one address',
    def: String(RELAY_DEFAULTS.maxLongPollsPerAddress),
  },
  channelTtl: {
    flag: '--channel-ttl <seconds>',
    env: 'TSC_CROC_RELAY_CHANNEL_TTL',
    help: 'a channel not stapled this long after its creation expires',
    def: String(RELAY_DEFAULTS.channelTtlMs / 1000),
  },
  idleTimeout: {
    flag: '--idle-timeout <seconds>',
    env: 'TSC_CROC_RELAY_IDLE_TIMEOUT',
    help: 'a stapled pair that moves no byte this long is closed',
    def: String(RELAY_DEFAULTS.stapledIdleMs / 1000),
  },
  stapledLease: {
    flag: '--stapled-lease <seconds>',
    env: 'TSC_CROC_RELAY_STAPLED_LEASE',
    help: 'a fleet: a stapled channel of a relay process that stopped (killed) is closed within about two of these',
    def: String(RELAY_DEFAULTS.stapledLeaseMs / 1000),
  },
  recipientTimeout: {
    flag: '--recipient-timeout <seconds>',
    env: 'TSC_CROC_RELAY_RECIPIENT_TIMEOUT',
    help: 'a recipient that has not answered the key agreement this long after it could is evicted (its seat freed)',
    def: String(RELAY_DEFAULTS.recipientTimeoutMs / 1000),
  },
  maxAttempts: {
    flag: '--max-attempts <n>',
    env: 'TSC_CROC_RELAY_MAX_ATTEMPTS',
    help: 'wrong codes tried on one channel before it closes',
    def: String(RELAY_DEFAULTS.maxAttempts),
  },
  joinMissLimit: {
    flag: '--join-miss-limit <n>',
    env: 'TSC_CROC_RELAY_JOIN_MISS_LIMIT',
    help: 'distinct names of no open channel in recipient joins, per address per channel lifetime (bounds scans)',
    def: String(RELAY_DEFAULTS.joinMissLimit),
  },
  joinRate: { flag: '--join-rate <n>', env: 'TSC_CROC_RELAY_JOIN_RATE', help: 'joins per address per minute', def: String(RELAY_DEFAULTS.joinRateLimit) },
  channelRate: {
    flag: '--channel-rate <n>',
    env: 'TSC_CROC_RELAY_CHANNEL_RATE',
    help: '/channel requests per address per minute',
    def: String(RELAY_DEFAULTS.channelRateLimit),
  },
  metrics: {
    flag: '--metrics <mode>',
    env: 'TSC_CROC_RELAY_METRICS',
    help: 'GET /metrics for: loopback (127.0.0.1, ::1), public, or off',
    def: RELAY_DEFAULTS.metrics,
  },
  shutdownGrace: {
    flag: '--shutdown-grace <seconds>',
    env: 'TSC_CROC_RELAY_SHUTDOWN_GRACE',
    help: 'on SIGTERM/SIGINT, let stapled transfers finish this long (a second signal stops at once)',
    def: '30',
  },
  web: { flag: '--no-web', env: 'TSC_CROC_RELAY_WEB', help: 'serve no browser page at / and no WebSocket stream (TSC_CROC_RELAY_WEB=false)', def: undefined },
  quiet: { flag: '--quiet', env: 'TSC_CROC_RELAY_QUIET', help: 'no logs at all (by default: start, stop, channel events; never a line per request)', def: undefined },
  logFormat: {
    flag: '--log-format <format>',
    env: 'TSC_CROC_RELAY_LOG_FORMAT',
    help: 'the log lines on stdout: json (one JSON object per line) or pretty (a short line per event); default: pretty when stdout is a terminal, else json',
    def: undefined,
  },
  store: {
    flag: '--store <url>',
    env: 'TSC_CROC_RELAY_STORE',
    help: 'keep channels, rate limits and quotas in Redis/Valkey (redis://HOST:PORT[/DB]), shared by every relay process using it; default: in this process',
    def: undefined,
  },
  storePrefix: {
    flag: '--store-prefix <prefix>',
    env: 'TSC_CROC_RELAY_STORE_PREFIX',
    help: 'prefix of the keys written in the store (fleets sharing one Redis use different ones)',
    def: RELAY_DEFAULTS.storePrefix,
  },
} as const satisfies Record<keyof RelayCliFlags, { flag: string; env: string; help: string; def: string | undefined }>;

export interface RelayCliConfig {
  options: Partial<RelayOptions>;
  /** The drain period on the first SIGTERM/SIGINT, in milliseconds. */
  graceMs: number;
  /** True when the password came from argv (the CLI warns). */
  passwordOnArgv: boolean;
}

const MAX_SECONDS = 2_147_483; // setTimeout's limit, in seconds

function usage(key: keyof RelayCliFlags, message: string): TscCrocError {
  const f = RELAY_FLAGS[key];
  return new TscCrocError('ERR_INVALID_ARGUMENT', `${f.flag.split(' ')[0]} (env ${f.env}) ${message}`);
}

function integer(key: keyof RelayCliFlags, raw: string, min: number, max: number): number {
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw usage(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw.slice(0, 40))}`);
  return n;
}

function truthy(raw: string): boolean | undefined {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(v)) return false;
  return undefined;
}

/** Where the relay's log lines go, for the default format and colour (the CLI knows; a test may say). */
export interface LogTerminal {
  /** stdout, where the lines go, is a terminal: the default format is pretty. */
  tty: boolean;
  /** The pretty lines may be coloured (src/cli/colour.ts decides for stdout). */
  colour: boolean;
}

/** Resolve the relay command's flags and environment into RelayOptions; throws ERR_INVALID_ARGUMENT. */
export function relayConfig(flags: RelayCliFlags, env: NodeJS.ProcessEnv, out: LogTerminal = { tty: false, colour: false }): RelayCliConfig {
  const raw = (key: Exclude<keyof RelayCliFlags, 'trustProxy' | 'quiet' | 'web'>): string | undefined => {
    const v = flags[key] ?? env[RELAY_FLAGS[key].env];
    return v === undefined || v === '' ? undefined : v;
  };
  const int = (key: Exclude<keyof RelayCliFlags, 'trustProxy' | 'quiet' | 'web'>, min: number, max: number): number | undefined => {
    const v = raw(key);
    return v === undefined ? undefined : integer(key, v, min, max);
  };
  const seconds = (key: 'channelTtl' | 'idleTimeout' | 'stapledLease' | 'recipientTimeout', min: number): number | undefined => {
    const s = int(key, min, MAX_SECONDS);
    return s === undefined ? undefined : s * 1000;
  };

  const host = raw('host') ?? RELAY_FLAGS.host.def;
  if (host.length > 255 || /\s/.test(host)) throw usage('host', 'must be an address or a host name');
  const port = int('port', 0, 65_535) ?? RELAY_DEFAULTS.port;
  const tcpPort = int('tcpPort', 0, 65_535) ?? RELAY_DEFAULTS.tcpPort;
  if (port !== 0 && port === tcpPort) throw usage('tcpPort', `must differ from the HTTP port (${port})`);

  const advertiseTcp = raw('advertiseTcp');
  if (advertiseTcp !== undefined) {
    try {
      parseAdvertiseTcp(advertiseTcp);
    } catch (e) {
      throw usage('advertiseTcp', (e as Error).message.replace(/^advertiseTcp: /, ''));
    }
  }

  const password = raw('password');
  if (password !== undefined && password.length > MAX_PASSWORD_LENGTH)
    throw usage('password', `must be at most ${MAX_PASSWORD_LENGTH} characters`);

  let trustProxy: boolean | string = false;
  if (flags.trustProxy !== undefined) trustProxy = flags.trustProxy;
  else if (env[RELAY_FLAGS.trustProxy.env] !== undefined) {
    const v = env[RELAY_FLAGS.trustProxy.env] ?? '';
    trustProxy = truthy(v) ?? v.trim();
  }
  if (typeof trustProxy === 'string' && !/^[0-9a-fA-F.:/,\s]+$/.test(trustProxy))
    throw usage('trustProxy', 'must be true/false or comma-separated addresses or CIDRs');

  const metrics = raw('metrics') ?? RELAY_DEFAULTS.metrics;
  if (metrics !== 'off' && metrics !== 'loopback' && metrics !== 'public') throw usage('metrics', 'must be loopback, public or off');

  let quiet = flags.quiet === true;
  if (!quiet && env[RELAY_FLAGS.quiet.env] !== undefined) {
    const q = truthy(env[RELAY_FLAGS.quiet.env] ?? '');
    if (q === undefined) throw usage('quiet', 'must be true or false');
    quiet = q;
  }

  let web = flags.web !== false;
  if (web && env[RELAY_FLAGS.web.env] !== undefined) {
    const w = truthy(env[RELAY_FLAGS.web.env] ?? '');
    if (w === undefined) throw usage('web', 'must be true or false');
    web = w;
  }

  const logFormat = raw('logFormat') ?? (out.tty ? 'pretty' : 'json');
  if (logFormat !== 'json' && logFormat !== 'pretty') throw usage('logFormat', 'must be json or pretty');

  const store = raw('store');
  if (store !== undefined) {
    try {
      checkStoreUrl(store);
    } catch (e) {
      throw usage('store', (e as Error).message.replace(/^store /, ''));
    }
  }
  const storePrefix = raw('storePrefix');
  if (storePrefix !== undefined && !/^[A-Za-z0-9:_.-]{1,100}$/.test(storePrefix)) throw usage('storePrefix', 'must be 1-100 of A-Z a-z 0-9 : _ . -');
  const graceSeconds = int('shutdownGrace', 0, MAX_SECONDS) ?? Number(RELAY_FLAGS.shutdownGrace.def);
  const joinRate = int('joinRate', 1, 10_000_000);
  const channelRate = int('channelRate', 1, 10_000_000);
  const options: Partial<RelayOptions> = {
    host,
    port,
    tcpPort,
    advertiseTcp,
    password,
    trustProxy,
    metrics,
    web,
    maxChannels: int('maxChannels', 1, 10_000_000),
    maxChannelsPerAddress: int('maxChannelsPerAddress', 1, 10_000_000),
    maxPendingSockets: int('maxPendingSockets', 1, 10_000_000),
    maxPendingSocketsPerAddress: int('maxPendingSocketsPerAddress', 1, 10_000_000),
    maxHttpConnections: int('maxHttpConnections', 1, 10_000_000),
    maxHttpConnectionsPerAddress: int('maxHttpConnectionsPerAddress', 1, 10_000_000),
    maxLongPolls: int('maxLongPolls', 1, 10_000_000),
    maxLongPollsPerAddress: int('maxLongPollsPerAddress', 1, 10_000_000),
    channelTtlMs: seconds('channelTtl', 1),
    stapledIdleMs: seconds('idleTimeout', 1),
    stapledLeaseMs: seconds('stapledLease', 1),
    recipientTimeoutMs: seconds('recipientTimeout', 1),
    maxAttempts: int('maxAttempts', 1, 1000),
    joinMissLimit: int('joinMissLimit', 1, 10_000_000),
    joinRateLimit: joinRate,
    channelRateLimit: channelRate,
    store,
    storePrefix,
    // pretty: the same bounded sink to stdout (its drops counted the same), each line rewritten
    logger: quiet
      ? false
      : logFormat === 'json'
        ? { level: 'info' }
        : { level: 'info', stream: new BoundedLogSink(1, LOG_BUFFER_BYTES, (line) => prettyLogLine(line, { colour: out.colour })) },
  };
  return { options, graceMs: graceSeconds * 1000, passwordOnArgv: flags.password !== undefined };
}
