/**
 * The tsc-croc handshake: SPAKE2 (RFC 9382) with the sender as A and the recipient as B,
 * key confirmation (RFC 9382 §3.3, §4) in the order of the relay protocol, then the record keys.
 *
 *   sender    -> x    = pA
 *   recipient -> y    = pB, hh_k = cB
 *   sender    checks hh_k == cB, then -> h_k = cA
 *   recipient checks h_k == cA
 *
 * Session keys are released only after the peer's confirmation checked out.
 * Pure: no I/O; randomness is injectable.
 * @module
 */
import { abytes, equalBytes } from './assert.js';
import { TscCrocError } from './errors.js';
import { deriveSessionKeys, type SessionKeys } from './key-schedule.js';
import { assertContext, type HandshakeContext } from './handshake-context.js';
import { spake2Start, type Spake2Result } from './spake2.js';
import { utf8 } from './utf8.js';

export { assertContext, type HandshakeContext } from './handshake-context.js';

/** SPAKE2 identity of A, the sender. */
export const SENDER_IDENTITY = 'tsc-croc/v1/sender';
/** SPAKE2 identity of B, the recipient. */
export const RECIPIENT_IDENTITY = 'tsc-croc/v1/recipient';
/** Prefix of the AAD; the full AAD is this + curve + '/' + channel. */
export const AAD_PREFIX = 'tsc-croc/v1/';
/** Bytes of a confirmation MAC (HMAC-SHA256). */
export const CONFIRMATION_LENGTH = 32;


export interface SenderHandshake {
  /** pA, posted to the relay as `x`. */
  readonly x: Uint8Array;
  /** Checks the recipient's `y` and `hh_k`; returns `h_k` to post and the session keys. Once only. */
  finish(y: Uint8Array, hh_k: Uint8Array): { h_k: Uint8Array; keys: SessionKeys };
}

export interface RecipientHandshake {
  /** pB, posted to the relay as `y`. */
  readonly y: Uint8Array;
  /** cB, posted with `y` as `hh_k`. */
  readonly hh_k: Uint8Array;
  /** Checks the sender's `h_k`; returns the session keys. Once only. */
  verify(h_k: Uint8Array): SessionKeys;
}

const SENDER_ID = utf8(SENDER_IDENTITY);
const RECIPIENT_ID = utf8(RECIPIENT_IDENTITY);


/** AAD = UTF-8("tsc-croc/v1/" + curve + "/" + channel): binds the run to one curve and channel. */
export function handshakeAad(ctx: HandshakeContext): Uint8Array {
  assertContext(ctx);
  return utf8(`${AAD_PREFIX}${ctx.curve}/${ctx.channel}`);
}

function wrongCode(): TscCrocError {
  return new TscCrocError('ERR_WRONG_CODE', 'the code is wrong: key confirmation failed');
}

function assertConfirmation(value: unknown, name: string): asserts value is Uint8Array {
  abytes(value, name);
  if (value.length !== CONFIRMATION_LENGTH)
    throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', `${name} must be ${CONFIRMATION_LENGTH} bytes`);
}

/** Zeroes the secrets of a SPAKE2 result that are no longer needed (not cA or cB). */
function wipe(result: Spake2Result): void {
  result.Ke.fill(0);
  result.KcA.fill(0);
  result.KcB.fill(0);
}

/** The sender (SPAKE2 role A): computes x = pA; `finish` checks the recipient's cB, then yields cA and the keys. */
export function senderStart(w: bigint, ctx: HandshakeContext, randomScalar?: () => bigint): SenderHandshake {
  const aad = handshakeAad(ctx);
  const session = spake2Start({ curve: ctx.curve, role: 'A', w, idA: SENDER_ID, idB: RECIPIENT_ID, aad, randomScalar });
  let used = false;
  return {
    x: session.message,
    finish(y: Uint8Array, hh_k: Uint8Array) {
      if (used) throw new Error('handshake: finish may be called only once');
      used = true;
      abytes(y, 'y');
      assertConfirmation(hh_k, 'hh_k');
      const result = session.finish(y);
      if (!equalBytes(hh_k, result.cB)) {
        wipe(result);
        throw wrongCode();
      }
      const keys = deriveSessionKeys(result.Ke);
      wipe(result);
      return { h_k: result.cA, keys };
    },
  };
}

/** The recipient (SPAKE2 role B): from the sender's x, computes y = pB and hh_k = cB; `verify` checks cA. */
export function recipientRespond(
  w: bigint,
  ctx: HandshakeContext,
  x: Uint8Array,
  randomScalar?: () => bigint,
): RecipientHandshake {
  const aad = handshakeAad(ctx);
  abytes(x, 'x');
  const session = spake2Start({ curve: ctx.curve, role: 'B', w, idA: SENDER_ID, idB: RECIPIENT_ID, aad, randomScalar });
  const result = session.finish(x);
  let used = false;
  return {
    y: session.message,
    hh_k: result.cB.slice(),
    verify(h_k: Uint8Array): SessionKeys {
      if (used) throw new Error('handshake: verify may be called only once');
      used = true;
      assertConfirmation(h_k, 'h_k');
      const ok = equalBytes(h_k, result.cA);
      const keys = ok ? deriveSessionKeys(result.Ke) : undefined;
      wipe(result);
      result.cA.fill(0);
      if (keys === undefined) throw wrongCode();
      return keys;
    },
  };
}
