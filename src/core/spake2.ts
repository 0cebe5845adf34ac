/**
 * SPAKE2 (RFC 9382 §3, §4), generic over the suites in spake2-suites.ts.
 *
 *   A: pA = x*P + w*M        B: pB = y*P + w*N
 *   A: K = h*x*(pB - w*N)    B: K = h*y*(pA - w*M)
 *   TT = len(A)||A || len(B)||B || len(pA)||pA || len(pB)||pB || len(K)||K || len(w)||w
 *   Ke || Ka = Hash(TT);  KcA || KcB = KDF(nil, Ka, "ConfirmationKeys" || AAD)
 *   cA = MAC(KcA, TT);  cB = MAC(KcB, TT)
 *
 * Pure: no I/O; randomness is injectable. Secret scalars only meet constant-time `multiply`.
 * @module
 */
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { abytes, equalBytes } from './assert.js';
import { TscCrocError } from './errors.js';
import { fillRandom } from './platform.js';
import type { CurveName } from './relay-api.js';
import { SUITES, assertCurve, type Spake2Suite, type SuitePoint } from './spake2-suites.js';
import { utf8 } from './utf8.js';

export type Spake2Role = 'A' | 'B';

export interface Spake2Options {
  curve: CurveName;
  role: Spake2Role;
  /** The password scalar, 1 <= w < p (see password.ts). */
  w: bigint;
  /** Identities of A and B; an absent identity is the empty string (RFC 9382 §3.3). */
  idA: Uint8Array;
  idB: Uint8Array;
  /** Additional authenticated data, bound into KcA and KcB (RFC 9382 §4). */
  aad: Uint8Array;
  /** Returns our secret scalar x (or y) in [1, p-1]. Defaults to a CSPRNG; override only in tests. */
  randomScalar?: () => bigint;
}

/** What both sides derive (RFC 9382 §4). Ke is the shared secret; the rest is for key confirmation. */
export interface Spake2Result {
  Ke: Uint8Array;
  KcA: Uint8Array;
  KcB: Uint8Array;
  cA: Uint8Array;
  cB: Uint8Array;
}

/** The full key schedule, including Ka (RFC 9382 §4). */
export interface Spake2KeySchedule extends Spake2Result {
  Ka: Uint8Array;
}

export interface Spake2Session {
  /** Our share: pA for role A, pB for role B. */
  readonly message: Uint8Array;
  /** Processes the peer's share. May be called once; throws ERR_BAD_PAKE_MESSAGE on a bad share. */
  finish(peerMessage: Uint8Array): Spake2Result;
}

/** The fields of the transcript TT (RFC 9382 §3.3); K already encoded. */
export interface Spake2TranscriptParts {
  idA: Uint8Array;
  idB: Uint8Array;
  pA: Uint8Array;
  pB: Uint8Array;
  K: Uint8Array;
  w: bigint;
}

const CONFIRMATION_KEYS = utf8('ConfirmationKeys');
const EMPTY = new Uint8Array(0);

function assertScalar(value: unknown, name: string, order: bigint): asserts value is bigint {
  if (typeof value !== 'bigint') throw new TypeError(`${name} must be a bigint`);
  if (value < 1n || value >= order) throw new RangeError(`${name} must be in [1, order - 1]`);
}

/** A uniformly random scalar in [1, order-1]: 64 CSPRNG bytes reduced mod (order-1), bias < 2^-250. */
export function randomScalar(order: bigint): bigint {
  if (typeof order !== 'bigint' || order < 3n) throw new RangeError('order must be a bigint >= 3');
  const bytes = fillRandom(new Uint8Array(64));
  const scalar = (bytesToNumberBE(bytes) % (order - 1n)) + 1n;
  bytes.fill(0);
  return scalar;
}

/** len(S) || S with len an 8-byte little-endian byte count (RFC 9382 §3.1). */
function lengthPrefixed(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, p) => sum + 8 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const part of parts) {
    view.setBigUint64(pos, BigInt(part.length), true);
    out.set(part, pos + 8);
    pos += 8 + part.length;
  }
  return out;
}

/** The transcript TT (RFC 9382 §3.3); w is big-endian, padded to the length of p. */
export function spake2Transcript(curve: CurveName, parts: Spake2TranscriptParts): Uint8Array {
  assertCurve(curve, 'curve');
  const suite = SUITES[curve];
  const { idA, idB, pA, pB, K, w } = parts;
  abytes(idA, 'idA');
  abytes(idB, 'idB');
  abytes(pA, 'pA', suite.elementLength);
  abytes(pB, 'pB', suite.elementLength);
  abytes(K, 'K', suite.elementLength);
  assertScalar(w, 'w', suite.order);
  const wBytes = suite.encodeScalar(w);
  const tt = lengthPrefixed([idA, idB, pA, pB, K, wBytes]);
  wBytes.fill(0);
  return tt;
}

/** Ke || Ka = Hash(TT); KcA || KcB = KDF(nil, Ka, "ConfirmationKeys" || AAD); cA, cB = MAC(Kc*, TT) (RFC 9382 §4). */
export function spake2KeySchedule(curve: CurveName, TT: Uint8Array, aad: Uint8Array): Spake2KeySchedule {
  assertCurve(curve, 'curve');
  abytes(TT, 'TT');
  abytes(aad, 'aad');
  const suite = SUITES[curve];
  const digest = suite.hash(TT);
  const half = digest.length / 2;
  const Ke = digest.slice(0, half);
  const Ka = digest.slice(half);
  const info = new Uint8Array(CONFIRMATION_KEYS.length + aad.length);
  info.set(CONFIRMATION_KEYS);
  info.set(aad, CONFIRMATION_KEYS.length);
  const kc = suite.kdf(EMPTY, Ka, info, digest.length);
  const KcA = kc.slice(0, kc.length / 2);
  const KcB = kc.slice(kc.length / 2);
  digest.fill(0);
  kc.fill(0);
  return { Ke, Ka, KcA, KcB, cA: suite.mac(KcA, TT), cB: suite.mac(KcB, TT) };
}

/** Starts one SPAKE2 run as A or B (RFC 9382 §3.2, §3.3): returns our share and a one-shot `finish`. */
export function spake2Start(opts: Spake2Options): Spake2Session {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('opts must be an object');
  assertCurve(opts.curve, 'opts.curve');
  return opts.curve === 'ed25519' ? start(SUITES.ed25519, opts) : start(SUITES.p256, opts);
}

function start<P extends SuitePoint<P>>(suite: Spake2Suite<P>, opts: Spake2Options): Spake2Session {
  const { role, w, idA, idB, aad } = opts;
  if (role !== 'A' && role !== 'B') throw new TypeError("opts.role must be 'A' or 'B'");
  assertScalar(w, 'opts.w', suite.order);
  abytes(idA, 'opts.idA');
  abytes(idB, 'opts.idB');
  abytes(aad, 'opts.aad');
  if (opts.randomScalar !== undefined && typeof opts.randomScalar !== 'function')
    throw new TypeError('opts.randomScalar must be a function');
  let secret: bigint | undefined = (opts.randomScalar ?? (() => randomScalar(suite.order)))();
  assertScalar(secret, 'opts.randomScalar()', suite.order);
  const [ours, theirs] = role === 'A' ? [suite.M, suite.N] : [suite.N, suite.M];
  const message = suite.encodeElement(suite.P.multiply(secret).add(ours.multiply(w)));
  // w*mask for finish(), computed now: a sender starts before the peer is there, so finish(),
  // which the peer waits for, is left one multiplication (same result as computing it there)
  const wTheirs = theirs.multiply(w);
  const idACopy = idA.slice();
  const idBCopy = idB.slice();
  const aadCopy = aad.slice();
  return {
    message: message.slice(),
    finish(peerMessage: Uint8Array): Spake2Result {
      const x = secret;
      if (x === undefined) throw new Error('spake2: finish may be called only once');
      secret = undefined;
      const peer = suite.decodeElement(peerMessage, 'peerMessage');
      if (equalBytes(peerMessage, message))
        throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', 'peerMessage is our own message reflected back');
      // K = h*x*(peer - w*mask): clearing the cofactor first keeps `multiply` on a prime-order point.
      const K = peer.subtract(wTheirs).clearCofactor().multiply(x);
      if (K.is0()) throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', 'the shared element K is the identity');
      const [pA, pB] = role === 'A' ? [message, peerMessage] : [peerMessage, message];
      const Kbytes = suite.encodeElement(K);
      const TT = spake2Transcript(suite.curve, { idA: idACopy, idB: idBCopy, pA, pB, K: Kbytes, w });
      const { Ke, Ka, KcA, KcB, cA, cB } = spake2KeySchedule(suite.curve, TT, aadCopy);
      Ka.fill(0);
      Kbytes.fill(0);
      TT.fill(0);
      return { Ke, KcA, KcB, cA, cB };
    },
  };
}
