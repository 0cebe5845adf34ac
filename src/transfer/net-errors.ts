/**
 * Network failures in plain words: what was tried, what went wrong, what to check. Node's codes
 * (ECONNREFUSED, EAI_AGAIN, HPE_INVALID_CONSTANT...) stay out of the message; the original error
 * is kept as the TscCrocError's `cause` for --json and debug output.
 */
import { TscCrocError, type ErrorCode } from '../core/errors.js';

/** What was being reached: the relay's HTTP address, or its TCP (stapling) port. */
export interface NetTarget {
  kind: 'relay-http' | 'relay-tcp';
  /** http://host:port for the HTTP side, host:port for the TCP side. */
  where: string;
  host: string;
}

/** The Node error code of `e` (or of its cause), if any. */
export function netErrorCode(e: unknown): string | undefined {
  for (let x: unknown = e, depth = 0; x !== null && typeof x === 'object' && depth < 4; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

const TLS_CERT = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
]);

/** Why the attempt failed, in words, with what to check; never a Node code. */
export function netReason(e: unknown, target: NetTarget): string {
  const code = netErrorCode(e) ?? '';
  const tcp = target.kind === 'relay-tcp';
  switch (code) {
    case 'ECONNREFUSED':
      return tcp
        ? 'nothing accepts connections on that port: the relay may have stopped, or its TCP port is blocked or not published (check its --tcp-port and firewall)'
        : 'nothing accepts connections there: is the relay running, and is the port right? (its HTTP port is usually 9009)';
    case 'ENOTFOUND':
    case 'EAI_NONAME':
    case 'EAI_NODATA':
    case 'EAI_FAIL':
      return `the name ${target.host} does not exist: check the spelling of the relay address`;
    case 'EAI_AGAIN':
      return `the name ${target.host} could not be looked up (no answer from the name server): check this computer's network connection, then try again`;
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return 'no answer in time: check the address, and that no firewall blocks the port';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return `no route to ${target.host}: check this computer's network connection and the address`;
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return 'the connection was cut (by the relay, or a firewall or proxy on the way): try again; if it keeps happening, check the address and port';
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return 'the secure connection failed: the port may not speak https (use http:// for a relay without TLS)';
  }
  if (TLS_CERT.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'))
    return "its TLS certificate was not accepted (untrusted, expired, or for another name): check the address, or the relay's certificate";
  if (code.startsWith('HPE_'))
    return tcp
      ? 'it answered, but not as a tsc-croc relay: check the address'
      : 'it answered, but not as a tsc-croc relay (is that its TCP port? the HTTP port is usually 9009)';
  return 'the network failed: check the address and this computer\'s network connection';
}

/** A network failure while reaching `target`, as a typed error with `cause` kept. */
export function netError(e: unknown, target: NetTarget, code: ErrorCode = 'ERR_RELAY_UNREACHABLE'): TscCrocError {
  const what = target.kind === 'relay-tcp' ? `the relay's TCP port ${target.where}` : `the relay at ${target.where}`;
  return new TscCrocError(code, `cannot reach ${what}: ${netReason(e, target)}`, { cause: e });
}

/** A connection that worked and then broke while an answer was being read. */
export function brokenError(e: unknown, target: NetTarget): TscCrocError {
  return new TscCrocError('ERR_RELAY_UNREACHABLE', `the connection to the relay at ${target.where} broke while it answered: try again`, { cause: e });
}

/** An HTTP answer that is not a relay's JSON (a web server, a proxy's error page, another service). */
export function notARelayError(status: number, target: NetTarget): TscCrocError {
  // a proxy or load balancer in front of the relay with no relay to send the request to (all
  // down, or restarting): the address is right, the moment is not
  if (status === 502 || status === 503 || status === 504)
    return new TscCrocError(
      'ERR_RELAY_UNREACHABLE',
      `cannot reach the relay at ${target.where}: it is unavailable right now (HTTP ${status}, from the relay's server or a proxy in front of it): try again in a moment`,
    );
  return new TscCrocError(
    'ERR_RELAY',
    `the server at ${target.where} answered (HTTP ${status}), but not as a tsc-croc relay: check the address and port (a relay's HTTP port is usually 9009), and any proxy in front of it`,
  );
}
