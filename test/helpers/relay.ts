/** A relay on loopback for tests about the peers: many transfers from one address, so the per-address limits (tested on their own) are lifted. */
import { startRelay, type RunningRelay } from '../../src/relay/index.js';

export function startPeerRelay(): Promise<RunningRelay> {
  return startRelay({ port: 0, tcpPort: 0, joinRateLimit: 100_000, channelRateLimit: 1_000_000, maxChannelsPerAddress: 10_000, maxHttpConnectionsPerAddress: 10_000, maxLongPollsPerAddress: 4_000, maxPendingSocketsPerAddress: 4_000 });
}
