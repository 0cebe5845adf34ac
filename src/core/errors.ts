/**
 * Typed errors with stable codes. Every failure that can reach a user carries one of these
 * codes; the CLI maps codes to exit codes in exactly one place (src/cli/exit.ts).
 * Messages are for humans and must never contain a secret (code words, keys, PAKE fields).
 */
export const ERROR_CODES = [
  // usage and local problems
  'ERR_INVALID_ARGUMENT',
  'ERR_BAD_CODE_FORMAT',
  'ERR_IO',
  /** The disk filled up (ENOSPC, EDQUOT) while receiving; what arrived is kept to resume. */
  'ERR_DISK_FULL',
  /** The output folder (or a folder in it) cannot be written (EACCES, EROFS, EPERM). */
  'ERR_NOT_WRITABLE',
  /** A file changed on the sending side while it was being read. */
  'ERR_SOURCE_CHANGED',
  'ERR_FILE_EXISTS',
  'ERR_NEEDS_CONSENT',
  // the relay
  'ERR_RELAY_UNREACHABLE',
  'ERR_RELAY',
  'ERR_CHANNEL_NOT_FOUND',
  'ERR_CHANNEL_FULL',
  'ERR_CHANNEL_CLOSED',
  'ERR_TIMEOUT',
  /** The relay went away mid-transfer and did not come back in time. */
  'ERR_RELAY_LOST',
  // key agreement
  'ERR_WRONG_CODE',
  'ERR_BAD_PAKE_MESSAGE',
  // the record layer
  'ERR_RECORD_AUTH',
  'ERR_RECORD_REPLAY',
  'ERR_RECORD_REORDER',
  'ERR_RECORD_TRUNCATED',
  'ERR_RECORD_AFTER_END',
  'ERR_FRAME_TOO_LARGE',
  'ERR_COUNTER_EXHAUSTED',
  // the transfer protocol
  'ERR_PROTOCOL',
  'ERR_UNSAFE_PATH',
  'ERR_INTEGRITY',
  'ERR_DECLINED',
  'ERR_CANCELLED',
  'ERR_PEER_ERROR',
  'ERR_CONNECTION_LOST',
  /** The connection dropped mid-transfer and the other side did not come back in time (it quit, or was killed). */
  'ERR_PEER_LOST',
  /** Nothing arrived from the other side for too long, though the connection stayed up. */
  'ERR_STALLED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class TscCrocError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TscCrocError';
    this.code = code;
  }
}

export function isTscCrocError(e: unknown, code?: ErrorCode): e is TscCrocError {
  return e instanceof TscCrocError && (code === undefined || e.code === code);
}
