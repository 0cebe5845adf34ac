/**
 * Finding a sender on the local network when no relay is configured. The sender, running the
 * relay in its own process, multicasts `{v, app, channel, port}` (no secret: only what is needed
 * to reach the channel's HTTP port) on every IPv4 interface, loopback included; the recipient
 * listens for its channel and uses the address the announcement came from. `interfaces` (the
 * CLI's --interface, env TSC_CROC_INTERFACES) confines both to the named interfaces (names such
 * as `lo`, or IPv4 addresses such as 127.0.0.1): nothing is sent or joined on any other.
 */
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { TscCrocError } from '../core/errors.js';
import { CHANNEL_PATTERN } from '../core/relay-api.js';
import { formatWait } from './relay-client.js';

export const DISCOVERY_GROUP = '239.255.42.99';
export const DISCOVERY_PORT = 9011;
const ANNOUNCE_EVERY_MS = 250;
const MAX_DATAGRAM = 512;
const channelRe = new RegExp(CHANNEL_PATTERN);

interface Announcement {
  v: 1;
  app: 'tsc-croc';
  channel: string;
  port: number;
}

/**
 * IPv4 addresses to announce and listen on: by default every interface that is up, and loopback;
 * with `interfaces`, only those (each an interface name or one of this machine's IPv4 addresses).
 * An unknown name is refused (ERR_INVALID_ARGUMENT), so a typo never widens the set.
 */
export function interfaceAddresses(interfaces?: readonly string[]): string[] {
  const all = networkInterfaces();
  if (interfaces === undefined) {
    const out = new Set<string>(['127.0.0.1']);
    for (const list of Object.values(all)) for (const a of list ?? []) if (a.family === 'IPv4') out.add(a.address);
    return [...out];
  }
  const out = new Set<string>();
  for (const raw of interfaces) {
    const name = raw.trim();
    if (name === '') continue;
    if (isIPv4(name)) {
      out.add(name);
      continue;
    }
    const v4 = (all[name] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
    if (v4.length === 0)
      throw new TscCrocError('ERR_INVALID_ARGUMENT', `no interface ${JSON.stringify(name)} with an IPv4 address here (have: ${Object.keys(all).join(', ')})`);
    for (const a of v4) out.add(a);
  }
  if (out.size === 0) throw new TscCrocError('ERR_INVALID_ARGUMENT', 'the list of interfaces for the local network is empty');
  return [...out];
}

function parseAnnouncement(msg: Buffer): Announcement | null {
  if (msg.length > MAX_DATAGRAM) return null;
  let o: unknown;
  try {
    o = JSON.parse(msg.toString('utf8'));
  } catch {
    return null;
  }
  const a = o as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || a.v !== 1 || a.app !== 'tsc-croc') return null;
  if (typeof a.channel !== 'string' || !channelRe.test(a.channel)) return null;
  if (typeof a.port !== 'number' || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) return null;
  return { v: 1, app: 'tsc-croc', channel: a.channel, port: a.port };
}

/** Announce a channel until stop() is called. Failures to send on one interface are ignored. */
export function announce(channel: string, httpPort: number, interfaces?: readonly string[]): { stop: () => void } {
  const body = Buffer.from(JSON.stringify({ v: 1, app: 'tsc-croc', channel, port: httpPort } satisfies Announcement));
  const sockets = interfaceAddresses(interfaces).map((address) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.on('error', () => undefined);
    s.bind(0, address, () => {
      try {
        s.setMulticastInterface(address);
        s.setMulticastTTL(1); // the local network only
      } catch {
        // an interface without multicast: its sends fail quietly
      }
    });
    return s;
  });
  const send = () => {
    for (const s of sockets) s.send(body, DISCOVERY_PORT, DISCOVERY_GROUP, () => undefined);
  };
  const timer = setInterval(send, ANNOUNCE_EVERY_MS);
  timer.unref();
  setImmediate(send);
  return {
    stop: () => {
      clearInterval(timer);
      for (const s of sockets) s.close();
    },
  };
}

/**
 * Listen for the channel's announcement; resolve with the relay URL it points to. A sender that
 * starts later is found as soon as it announces, up to `timeoutMs`. With `waiting` (a recipient
 * that waits for its sender), `onWaiting` is called once if none is heard within `afterMs`, and
 * the end of the wait is ERR_TIMEOUT; without it, ERR_CHANNEL_NOT_FOUND.
 */
export function discover(
  channel: string,
  timeoutMs: number,
  signal?: AbortSignal,
  interfaces?: readonly string[],
  waiting?: { afterMs: number; onWaiting: () => void },
): Promise<string> {
  const addresses = interfaceAddresses(interfaces); // an unknown name fails here, before anything is bound
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const finish = (err: unknown, url?: string) => {
      clearTimeout(timer);
      clearTimeout(slow);
      signal?.removeEventListener('abort', onAbort);
      s.close();
      if (err) reject(err);
      else resolve(url!);
    };
    const onAbort = () => finish(new TscCrocError('ERR_CANCELLED', 'cancelled'));
    const timer = setTimeout(
      () =>
        finish(
          new TscCrocError(
            waiting === undefined ? 'ERR_CHANNEL_NOT_FOUND' : 'ERR_TIMEOUT',
            `no sender found on the local network for channel ${channel} within ${formatWait(timeoutMs)}: check that the sender is running on this network and shows that number at the start of its code; if it uses a relay, give the same --relay here`,
          ),
        ),
      timeoutMs,
    );
    const slow = waiting !== undefined && waiting.afterMs < timeoutMs ? setTimeout(waiting.onWaiting, waiting.afterMs) : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
    s.on('error', (e) => finish(new TscCrocError('ERR_IO', `cannot listen for senders on the local network (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
    s.on('message', (msg, rinfo) => {
      const a = parseAnnouncement(msg);
      if (a === null || a.channel !== channel) return;
      finish(null, `http://${rinfo.address}:${a.port}`);
    });
    s.bind(DISCOVERY_PORT, () => {
      for (const address of addresses) {
        try {
          s.addMembership(DISCOVERY_GROUP, address);
        } catch {
          // an interface without multicast
        }
      }
    });
  });
}
