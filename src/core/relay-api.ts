/**
 * The relay's wire contract, shared by the relay (src/relay) and the peers (src/transfer).
 * HTTP: POST /join, POST /channel, GET /health (see docs/protocol.md §2).
 * TCP: a length-prefixed JSON hello from the peer, a length-prefixed JSON reply from the relay,
 * then, once stapled, an opaque byte stream (see docs/protocol.md §3).
 * Pure: no sockets here, only shapes, limits and codecs.
 */

export const RELAY_PROTOCOL_VERSION = 1;

export const ROLES = ['sender', 'recipient'] as const;
export type Role = (typeof ROLES)[number];

export const CURVES = ['ed25519', 'p256'] as const;
export type CurveName = (typeof CURVES)[number];
export const DEFAULT_CURVE: CurveName = 'ed25519';

/**
 * Why a channel closed. Peers post the first four; the relay sets 'expired' when nobody used a code
 * in time (and, in an evicted recipient's view, when it did not write y and hh_k in time).
 */
export const CLOSE_REASONS = ['done', 'wrong-code', 'cancelled', 'error', 'expired'] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];
/** The reasons a peer may post with `close: true` ('expired' is the relay's alone). */
export const PEER_CLOSE_REASONS = ['done', 'wrong-code', 'cancelled', 'error'] as const;
export type PeerCloseReason = (typeof PEER_CLOSE_REASONS)[number];

/** Channel names: lowercase letters and digits; never a dash (the code phrase splits on dashes). */
export const CHANNEL_PATTERN = '^[a-z0-9]{1,32}$';
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
/** A SPAKE2 share: an encoded curve point (32 bytes for ed25519, 65 for uncompressed P-256). */
export const SHARE_PATTERN = '^[0-9a-f]{64,130}$';
/** A key-confirmation MAC: HMAC-SHA256, 32 bytes. */
export const CONFIRM_PATTERN = '^[0-9a-f]{64}$';
/** Longest a /channel request may ask the relay to hold its answer. */
export const MAX_WAIT_MS = 30_000;
/** Longest relay password, in characters (both on /join and in the TCP hello). */
export const MAX_PASSWORD_LENGTH = 256;

export interface JoinRequest {
  role: Role;
  /** Sender: optional (the relay picks a short free one). Recipient: required. */
  channel?: string;
  /** Sender only; the relay stores it, the recipient learns it from the answer. */
  curve?: CurveName;
  /** The relay password, when the relay has one (1..MAX_PASSWORD_LENGTH characters). */
  password?: string;
}

export interface JoinResponse {
  version: number;
  channel: string;
  /** The bearer token of this participant: sent with every /channel call and in the TCP hello. */
  uuid: string;
  role: Role;
  curve: CurveName;
  /** The relay's TCP stapling port: on `tcpHost` when given, else on the host of the HTTP address the peer used. */
  tcpPort: number;
  /**
   * Optional: the host of the channel's TCP stapler (a relay fleet, whose processes share one HTTP
   * address: docs/protocol.md §2.1). A host name or an IP literal (IPv6 without brackets), at most 253
   * characters, never a multicast, broadcast or unspecified address. Absent: the HTTP host.
   */
  tcpHost?: string;
  /** Optional: true when the relay serves the browser page at `/` (a sender shows the link `<relay>/#<code>`). */
  web?: boolean;
  /**
   * Optional: the channel as `POST /channel` would answer this participant right after the join
   * (a recipient finds the sender's x there). Absent from relays older than this field.
   */
  state?: ChannelState;
}

export interface ChannelRequest {
  channel: string;
  uuid: string;
  x?: string;
  y?: string;
  hh_k?: string;
  h_k?: string;
  close?: boolean;
  /**
   * Recipient only, after h_k, once (the same value again is harmless), also into a closed channel:
   * its proof that everything arrived (src/core/received-proof.ts, docs/protocol.md §7.1), for a
   * sender whose connection dropped before it read `received`. 64 lowercase hex digits.
   */
  fin?: string;
  /**
   * Sender only, alone: the recipient's confirmation (hh_k) failed. The relay evicts the recipient,
   * clears x, y and hh_k, counts the attempt, and the channel waits for a new recipient (or closes
   * with 'wrong-code' when `maxAttempts` attempts have failed).
   */
  reject?: boolean;
  /** One of PEER_CLOSE_REASONS (the /channel schema refuses "expired"). */
  reason?: CloseReason;
  /** Long-poll: hold the answer until the channel's version is greater than `since`, at most `wait` ms. */
  wait?: number;
  since?: number;
}

export interface ChannelState {
  channel: string;
  curve: CurveName;
  /** Increases by one on every change of the channel; used with `since` for long-polling. */
  version: number;
  sender: boolean;
  recipient: boolean;
  x: string | null;
  y: string | null;
  hh_k: string | null;
  h_k: string | null;
  stapled: boolean;
  closed: boolean;
  closeReason: CloseReason | null;
  /** The recipient's `fin` (see ChannelRequest), once written; absent until then (and from older relays). */
  fin?: string;
  /**
   * Recipients of this channel that wrote y and hh_k but were not accepted (rejected by the sender,
   * or left before h_k). Absent from relays older than this field (they cannot reject).
   */
  attempts?: number;
  /** The relay closes the channel with 'wrong-code' when `attempts` reaches this. */
  maxAttempts?: number;
}

/** Default of the relay's cap on failed attempts per channel (the reference sender stops there too). */
export const DEFAULT_MAX_ATTEMPTS = 5;
/** Default time a recipient has to write y and hh_k once x is there for it. */
export const DEFAULT_RECIPIENT_TIMEOUT_MS = 30_000;

/** Error body of every non-2xx HTTP answer. */
export interface RelayErrorBody {
  code: RelayErrorCode;
  message: string;
}

export const RELAY_ERROR_CODES = [
  'ERR_BAD_REQUEST', // 400: malformed JSON or a body that fails the schema
  'ERR_UNAUTHORIZED', // 401: relay password missing or wrong
  'ERR_UNKNOWN_PARTICIPANT', // 403: uuid is not a participant of this channel
  'ERR_ADDRESS_MISMATCH', // 403: uuid used from another address than the one it joined from
  'ERR_WRONG_ROLE', // 403: a field written by the role that does not own it
  'ERR_CHANNEL_NOT_FOUND', // 404
  'ERR_NOT_FOUND', // 404: no such route
  'ERR_CHANNEL_OCCUPIED', // 409: a sender asked for a channel that already has a sender
  'ERR_CHANNEL_FULL', // 409: the channel already has two participants
  'ERR_FIELD_ALREADY_SET', // 409: x, y, hh_k and h_k are each written once
  'ERR_OUT_OF_ORDER', // 409: a field written before the one it follows
  'ERR_CHANNEL_CLOSED', // 410
  'ERR_BODY_TOO_LARGE', // 413
  'ERR_RATE_LIMITED', // 429: too many requests, or too many open channels, from this address
  'ERR_TOO_MANY_CHANNELS', // 503
  'ERR_TOO_MANY_CONNECTIONS', // 503: TCP only, too many sockets waiting for a hello or a partner
  'ERR_SHUTTING_DOWN', // 503: the relay is draining: no new channels or connections
  'ERR_STORE_UNAVAILABLE', // 503 with Retry-After: the relay's shared store (Redis) is unreachable for now
  'ERR_INTERNAL', // 500
] as const;
export type RelayErrorCode = (typeof RELAY_ERROR_CODES)[number];

// ---------------------------------------------------------------- TCP hello

/** Most bytes a hello's JSON body may have. */
export const MAX_HELLO_BYTES = 512;

export interface TcpHello {
  v: number;
  channel: string;
  uuid: string;
  /** The relay password, when the relay has one. */
  password?: string;
}

export type TcpReply = { v: number; type: 'stapled' } | { v: number; type: 'error'; code: RelayErrorCode | 'ERR_HELLO'; message: string };

/** Frame a hello or reply: u16 big-endian length, then UTF-8 JSON. */
export function encodeControlFrame(body: TcpHello | TcpReply): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  if (json.length > MAX_HELLO_BYTES) throw new RangeError('control frame too large');
  const out = Buffer.allocUnsafe(2 + json.length);
  out.writeUInt16BE(json.length, 0);
  json.copy(out, 2);
  return out;
}

export type ControlFrameParse =
  | { kind: 'need-more' }
  | { kind: 'frame'; body: unknown; rest: Buffer }
  | { kind: 'invalid'; reason: string };

/** Try to take one control frame off the front of `buf`. Never allocates more than MAX_HELLO_BYTES. */
export function parseControlFrame(buf: Buffer): ControlFrameParse {
  if (buf.length < 2) return { kind: 'need-more' };
  const len = buf.readUInt16BE(0);
  if (len === 0 || len > MAX_HELLO_BYTES) return { kind: 'invalid', reason: `control frame length ${len} out of range` };
  if (buf.length < 2 + len) return { kind: 'need-more' };
  let body: unknown;
  try {
    body = JSON.parse(buf.subarray(2, 2 + len).toString('utf8'));
  } catch {
    return { kind: 'invalid', reason: 'control frame is not JSON' };
  }
  return { kind: 'frame', body, rest: buf.subarray(2 + len) };
}

const channelRe = new RegExp(CHANNEL_PATTERN);
const uuidRe = new RegExp(UUID_PATTERN);

/** Exactly {v, channel, uuid} or {v, channel, uuid, password}, well-formed. */
export function isTcpHello(body: unknown): body is TcpHello {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  const keys = Object.keys(b).length;
  const withPassword = 'password' in b;
  return (
    keys === (withPassword ? 4 : 3) &&
    (!withPassword || (typeof b.password === 'string' && b.password.length >= 1 && b.password.length <= MAX_PASSWORD_LENGTH)) &&
    b.v === RELAY_PROTOCOL_VERSION &&
    typeof b.channel === 'string' &&
    channelRe.test(b.channel) &&
    typeof b.uuid === 'string' &&
    uuidRe.test(b.uuid)
  );
}

export function isTcpReply(body: unknown): body is TcpReply {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  if (b.v !== RELAY_PROTOCOL_VERSION) return false;
  if (b.type === 'stapled') return true;
  return b.type === 'error' && typeof b.code === 'string' && typeof b.message === 'string';
}
