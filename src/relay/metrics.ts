/**
 * The relay's Prometheus metrics, one set per relay so that several relays in one process (tests)
 * do not share counters. Gauges read the live state at scrape time; counters are bumped where the
 * event happens. Served at GET /metrics (docs/relay-api.md#get-metrics) in the text exposition
 * format 0.0.4. Written here rather than with prom-client: the relay needs a dozen counters and
 * gauges, and loading prom-client cost the idle relay about 10 MiB of its resident memory.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { CloseReason, RelayErrorCode, Role } from '../core/relay-api.js';

const PREFIX = 'tsc_croc_relay_';
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Where a refusal happened: an HTTP request or a TCP hello (or a TCP socket over a limit). */
export type RejectionSource = 'http' | 'tcp';

/** The live figures the gauges read at scrape time. */
export interface RelayGaugeSources {
  /** Read from the store (Redis: across the fleet); NaN when the store cannot be reached. */
  channelsHeld: () => number | Promise<number>;
  channelsOpen: () => number | Promise<number>;
  stapledPairs: () => number;
  tcpSockets: () => number;
  tcpPending: () => number;
  tcpWaiting: () => number;
  httpConnections: () => number;
  longPolls: () => number;
  bytesRelayed: () => number;
}

/** Which cap refused an HTTP connection or a long-poll: the relay-wide one or the per-address one. */
export type CapLimit = 'total' | 'per_address';

type Type = 'counter' | 'gauge';

/** One metric family: samples keyed by their rendered label set (`{a="x",b="y"}` or ''). */
class Family<L extends string> {
  readonly #values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: Type,
    readonly labelNames: readonly L[] = [],
  ) {
    if (labelNames.length === 0) this.#values.set('', 0);
  }

  inc(labels: Record<L, string> | undefined, n = 1): void {
    const key = this.#key(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + n);
  }

  set(value: number): void {
    this.#values.set('', value);
  }

  render(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const [key, v] of this.#values) out += `${this.name}${key} ${formatValue(v)}\n`;
    return out;
  }

  #key(labels: Record<L, string> | undefined): string {
    if (this.labelNames.length === 0) return '';
    return `{${this.labelNames.map((l) => `${l}="${escapeLabel(labels?.[l] ?? '')}"`).join(',')}}`;
  }
}

const STORE_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

/** A Prometheus histogram without labels. */
class Histogram {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.#counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.#sum += v;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.#counts[i]!++;
  }

  render(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} histogram\n`;
    this.buckets.forEach((b, i) => (out += `${this.name}_bucket{le="${b}"} ${this.#counts[i]}\n`));
    out += `${this.name}_bucket{le="+Inf"} ${this.#count}\n${this.name}_sum ${this.#sum}\n${this.name}_count ${this.#count}\n`;
    return out;
  }
}

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const formatValue = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));

export class RelayMetrics {
  readonly #families: Family<string>[] = [];
  readonly #gauges: { family: Family<never>; read: () => number | Promise<number> }[] = [];
  readonly #joins: Family<'role'>;
  readonly #joinsElsewhere: Family<'role'>;
  readonly #rejections: Family<'source' | 'code'>;
  readonly #staples: Family<never>;
  readonly #closes: Family<'reason'>;
  readonly #tcpHellos: Family<never>;
  readonly #timeouts: Family<'limit'>;
  readonly #connectionsRefused: Family<'limit'>;
  readonly #longPollsShortened: Family<'limit'>;
  readonly #clientErrors: Family<'kind'>;
  readonly #logDropped: Family<never>;
  readonly #storeErrors: Family<never>;
  readonly #storeSeconds: Histogram;
  readonly #process: boolean;
  readonly #recentRejections = new Map<string, number>();
  #loopDelay: IntervalHistogram | undefined;

  constructor(sources: RelayGaugeSources, options: { processMetrics?: boolean } = {}) {
    const family = <L extends string>(name: string, help: string, type: Type, labels: readonly L[] = []): Family<L> => {
      const f = new Family<L>(PREFIX + name, help, type, labels);
      this.#families.push(f as Family<string>);
      return f;
    };
    const gauge = (name: string, help: string, read: () => number | Promise<number>, type: Type = 'gauge'): void => {
      this.#gauges.push({ family: family<never>(name, help, type), read });
    };
    gauge('channels', 'Channels held (open, stapled, or closed and retained).', sources.channelsHeld);
    gauge('channels_open', 'Channels not closed.', sources.channelsOpen);
    gauge('stapled_pairs', 'Stapled TCP pairs currently relaying.', sources.stapledPairs);
    gauge('tcp_sockets', 'TCP sockets open, in any phase.', sources.tcpSockets);
    gauge('tcp_sockets_pending', 'TCP sockets that have not sent their hello yet.', sources.tcpPending);
    gauge('tcp_sockets_waiting', 'TCP sockets admitted to their channel seat, waiting for their partner.', sources.tcpWaiting);
    gauge('http_connections', 'HTTP connections open (idle keep-alive ones included).', sources.httpConnections);
    gauge('long_polls', 'Long-polls (/channel with wait) held now.', sources.longPolls);
    // A counter whose value lives in the stapler: read at scrape time.
    gauge('bytes_relayed_total', 'Bytes copied between stapled peers, both directions.', sources.bytesRelayed, 'counter');
    this.#joins = family('joins_total', 'Successful joins, by role.', 'counter', ['role']);
    this.#joinsElsewhere = family(
      'joins_elsewhere_total',
      'Successful joins answered with the TCP stapler another process advertised (a fleet: the channel was created through another process), by role.',
      'counter',
      ['role'],
    );
    this.#rejections = family('rejections_total', 'Refused HTTP requests and TCP connections, by source and error code.', 'counter', ['source', 'code']);
    this.#staples = family('staples_total', 'TCP pairs stapled.', 'counter');
    this.#tcpHellos = family('tcp_hellos_total', 'TCP hellos admitted.', 'counter');
    this.#closes = family('channels_closed_total', 'Channels closed, by reason.', 'counter', ['reason']);
    this.#timeouts = family(
      'timeouts_total',
      'Channels closed by a time limit: channel_ttl (not stapled in time), stapled_idle (no byte moved).',
      'counter',
      ['limit'],
    );
    this.#connectionsRefused = family(
      'http_connections_refused_total',
      'HTTP connections answered and closed at once: over maxHttpConnections (total) or maxHttpConnectionsPerAddress (per_address).',
      'counter',
      ['limit'],
    );
    this.#longPollsShortened = family(
      'long_polls_shortened_total',
      'Long-polls answered at once, as if wait were 0: over maxLongPolls (total) or maxLongPollsPerAddress (per_address).',
      'counter',
      ['limit'],
    );
    this.#clientErrors = family(
      'http_client_errors_total',
      'Connections the HTTP parser refused before any route: bad_request (malformed), header_overflow, timeout.',
      'counter',
      ['kind'],
    );
    this.#logDropped = family('log_lines_dropped_total', 'Log lines dropped because the log output was not keeping up.', 'counter');
    this.#storeErrors = family('store_errors_total', 'Store commands that failed (the store was unreachable or did not answer in time).', 'counter');
    this.#storeSeconds = new Histogram(PREFIX + 'store_seconds', 'Round trips of store commands (one Lua script or command each), in seconds.', STORE_BUCKETS);
    this.#process = options.processMetrics === true;
  }

  /** `elsewhere`: the answer named another process's TCP stapler. */
  joined(role: Role, elsewhere = false): void {
    this.#joins.inc({ role });
    if (elsewhere) this.#joinsElsewhere.inc({ role });
  }

  rejected(source: RejectionSource, code: RelayErrorCode | 'ERR_HELLO'): void {
    this.#rejections.inc({ source, code });
    const key = `${source}:${code}`;
    this.#recentRejections.set(key, (this.#recentRejections.get(key) ?? 0) + 1);
  }

  /**
   * The refusals since the last call, as `{ 'source:code': count }` (undefined if none): the relay
   * logs them as one summary line per sweep instead of a line per refusal.
   */
  takeRecentRejections(): Record<string, number> | undefined {
    if (this.#recentRejections.size === 0) return undefined;
    const out = Object.fromEntries(this.#recentRejections);
    this.#recentRejections.clear();
    return out;
  }

  admitted(): void {
    this.#tcpHellos.inc(undefined);
  }

  stapled(): void {
    this.#staples.inc(undefined);
  }

  closed(reason: CloseReason): void {
    this.#closes.inc({ reason });
  }

  timedOut(limit: 'channel_ttl' | 'stapled_idle', n = 1): void {
    if (n > 0) this.#timeouts.inc({ limit }, n);
  }

  connectionRefused(limit: CapLimit): void {
    this.#connectionsRefused.inc({ limit });
  }

  longPollShortened(limit: CapLimit): void {
    this.#longPollsShortened.inc({ limit });
  }

  clientError(kind: 'bad_request' | 'header_overflow' | 'timeout'): void {
    this.#clientErrors.inc({ kind });
  }

  /** One store round trip (Redis only: the memory store is not timed). */
  storeRoundTrip(seconds: number): void {
    this.#storeSeconds.observe(seconds);
  }

  storeError(): void {
    this.#storeErrors.inc(undefined);
  }

  logDropped(n = 1): void {
    this.#logDropped.inc(undefined, n);
  }

  /** Stop the event-loop delay monitor (started by the first scrape with process metrics). */
  stop(): void {
    this.#loopDelay?.disable();
    this.#loopDelay = undefined;
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    for (const g of this.#gauges) g.family.set(await Promise.resolve().then(g.read).catch(() => NaN));
    let body = this.#families.map((f) => f.render()).join('\n');
    body += '\n' + this.#storeSeconds.render();
    if (this.#process) body += '\n' + this.#renderProcess();
    return { contentType: CONTENT_TYPE, body };
  }

  /** The process metrics (names as the Prometheus client libraries give them, under our prefix). */
  #renderProcess(): string {
    if (this.#loopDelay === undefined) {
      this.#loopDelay = monitorEventLoopDelay({ resolution: 20 });
      this.#loopDelay.enable();
    }
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const lines: [string, string, Type, number][] = [
      ['process_cpu_user_seconds_total', 'User CPU time spent in seconds.', 'counter', cpu.user / 1e6],
      ['process_cpu_system_seconds_total', 'System CPU time spent in seconds.', 'counter', cpu.system / 1e6],
      ['process_cpu_seconds_total', 'User and system CPU time spent in seconds.', 'counter', (cpu.user + cpu.system) / 1e6],
      ['process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', mem.rss],
      ['process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge', Math.round(Date.now() / 1000 - process.uptime())],
      ['nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', 'gauge', mem.heapTotal],
      ['nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', 'gauge', mem.heapUsed],
      ['nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', 'gauge', mem.external],
      ['nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay since the previous scrape.', 'gauge', this.#loopDelay.max / 1e9],
      ['nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the event loop delay since the previous scrape.', 'gauge', this.#loopDelay.percentile(99) / 1e9],
    ];
    this.#loopDelay.reset();
    return lines
      .map(([name, help, type, v]) => `# HELP ${PREFIX}${name} ${help}\n# TYPE ${PREFIX}${name} ${type}\n${PREFIX}${name} ${formatValue(v)}\n`)
      .join('\n');
  }
}
