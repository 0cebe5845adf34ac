/**
 * The relay's HTTP side (docs/relay-api.md): POST /join, POST /channel (with long-poll),
 * GET /health, GET /metrics. buildRelay() wires the channel store, the HTTP app, the TCP stapler
 * and the metrics together without listening, so tests can drive the app with inject(); listen()
 * binds both ports; close({ graceMs }) drains.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import Fastify, { LogController, type FastifyError, type FastifySchemaCompiler, type FastifySchemaValidationError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  CHANNEL_PATTERN,
  CLOSE_REASONS,
  CONFIRM_PATTERN,
  CURVES,
  MAX_PASSWORD_LENGTH,
  MAX_WAIT_MS,
  PEER_CLOSE_REASONS,
  RELAY_ERROR_CODES,
  RELAY_PROTOCOL_VERSION,
  ROLES,
  SHARE_PATTERN,
  UUID_PATTERN,
  type ChannelRequest,
  type ChannelState,
  type JoinRequest,
  type JoinResponse,
  type RelayErrorBody,
} from '../core/relay-api.js';
import { ChannelStore, RelayError, STORE_RETRY_AFTER_S, isRelayError, normalizeAddress, type ChannelBackend } from './channels.js';
import { BoundedLogSink } from './log-sink.js';
import { RelayMetrics, type CapLimit } from './metrics.js';
import { resolveRelayOptions, type RelayLoggerOptions, type RelayOptions } from './options.js';
import { passwordCheck } from './password.js';
import { compileSerializer, compileValidator, type Schema } from './schema.js';
import { registerWeb } from './web-page.js';
import { Stapler } from './stapler.js';
import { MemoryBackend } from './store-memory.js';
import { RedisBackend } from './store-redis.js';
import { parseAdvertiseTcp } from '../core/tcp-host.js';

export interface Relay {
  /** The fastify app (not listening until listen()); use app.inject() in tests. */
  readonly app: FastifyInstance;
  /** The TCP stapler (not listening until listen()). */
  readonly tcp: Stapler;
  readonly store: ChannelStore;
  readonly metrics: RelayMetrics;
  readonly options: Readonly<RelayOptions>;
  /** True once a graceful close has begun: joins and new TCP connections are refused. */
  readonly draining: boolean;
  /** HTTP connections open now (counted by socket address against maxHttpConnections[PerAddress]). */
  readonly httpConnections: number;
  /** Long-polls held now (against maxLongPolls[PerAddress]). */
  readonly longPolls: number;
  /** Bind the TCP port, then the HTTP port, then start the expiry sweep. */
  listen(): Promise<{ httpPort: number; tcpPort: number }>;
  /**
   * Shut down. With `graceMs` > 0, drain first: refuse joins (503 ERR_SHUTTING_DOWN) and new TCP
   * connections, drop unstapled sockets, keep answering /channel, and wait up to `graceMs` for the
   * stapled pairs to finish. Then answer pending long-polls, stop both servers, destroy every TCP
   * connection. Idempotent; a second call without `graceMs` cuts a drain short.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

// ---------------------------------------------------------------- schemas

const errorSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', enum: RELAY_ERROR_CODES },
    message: { type: 'string' },
  },
} as const;

const errorResponses = { '4xx': errorSchema, '5xx': errorSchema } as const;

const joinBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ROLES },
    channel: { type: 'string', pattern: CHANNEL_PATTERN },
    curve: { type: 'string', enum: CURVES },
    password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH },
  },
} as const;

const joinResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'channel', 'uuid', 'role', 'curve', 'tcpPort'],
  properties: {
    version: { type: 'integer' },
    channel: { type: 'string' },
    uuid: { type: 'string' },
    role: { type: 'string', enum: ROLES },
    curve: { type: 'string', enum: CURVES },
    tcpPort: { type: 'integer' },
    tcpHost: { type: 'string' },
    web: { type: 'boolean' },
    // the channel as /channel answers it right after this join (filled in below: declared later)
    state: {},
  },
} as const;

const channelBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['channel', 'uuid'],
  properties: {
    channel: { type: 'string', pattern: CHANNEL_PATTERN },
    uuid: { type: 'string', pattern: UUID_PATTERN },
    x: { type: 'string', pattern: SHARE_PATTERN },
    y: { type: 'string', pattern: SHARE_PATTERN },
    hh_k: { type: 'string', pattern: CONFIRM_PATTERN },
    h_k: { type: 'string', pattern: CONFIRM_PATTERN },
    fin: { type: 'string', pattern: CONFIRM_PATTERN },
    close: { type: 'boolean' },
    reject: { type: 'boolean' },
    reason: { type: 'string', enum: PEER_CLOSE_REASONS },
    wait: { type: 'integer', minimum: 0, maximum: MAX_WAIT_MS },
    since: { type: 'integer', minimum: 0 },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;

const channelStateSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['channel', 'curve', 'version', 'sender', 'recipient', 'x', 'y', 'hh_k', 'h_k', 'stapled', 'closed', 'closeReason'],
  properties: {
    channel: { type: 'string' },
    curve: { type: 'string', enum: CURVES },
    version: { type: 'integer' },
    sender: { type: 'boolean' },
    recipient: { type: 'boolean' },
    x: nullableString,
    y: nullableString,
    hh_k: nullableString,
    h_k: nullableString,
    stapled: { type: 'boolean' },
    closed: { type: 'boolean' },
    closeReason: { type: ['string', 'null'], enum: [...CLOSE_REASONS, null] },
    fin: { type: 'string' },
    attempts: { type: 'integer' },
    maxAttempts: { type: 'integer' },
  },
} as const;

(joinResponseSchema.properties as Record<string, unknown>).state = channelStateSchema;

const healthResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'version'],
  properties: { ok: { type: 'boolean' }, version: { type: 'integer' } },
} as const;

// ---------------------------------------------------------------- errors and logging

/** Log keys that could carry a PAKE field or a bearer token: censored whatever the caller's options. */
const REDACT_PATHS = [
  'x', 'y', 'hh_k', 'h_k', 'fin', 'uuid', 'password',
  '*.x', '*.y', '*.hh_k', '*.h_k', '*.fin', '*.uuid', '*.password',
  'req.body', 'req.headers.authorization', 'req.headers.cookie',
];

/**
 * pino's options for the relay: secrets redacted; without a caller's own stream (or file), lines go
 * to stdout through `sink`, which drops what does not fit rather than queueing without bound.
 */
function loggerOptions(opt: boolean | RelayLoggerOptions, sink: (given?: BoundedLogSink) => BoundedLogSink): false | RelayLoggerOptions {
  if (opt === false) return false;
  const base: RelayLoggerOptions = opt === true ? {} : opt;
  const r = base.redact;
  const paths = [...(r === undefined ? [] : Array.isArray(r) ? r : r.paths), ...REDACT_PATHS];
  const redact = r === undefined || Array.isArray(r) ? { paths, censor: '[redacted]' } : { ...r, paths };
  const own = base as { stream?: unknown; file?: unknown };
  // a caller's own BoundedLogSink (the CLI's pretty format) is adopted: its drops are counted too
  const stream = own.stream instanceof BoundedLogSink ? { stream: sink(own.stream) } : own.stream === undefined && own.file === undefined ? { stream: sink() } : {};
  return { level: 'info', ...base, ...stream, redact } as RelayLoggerOptions;
}

const channelRe = new RegExp(CHANNEL_PATTERN);
/** Time a client has to send a whole request (slow-loris bound); node checks it every 30 s. */
const REQUEST_TIMEOUT_MS = 10_000;
const WRITABLE = ['x', 'y', 'hh_k', 'h_k'] as const;

/** The channel a request names, if it names a well-formed one (for log lines). */
function channelOf(request: FastifyRequest): string | undefined {
  const body = request.body;
  if (typeof body !== 'object' || body === null) return undefined;
  const channel = (body as Record<string, unknown>).channel;
  return typeof channel === 'string' && channelRe.test(channel) ? channel : undefined;
}

/** Every failure becomes `{ code, message }` with a stable code; unknown ones hide their message. */
export function toErrorAnswer(err: unknown): { statusCode: number; body: RelayErrorBody } {
  if (isRelayError(err)) return { statusCode: err.statusCode, body: { code: err.code, message: err.message } };
  const e = err as Partial<FastifyError> | null;
  if (e !== null && typeof e === 'object') {
    if (Array.isArray(e.validation))
      return { statusCode: 400, body: { code: 'ERR_BAD_REQUEST', message: e.message ?? 'invalid request body' } };
    switch (e.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return { statusCode: 413, body: { code: 'ERR_BODY_TOO_LARGE', message: 'request body is too large' } };
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return { statusCode: 400, body: { code: 'ERR_BAD_REQUEST', message: 'request body is not valid JSON' } };
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return { statusCode: 400, body: { code: 'ERR_BAD_REQUEST', message: 'request body is empty' } };
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return { statusCode: 400, body: { code: 'ERR_BAD_REQUEST', message: 'content-type must be application/json' } };
    }
    const status = e.statusCode;
    if (status === 413) return { statusCode: 413, body: { code: 'ERR_BODY_TOO_LARGE', message: 'request body is too large' } };
    if (typeof status === 'number' && status >= 400 && status < 500)
      return { statusCode: 400, body: { code: 'ERR_BAD_REQUEST', message: 'bad request' } };
  }
  return { statusCode: 500, body: { code: 'ERR_INTERNAL', message: 'internal relay error' } };
}

function sendError(err: unknown, request: FastifyRequest, reply: FastifyReply, metrics: RelayMetrics): void {
  const { statusCode, body } = toErrorAnswer(err);
  metrics.rejected('http', body.code);
  if (body.code === 'ERR_STORE_UNAVAILABLE') void reply.header('retry-after', String(STORE_RETRY_AFTER_S));
  const fields = { channel: channelOf(request), address: request.ip, status: statusCode, code: body.code };
  // (the store's outage is logged once, when the connection drops, not once per refused request)
  if (statusCode >= 500 && body.code !== 'ERR_STORE_UNAVAILABLE') request.log.error({ ...fields, err }, 'request failed');
  // At debug: any client can cause refusals at will (rejections_total counts them).
  else request.log.debug(fields, 'request refused');
  void reply.code(statusCode).send(body);
}

// ---------------------------------------------------------------- the app

const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema }) => {
  const check = compileValidator(schema as Schema);
  const validate = Object.assign(
    (data: unknown): boolean => {
      const errors = check(data);
      validate.errors = errors.length === 0 ? null : (errors as unknown as FastifySchemaValidationError[]);
      return errors.length === 0;
    },
    { errors: null as FastifySchemaValidationError[] | null },
  );
  return validate;
};

const serializerCompiler = ({ schema }: { schema: unknown }): ((data: unknown) => string) => compileSerializer(schema as Schema);

/** Build the relay: store, HTTP app, TCP stapler, metrics. Nothing listens until listen(). */
export function buildRelay(options: Partial<RelayOptions> = {}): Relay {
  const opts = resolveRelayOptions(options);
  const backend: ChannelBackend =
    opts.store === undefined
      ? new MemoryBackend(opts)
      : new RedisBackend({
          url: opts.store,
          prefix: opts.storePrefix,
          maxChannels: opts.maxChannels,
          maxChannelsPerAddress: opts.maxChannelsPerAddress,
          observer: { roundTrip: (s) => metrics.storeRoundTrip(s), error: () => metrics.storeError() },
          onConnection: (up, err) => {
            if (up) app.log.info('store connected');
            else app.log.warn({ err: err?.message }, 'store unreachable: answering 503 until it is back');
          },
        });
  const store = new ChannelStore({
    now: opts.now,
    randomInt: opts.randomInt,
    maxChannels: opts.maxChannels,
    maxChannelsPerAddress: opts.maxChannelsPerAddress,
    channelTtlMs: opts.channelTtlMs,
    closedRetentionMs: opts.closedRetentionMs,
    recipientTimeoutMs: opts.recipientTimeoutMs,
    maxAttempts: opts.maxAttempts,
    instanceId: opts.instanceId || randomUUID(),
    stapledLeaseMs: opts.stapledLeaseMs,
  }, backend);
  const checkPassword = passwordCheck(opts.password);
  let logSink: BoundedLogSink | undefined;
  const app = Fastify({
    logger: loggerOptions(opts.logger, (given) => (logSink = given ?? new BoundedLogSink(1))),
    // No line per request: a request flood must not become a log flood (issue 11). Refusals are at
    // debug (summed up per sweep at info), and /metrics counts them.
    logController: new LogController({ disableRequestLogging: true }),
    // Idle keep-alive connections are let go after this (fastify's default is 72 s).
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    bodyLimit: opts.bodyLimit,
    // A request (headers and its ≤ bodyLimit body) must arrive within this; answers may take longer (long-poll).
    requestTimeout: REQUEST_TIMEOUT_MS,
    // On close, after preClose has answered every long-poll, end every connection: a keep-alive
    // connection that turns idle only after close began would otherwise hold the server for the
    // whole keep-alive timeout.
    forceCloseConnections: true,
    trustProxy: opts.trustProxy,
    // Bodies are checked against the route schemas (unknown fields and wrong types are refused,
    // never dropped or coerced) and answers keep only the fields their schema lists: schema.ts,
    // given as the factories so that fastify does not load ajv and fast-json-stringify at all.
    // (Their declared types are ajv's and fast-json-stringify's own; ours take the same arguments.)
    schemaController: {
      compilersFactory: { buildValidator: (() => validatorCompiler) as never, buildSerializer: (() => serializerCompiler) as never },
    },
    frameworkErrors: (error, request, reply) => sendError(error, request, reply, metrics),
    // Errors of the HTTP parser itself (before any route) answer in the same { code, message } shape.
    clientErrorHandler: (err, socket) => clientError(err, socket, metrics),
  });
  // The gauges read the stapler at scrape time, the stapler counts into the metrics.
  const metrics: RelayMetrics = new RelayMetrics(
    {
      channelsHeld: () => store.heldCount(),
      channelsOpen: () => store.openCount(),
      stapledPairs: () => stapler.stapledCount,
      tcpSockets: () => stapler.connectionCount,
      tcpPending: () => stapler.pendingCount,
      tcpWaiting: () => stapler.waitingCount,
      httpConnections: () => connections.total,
      longPolls: () => longPolls.total,
      bytesRelayed: () => stapler.bytesRelayed,
    },
    { processMetrics: opts.metrics !== 'off' },
  );
  logSink?.onDrop((n) => metrics.logDropped(n));
  /** HTTP connections per socket address (behind a trusted proxy, only the relay-wide cap applies). */
  const connections = new Gate(opts.maxHttpConnections, opts.trustProxy === false ? opts.maxHttpConnectionsPerAddress : Infinity);
  app.server.on('connection', (socket: net.Socket) => admitConnection(socket, connections, metrics));
  /** Long-polls per client address. */
  const longPolls = new Gate(opts.maxLongPolls, opts.maxLongPollsPerAddress);
  /** Hold a long-poll if the caps allow it; otherwise answer at once (the client polls again later). */
  const holdLongPoll = async (address: string, wait: () => Promise<void>): Promise<void> => {
    const key = normalizeAddress(address);
    const over = longPolls.enter(key);
    if (over !== undefined) return metrics.longPollShortened(over);
    try {
      await wait();
    } finally {
      longPolls.leave(key);
    }
  };
  const stapler: Stapler = new Stapler(store, {
    helloTimeoutMs: opts.helloTimeoutMs,
    stapledIdleMs: opts.stapledIdleMs,
    maxPendingSockets: opts.maxPendingSockets,
    maxPendingSocketsPerAddress: opts.maxPendingSocketsPerAddress,
    checkPassword,
    now: opts.now,
    log: app.log.child({ component: 'stapler' }),
    metrics,
  });
  store.onClose((channel, reason, local) => {
    // every process of a fleet hears every close (its stapler drops its sockets); the one that made it counts it
    if (!local) return;
    metrics.closed(reason);
    app.log.info({ channel, reason }, 'channel closed');
  });

  /** Pending long-polls; answered at once when the relay shuts down. */
  const waiters = new Set<() => void>();
  let sweep: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  let sweepBusy = false;
  let draining = false;

  app.setErrorHandler((err, request, reply) => sendError(err, request, reply, metrics));
  app.setNotFoundHandler((request, reply) => sendError(notFound(request), request, reply, metrics));
  /** Long-poll answers being read from the store: a close lets them finish (bounded) before connections are cut. */
  const answering = new Set<Promise<unknown>>();
  app.addHook('preClose', async () => {
    for (const finish of [...waiters]) finish();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...answering]), new Promise((r) => (timer = setTimeout(r, 2_000)))]);
    clearTimeout(timer);
  });
  /** One line for the refusals since the last one (a refusal is something any client can cause at will). */
  const logRefusals = (): void => {
    const refused = metrics.takeRecentRejections();
    if (refused !== undefined) app.log.info({ refused }, 'refused since the last summary');
  };
  // the store connects before the first request (inject() and listen() both wait for onReady)
  app.addHook('onReady', async () => {
    await store.start();
  });
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    logRefusals();
    metrics.stop();
    await stapler.close();
    await sweeping;
    await store.stop();
  });

  /** This process's advertised TCP stapling address, `HOST:PORT` (the port: the bound one unless given), or null. */
  const advertised = opts.advertiseTcp === undefined ? undefined : parseAdvertiseTcp(opts.advertiseTcp);
  const advertisedTcp = (): string | null =>
    advertised === undefined ? null : `${advertised.host.includes(':') ? `[${advertised.host}]` : advertised.host}:${advertised.port ?? stapler.port ?? opts.tcpPort}`;
  /** The join answer's TCP fields: the channel's recorded stapler (whichever process created it), else this process's port. */
  const stapledAt = (tcp: string | null): { tcpPort: number; tcpHost?: string } => {
    if (tcp !== null) {
      try {
        const { host, port } = parseAdvertiseTcp(tcp);
        if (port !== undefined) return { tcpHost: host, tcpPort: port };
      } catch {
        // a record written by something else: this process's own stapler
      }
    }
    return { tcpPort: stapler.port ?? opts.tcpPort };
  };

  /** An onRequest hook: refuse the request (429, retry-after) when its address is over `max` per window (kept in the store: fleet-wide with Redis). */
  const limited = (kind: string, max: number) => async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const retryMs = await store.backend.rateHit(kind, normalizeAddress(request.ip), max, opts.rateWindowMs, opts.now());
    if (retryMs === 0) return;
    throw rateLimited(reply, retryMs, 'too many requests from this address');
  };
  /**
   * Distinct names of channels the relay does not hold that recipient joins named, per address per
   * channel lifetime: a recipient waiting for its sender asks for the same name again and again
   * (it counts once); a scan names new ones.
   */
  const joinMisses = {
    over: (address: string) => store.backend.distinctOver('miss', address, opts.joinMissLimit, opts.channelTtlMs, opts.now()),
    hit: (address: string, name: string) => store.backend.distinctHit('miss', address, name, opts.joinMissLimit, opts.channelTtlMs, opts.now()),
  };

  void app.register(async (api) => {
    // fails (503 ERR_STORE_UNAVAILABLE) while the store cannot be reached: a load balancer skips this process
    api.get('/health', { schema: { response: { 200: healthResponseSchema, ...errorResponses } } }, async () => {
      await store.ping();
      return { ok: true, version: RELAY_PROTOCOL_VERSION };
    });

    api.get('/metrics', { schema: { response: errorResponses } }, async (request, reply) => {
      if (opts.metrics === 'off' || (opts.metrics === 'loopback' && !isLoopback(request.ip))) throw notFound(request);
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    });

    api.post<{ Body: JoinRequest }>(
      '/join',
      {
        schema: { body: joinBodySchema, response: { 200: joinResponseSchema, ...errorResponses } },
        onRequest: limited('join', opts.joinRateLimit),
      },
      async (request, reply): Promise<JoinResponse> => {
        if (draining) throw new RelayError('ERR_SHUTTING_DOWN', 'the relay is shutting down, try another one or later');
        if (!checkPassword(request.body.password)) throw new RelayError('ERR_UNAUTHORIZED', 'the relay password is missing or wrong');
        const address = normalizeAddress(request.ip);
        const recipient = request.body.role === 'recipient';
        if (recipient) {
          // An address that named too many channels the relay does not hold is refused every
          // recipient join for the rest of its window, held channels included (no answer tells it more).
          const retryMs = await joinMisses.over(address);
          if (retryMs > 0) throw rateLimited(reply, retryMs, 'too many joins of channels that do not exist from this address');
        }
        let joined: Awaited<ReturnType<typeof store.join>>;
        try {
          joined = await store.join(request.body, request.ip, advertisedTcp());
        } catch (err) {
          if (recipient && isRelayError(err) && err.code === 'ERR_CHANNEL_NOT_FOUND') await joinMisses.hit(address, request.body.channel ?? '');
          throw err;
        }
        const { participant, state } = joined;
        metrics.joined(participant.role, joined.tcp !== null && joined.tcp !== advertisedTcp());
        request.log.debug({ channel: state.channel, role: participant.role, address: participant.address }, 'joined');
        return {
          version: RELAY_PROTOCOL_VERSION,
          channel: state.channel,
          uuid: participant.uuid,
          role: participant.role,
          curve: state.curve,
          ...stapledAt(joined.tcp),
          // this relay serves the browser page at / (a sender shows its link)
          ...(servesPage ? { web: true } : {}),
          // what the recipient's first /channel would fetch (the sender's x): one round trip less
          state,
        };
      },
    );

    api.post<{ Body: ChannelRequest }>(
      '/channel',
      {
        schema: { body: channelBodySchema, response: { 200: channelStateSchema, ...errorResponses } },
        onRequest: limited('channel', opts.channelRateLimit),
      },
      async (request, reply): Promise<ChannelState> => {
        const body = request.body;
        let state = await store.update(body, request.ip);
        const wrote = WRITABLE.filter((k) => body[k] !== undefined);
        if (wrote.length > 0 || body.close === true || body.reject === true)
          request.log.debug({ channel: state.channel, address: request.ip, wrote, rejected: body.reject === true, closeReason: state.closeReason, version: state.version }, 'channel updated');
        const wait = body.wait ?? 0;
        const since = body.since ?? state.version;
        // a closed view (a closed channel, or an evicted recipient's) never changes again: answer at once
        if (wait > 0 && state.version <= since && !state.closed) {
          const answer = (async () => {
            await holdLongPoll(request.ip, () => waitForChange(store, waiters, body, since, wait, reply));
            return store.read(body, request.ip);
          })();
          answering.add(answer);
          try {
            state = await answer;
          } finally {
            answering.delete(answer);
          }
        }
        return state;
      },
    );
  });
  // the browser page and the WebSocket way to the stapler (web-page.ts, ws-stapler.ts)
  // a page served (it was built): join answers say so, and senders show its link
  const servesPage = opts.web && registerWeb(app, stapler);

  let closing: Promise<void> | undefined;
  let endDrain: (() => void) | undefined;
  return {
    app,
    tcp: stapler,
    store,
    metrics,
    options: opts,
    get draining() {
      return draining;
    },
    get httpConnections() {
      return connections.total;
    },
    get longPolls() {
      return longPolls.total;
    },
    async listen() {
      const tcpPort = await stapler.listen(opts.tcpPort, opts.host);
      await app.listen({ port: opts.port, host: opts.host });
      const address = app.server.address();
      const httpPort = address !== null && typeof address === 'object' ? address.port : opts.port;
      sweep = setInterval(() => {
        if (sweepBusy) return; // a slow store: one sweep at a time
        sweepBusy = true;
        sweeping = (async () => {
          const now = opts.now();
          try {
            metrics.timedOut('channel_ttl', (await store.expire(now)).closed.length);
          } catch (err) {
            app.log.debug({ code: isRelayError(err) ? err.code : 'ERR_INTERNAL' }, 'expiry sweep failed');
          }
          store.backend.purge(now);
          stapler.sweepIdle(now);
          logRefusals();
        })().finally(() => {
          sweepBusy = false;
        });
      }, opts.sweepIntervalMs);
      sweep.unref();
      app.log.info({ httpPort, tcpPort, host: opts.host }, 'relay listening');
      return { httpPort, tcpPort };
    },
    close(closeOptions: { graceMs?: number } = {}) {
      const graceMs = closeOptions.graceMs ?? 0;
      if (closing !== undefined) {
        if (graceMs === 0) endDrain?.();
        return closing;
      }
      closing = (async () => {
        if (graceMs > 0) {
          draining = true;
          stapler.stopAccepting();
          app.log.info({ graceMs, stapled: stapler.stapledCount }, 'draining: waiting for stapled pairs');
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            stapler.whenIdle(),
            new Promise<void>((resolve) => {
              endDrain = resolve;
              timer = setTimeout(resolve, graceMs);
            }),
          ]);
          clearTimeout(timer);
          app.log.info({ stapled: stapler.stapledCount }, 'drained');
        }
        draining = true;
        await app.close();
      })();
      return closing;
    },
  };
}

/** Fastify's is 72 s; an idle connection costs a descriptor, and clients reconnect cheaply. */
const KEEP_ALIVE_TIMEOUT_MS = 10_000;

/**
 * Counts of something held per address, with a relay-wide cap and a per-address one. enter() takes
 * a place or names the cap that refused it; every successful enter() is matched by one leave().
 */
class Gate {
  readonly #perAddress = new Map<string, number>();
  #total = 0;
  constructor(
    readonly max: number,
    readonly maxPerAddress: number,
  ) {}

  get total(): number {
    return this.#total;
  }

  enter(key: string): CapLimit | undefined {
    if (this.#total >= this.max) return 'total';
    const n = this.#perAddress.get(key) ?? 0;
    if (n >= this.maxPerAddress) return 'per_address';
    this.#perAddress.set(key, n + 1);
    this.#total++;
    return undefined;
  }

  leave(key: string): void {
    const n = this.#perAddress.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#perAddress.delete(key);
    else this.#perAddress.set(key, n - 1);
    this.#total--;
  }
}

/** A raw HTTP/1.1 answer in the documented shape that closes the connection (for the layers below the routes). */
function rawAnswer(status: number, body: RelayErrorBody): string {
  const json = JSON.stringify(body);
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`;
}

/** End `socket` after `data` is written; destroy it then, or after a second whatever the client does. */
function answerAndClose(socket: net.Socket, data: string): void {
  if (socket.destroyed) return;
  if (socket.writable) socket.end(data);
  socket.once('finish', () => socket.destroy());
  const linger = setTimeout(() => socket.destroy(), 1_000);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

/** A new HTTP connection: counted by its socket address, or answered and closed when over a cap. */
function admitConnection(socket: net.Socket, gate: Gate, metrics: RelayMetrics): void {
  const key = normalizeAddress(socket.remoteAddress ?? '');
  const over = gate.enter(key);
  if (over === undefined) {
    socket.once('close', () => gate.leave(key));
    return;
  }
  metrics.connectionRefused(over);
  const body: RelayErrorBody =
    over === 'total'
      ? { code: 'ERR_TOO_MANY_CONNECTIONS', message: 'the relay has too many connections open, try again later' }
      : { code: 'ERR_RATE_LIMITED', message: 'too many connections open from this address, try again later' };
  metrics.rejected('http', body.code);
  answerAndClose(socket, rawAnswer(over === 'total' ? 503 : 429, body));
}

/** Connections already answered by clientError (more bytes after the error must not count again). */
const answered = new WeakSet<net.Socket>();

/**
 * An error of Node's HTTP parser (malformed request, headers too large, request timeout): answered
 * `{ code: 'ERR_BAD_REQUEST', message }` like every other refusal, then the connection is closed.
 */
function clientError(err: NodeJS.ErrnoException, socket: net.Socket, metrics: RelayMetrics): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
  answered.add(socket);
  let status = 400;
  let message = 'malformed HTTP request';
  let kind: 'bad_request' | 'header_overflow' | 'timeout' = 'bad_request';
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = 'request headers are too large';
    kind = 'header_overflow';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    message = 'the request did not arrive in time';
    kind = 'timeout';
  }
  metrics.clientError(kind);
  metrics.rejected('http', 'ERR_BAD_REQUEST');
  // A parse error can fall in the middle of an answer already being written (a pipelined request):
  // then only closing is left.
  const busy = (socket as net.Socket & { _httpMessage?: unknown })._httpMessage != null;
  if (busy) return void socket.destroy();
  answerAndClose(socket, rawAnswer(status, { code: 'ERR_BAD_REQUEST', message }));
}

/** A 429 with its retry-after header. */
function rateLimited(reply: FastifyReply, retryMs: number, what: string): RelayError {
  const seconds = Math.max(1, Math.ceil(retryMs / 1000));
  void reply.header('retry-after', String(seconds));
  return new RelayError('ERR_RATE_LIMITED', `${what}, retry in ${seconds} s`);
}

function notFound(request: FastifyRequest): RelayError {
  return new RelayError('ERR_NOT_FOUND', `no route ${request.method} ${(request.url.split('?')[0] ?? '').slice(0, 100)}`);
}

function isLoopback(ip: string): boolean {
  const a = normalizeAddress(ip);
  return a === '::1' || a.startsWith('127.');
}

/**
 * Resolve when the version of `ref`'s channel (as `ref.uuid` sees it) exceeds `since`, the channel
 * goes away, `ms` elapse, the client disconnects or the relay shuts down; every path unsubscribes.
 * Woken by the store's change events (from any process of a fleet), it reads the channel again.
 */
function waitForChange(
  store: ChannelStore,
  waiters: Set<() => void>,
  ref: { channel: string; uuid: string },
  since: number,
  ms: number,
  reply: FastifyReply,
): Promise<void> {
  return new Promise((resolve) => {
    if (reply.raw.destroyed) return resolve();
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      reply.raw.off('close', finish);
      waiters.delete(finish);
      resolve();
    };
    let checking = false;
    let again = false;
    const check = async (): Promise<void> => {
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          const state = await store.peek(ref);
          if (state === undefined || state.version > since) return finish();
        } while (again && !done);
      } catch {
        // the store is unreachable: the poll ends at its time, or at the next change once it is back
      } finally {
        checking = false;
      }
    };
    // the participant's own channel: a newer channel under the same name is not its business (peek)
    const unsubscribe = store.subscribe(ref, () => void check());
    const timer = setTimeout(finish, ms);
    reply.raw.once('close', finish);
    waiters.add(finish);
    // a change between the update and the subscription
    void check();
  });
}
