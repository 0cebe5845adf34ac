/** The one place where errors become exit codes and stderr lines (README.md lists the codes). */
import { isTscCrocError, type ErrorCode } from '../core/errors.js';
import { displayName } from '../core/path.js';

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  WRONG_CODE: 3,
  DECLINED_OR_CANCELLED: 4,
  NETWORK: 5,
  RELAY_LOST: 6,
  PEER_LOST: 7,
  DISK_FULL: 8,
  NOT_WRITABLE: 9,
  STALLED: 10,
  SOURCE_CHANGED: 11,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARGUMENT: EXIT.USAGE,
  ERR_BAD_CODE_FORMAT: EXIT.USAGE,
  ERR_WRONG_CODE: EXIT.WRONG_CODE,
  ERR_DECLINED: EXIT.DECLINED_OR_CANCELLED,
  ERR_CANCELLED: EXIT.DECLINED_OR_CANCELLED,
  ERR_NEEDS_CONSENT: EXIT.DECLINED_OR_CANCELLED,
  ERR_RELAY_UNREACHABLE: EXIT.NETWORK,
  ERR_CONNECTION_LOST: EXIT.NETWORK,
  ERR_TIMEOUT: EXIT.NETWORK,
  ERR_RELAY_LOST: EXIT.RELAY_LOST,
  ERR_PEER_LOST: EXIT.PEER_LOST,
  ERR_DISK_FULL: EXIT.DISK_FULL,
  ERR_NOT_WRITABLE: EXIT.NOT_WRITABLE,
  ERR_STALLED: EXIT.STALLED,
  ERR_SOURCE_CHANGED: EXIT.SOURCE_CHANGED,
};

/** Print one clear line for `e` and return the exit code. Never prints a stack for expected errors. */
export function reportError(e: unknown, write: (line: string) => void): number {
  if (isTscCrocError(e)) {
    write(`tsc-croc: ${displayName(e.message)} [${e.code}]`);
    // the underlying Node error (ECONNREFUSED, HPE_...) only when debugging: the line above says it in words
    const cause = e.cause as { code?: unknown; message?: unknown } | undefined;
    if (process.env.TSC_CROC_DEBUG && cause) write(`tsc-croc: cause: ${displayName(String(cause.code ?? ''))} ${displayName(String(cause.message ?? ''))}`);
    return BY_CODE[e.code] ?? EXIT.ERROR;
  }
  const err = e as Error;
  write(`tsc-croc: unexpected error: ${displayName(err?.message ?? String(e))}`);
  if (process.env.TSC_CROC_DEBUG) write(String(err?.stack));
  return EXIT.ERROR;
}
