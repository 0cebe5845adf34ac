/**
 * The SPAKE2 password scalar w (RFC 9382 §3.2: "typically w = MHF(pw) mod p") from the secret
 * words of a code, with scrypt (RFC 7914) as the memory-hard function, salted by curve and channel.
 * @module
 */
import { astring, bytesToHex } from './assert.js';
import { assertContext } from './handshake-context.js';
import { scryptBytes } from './platform.js';
import type { CurveName } from './relay-api.js';
import { utf8 } from './utf8.js';

/**
 * The order p of each suite's prime-order group (RFC 9382 §6: edwards25519's l, P-256's n), the
 * same numbers as spake2-suites.ts takes from the curves (a test compares them): this module does
 * not load the curve arithmetic, so a recipient derives w while that is still loading.
 */
export const GROUP_ORDERS: Readonly<Record<CurveName, bigint>> = Object.freeze({
  ed25519: 2n ** 252n + 27742317777372353535851937790883648493n,
  p256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
});

/**
 * scrypt CPU/memory cost N (RFC 7914 §2). 2^12 with r = 8 takes 4 MiB and a few milliseconds:
 * SPAKE2 already stops offline guessing, so this is defence in depth only (docs/protocol.md §8).
 */
export const SCRYPT_N = 2 ** 12;
/** scrypt block size r. */
export const SCRYPT_R = 8;
/** scrypt parallelization p. */
export const SCRYPT_P = 1;
/** Output bytes: 512 bits, so reduction mod a ~256-bit order has bias < 2^-250. */
export const SCRYPT_DKLEN = 64;
/** Domain-separation prefix of the salt. */
export const PASSWORD_SALT_LABEL = 'tsc-croc/v2/spake2/w';
/** Longest secret accepted, in UTF-16 code units. */
export const MAX_SECRET_LENGTH = 1024;

export interface PasswordContext {
  curve: CurveName;
  channel: string;
}

export interface PasswordOptions {
  /** FOR TESTS ONLY: a smaller scrypt N (a power of two). Production code must not set it. */
  N?: number;
}


/** salt = UTF-8(label) || 0x00 || UTF-8(curve) || 0x00 || UTF-8(channel). */
export function passwordSalt(ctx: PasswordContext): Uint8Array {
  assertContext(ctx);
  return utf8(`${PASSWORD_SALT_LABEL}\0${ctx.curve}\0${ctx.channel}`);
}

/**
 * w = scrypt(UTF-8(secret), salt, N = 2^12, r = 8, p = 1, 64 bytes) as a big-endian integer mod p,
 * where p is the order of the curve's group. The caller normalizes `secret`. Never 0.
 */
export async function derivePasswordScalar(
  secret: string,
  ctx: PasswordContext,
  opts: PasswordOptions = {},
): Promise<bigint> {
  astring(secret, 'secret', MAX_SECRET_LENGTH);
  if (secret.length === 0) throw new RangeError('secret must not be empty');
  const salt = passwordSalt(ctx);
  const N = opts.N ?? SCRYPT_N;
  if (!Number.isSafeInteger(N) || N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0)
    throw new RangeError('opts.N must be a power of two in [2, 2^20]');
  const password = utf8(secret);
  const out = await scryptBytes(password, salt, { N, r: SCRYPT_R, p: SCRYPT_P, dkLen: SCRYPT_DKLEN });
  password.fill(0);
  const w = BigInt(`0x${bytesToHex(out)}`) % GROUP_ORDERS[ctx.curve];
  out.fill(0);
  if (w === 0n) throw new RangeError('the password scalar is 0; choose another code');
  return w;
}
