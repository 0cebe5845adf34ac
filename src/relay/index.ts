/**
 * The relay: an HTTP rendezvous for the PAKE messages and a TCP stapler that joins the two peers'
 * connections (docs/relay-api.md). startRelay() is the one-call entry point; buildRelay() gives the
 * unstarted pieces (for inject() tests or custom wiring).
 */
import { buildRelay } from './http.js';
import type { RelayOptions } from './options.js';

export { buildRelay, toErrorAnswer, type Relay } from './http.js';
export { RELAY_DEFAULTS, resolveRelayOptions, type RelayLoggerOptions, type RelayOptions } from './options.js';
export {
  ChannelStore,
  RELAY_ERROR_STATUS,
  RelayError,
  isRelayError,
  normalizeAddress,
  STORE_RETRY_AFTER_S,
  type ChangeEvent,
  type ChannelBackend,
  type ChannelRecord,
  type ChannelStoreConfig,
  type Commit,
  type CommitResult,
  type ExpireResult,
  type JoinResult,
  type Participant,
} from './channels.js';
export { MemoryBackend } from './store-memory.js';
export { RedisBackend, type RedisBackendOptions, type StoreObserver } from './store-redis.js';
export { checkStoreUrl } from './store-url.js';
export { EARLY_BYTES_LIMIT, MAX_BIG_BUFFERS, Stapler, type StaplerOptions } from './stapler.js';
export { RelayMetrics, type RelayGaugeSources, type RejectionSource } from './metrics.js';
export { passwordCheck, type PasswordCheck } from './password.js';

export interface RunningRelay {
  /** A URL peers on this machine can use: a wildcard host is reported as loopback. */
  httpUrl: string;
  httpPort: number;
  tcpPort: number;
  /** Shut down; with `graceMs`, drain first (see Relay.close). */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** Build the relay, bind both ports and return where it listens. */
export async function startRelay(options: Partial<RelayOptions> = {}): Promise<RunningRelay> {
  const relay = buildRelay(options);
  let ports: { httpPort: number; tcpPort: number };
  try {
    ports = await relay.listen();
  } catch (e) {
    await relay.close();
    throw e;
  }
  return { httpUrl: urlFor(relay.options.host, ports.httpPort), ...ports, close: (o) => relay.close(o) };
}

function urlFor(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return reachable.includes(':') ? `http://[${reachable}]:${port}` : `http://${reachable}:${port}`;
}
