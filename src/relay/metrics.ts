/**
 * The relay's Prometheus metrics (prom-client), one registry per relay so that several relays in
 * one process (tests) do not share counters. Gauges read the live state at scrape time; counters
 * are bumped where the event happens. Served at GET /metrics (docs/relay-api.md#get-metrics).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CloseReason, RelayErrorCode, Role } from '../core/relay-api.js';

const PREFIX = 'tsc_croc_relay_';

/** Where a refusal happened: an HTTP request or a TCP hello (or a TCP socket over a limit). */
export type RejectionSource = 'http' | 'tcp';

/** The live figures the gauges read at scrape time. */
export interface RelayGaugeSources {
  channelsHeld: () => number;
  channelsOpen: () => number;
  stapledPairs: () => number;
  tcpSockets: () => number;
  tcpPending: () => number;
  bytesRelayed: () => number;
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly #joins: Counter<'role'>;
  readonly #rejections: Counter<'source' | 'code'>;
  readonly #staples: Counter;
  readonly #closes: Counter<'reason'>;
  readonly #tcpHellos: Counter;
  readonly #timeouts: Counter<'limit'>;

  constructor(sources: RelayGaugeSources, options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({ name: PREFIX + name, help, registers, collect() { this.set(read()); } });
    };
    gauge('channels', 'Channels held (open, stapled, or closed and retained).', sources.channelsHeld);
    gauge('channels_open', 'Channels not closed.', sources.channelsOpen);
    gauge('stapled_pairs', 'Stapled TCP pairs currently relaying.', sources.stapledPairs);
    gauge('tcp_sockets', 'TCP sockets open, in any phase.', sources.tcpSockets);
    gauge('tcp_sockets_pending', 'TCP sockets not stapled yet (waiting for a hello or a partner).', sources.tcpPending);
    // A counter whose value lives in the stapler: exposed through collect().
    new Counter({
      name: PREFIX + 'bytes_relayed_total',
      help: 'Bytes copied between stapled peers, both directions.',
      registers,
      collect() {
        this.reset();
        this.inc(sources.bytesRelayed());
      },
    });
    this.#joins = new Counter({ name: PREFIX + 'joins_total', help: 'Successful joins, by role.', labelNames: ['role'], registers });
    this.#rejections = new Counter({
      name: PREFIX + 'rejections_total',
      help: 'Refused HTTP requests and TCP connections, by source and error code.',
      labelNames: ['source', 'code'],
      registers,
    });
    this.#staples = new Counter({ name: PREFIX + 'staples_total', help: 'TCP pairs stapled.', registers });
    this.#tcpHellos = new Counter({ name: PREFIX + 'tcp_hellos_total', help: 'TCP hellos admitted.', registers });
    this.#closes = new Counter({ name: PREFIX + 'channels_closed_total', help: 'Channels closed, by reason.', labelNames: ['reason'], registers });
    this.#timeouts = new Counter({
      name: PREFIX + 'timeouts_total',
      help: 'Channels closed by a time limit: channel_ttl (not stapled in time), stapled_idle (no byte moved).',
      labelNames: ['limit'],
      registers,
    });
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  joined(role: Role): void {
    this.#joins.inc({ role });
  }

  rejected(source: RejectionSource, code: RelayErrorCode | 'ERR_HELLO'): void {
    this.#rejections.inc({ source, code });
  }

  admitted(): void {
    this.#tcpHellos.inc();
  }

  stapled(): void {
    this.#staples.inc();
  }

  closed(reason: CloseReason): void {
    this.#closes.inc({ reason });
  }

  timedOut(limit: 'channel_ttl' | 'stapled_idle', n = 1): void {
    if (n > 0) this.#timeouts.inc({ limit }, n);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
