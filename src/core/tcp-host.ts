/**
 * The relay's advertised TCP stapling host (the join answer's `tcpHost`, docs/protocol.md §2.1):
 * a host name or an IP literal, checked strictly because the relay is not trusted. Pure (runs in a
 * browser: WHATWG URL parses IPv6 literals).
 */

/** Longest tcpHost a peer accepts (a DNS name's limit). */
export const MAX_TCP_HOST_LENGTH = 253;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Dot-separated labels of letters, digits and inner hyphens, the last not all digits. */
const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** The canonical form of an IPv6 literal (no brackets), or null if `s` is not one. */
function ipv6(s: string): string | null {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(s) || !s.includes(':')) return null;
  try {
    const h = new URL(`http://[${s}]/`).hostname;
    return h.slice(1, -1);
  } catch {
    return null;
  }
}

/** Why `host` is no place to connect a stapled stream to, or null if it is one. */
export function tcpHostProblem(host: string): string | null {
  if (host.length === 0 || host.length > MAX_TCP_HOST_LENGTH) return 'empty or too long';
  if (IPV4.test(host)) {
    const [a, b, c, d] = host.split('.').map(Number) as [number, number, number, number];
    if (a === 0) return 'an unspecified address';
    if (a >= 224 && a <= 239) return 'a multicast address';
    if (a === 255 && b === 255 && c === 255 && d === 255) return 'the broadcast address';
    if (a >= 240) return 'a reserved address';
    return null;
  }
  const v6 = ipv6(host);
  if (v6 !== null) {
    if (v6 === '::') return 'an unspecified address';
    if (/^ff/i.test(v6)) return 'a multicast address';
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(v6);
    if (mapped !== null) {
      const hi = parseInt(mapped[1]!, 16);
      const lo = parseInt(mapped[2]!, 16);
      return tcpHostProblem(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
    }
    return null;
  }
  if (host.includes(':')) return 'not a host name or an IP address';
  if (!HOSTNAME.test(host)) return 'not a host name or an IP address';
  // a dotted name whose last label is all digits is a malformed IPv4 address, not a name
  if (/(^|\.)\d+\.?$/.test(host)) return 'not a host name or an IP address';
  return null;
}

/** A host name or a unicast IP literal that a peer may connect to. */
export const isTcpHost = (host: unknown): host is string => typeof host === 'string' && tcpHostProblem(host) === null;

/** Loopback: localhost names, 127/8, ::1 (and its IPv4-mapped forms). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (/^127\./.test(h)) return true;
  const v6 = ipv6(h.replace(/^\[(.*)\]$/, '$1'));
  if (v6 === null) return false;
  return v6 === '::1' || /^::ffff:7f[0-9a-f]{2}:/i.test(v6);
}

/**
 * Why a peer refuses a join answer's tcpHost, or null if it connects there: a well-formed unicast
 * host, and loopback only from a relay whose HTTP host (`httpHost`, as the peer used it) is loopback
 * too (a relay elsewhere does not send its peers to a service on their own machine).
 */
export function tcpHostRefusal(tcpHost: unknown, httpHost: string): string | null {
  if (typeof tcpHost !== 'string') return 'not a string';
  const problem = tcpHostProblem(tcpHost);
  if (problem !== null) return problem;
  if (isLoopbackHost(tcpHost) && !isLoopbackHost(httpHost)) return 'a loopback address named by a relay that is not on this machine';
  return null;
}

/**
 * `HOST[:PORT]` of --advertise-tcp: an IPv6 host in brackets when a port follows (`[::1]:9010`).
 * The port, when absent, is the process's own TCP port. Throws RangeError naming the problem.
 */
export function parseAdvertiseTcp(s: string): { host: string; port: number | undefined } {
  let host: string;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracket !== null) {
    host = bracket[1]!;
    port = bracket[2];
    if (ipv6(host) === null) throw new RangeError('advertiseTcp: a bracketed host must be an IPv6 address');
  } else if ((s.match(/:/g) ?? []).length === 1) {
    [host, port] = s.split(':') as [string, string];
    if (!/^\d{1,5}$/.test(port)) throw new RangeError('advertiseTcp: the port must be a number');
  } else {
    host = s;
  }
  const problem = tcpHostProblem(host);
  if (problem !== null) throw new RangeError(`advertiseTcp: the host is ${problem}`);
  if (port === undefined) return { host, port: undefined };
  const n = Number(port);
  if (!Number.isInteger(n) || n < 1 || n > 65_535) throw new RangeError('advertiseTcp: the port must be 1-65535');
  return { host, port: n };
}
