/**
 * SPAKE2, the handshake, the password scalar and the key schedule: round trips, wrong codes,
 * hostile messages, domain separation, and a property test. RFC vectors are in spake2.vectors.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { bytesToHex, equalBytes, hexToBytes } from '../src/core/assert.js';
import { isTscCrocError, type ErrorCode } from '../src/core/errors.js';
import type { CurveName } from '../src/core/relay-api.js';
import { randomScalar, spake2Start } from '../src/core/spake2.js';
import { ED25519_PARAMS, P256_PARAMS, SUITES } from '../src/core/spake2-suites.js';
import {
  RECIPIENT_IDENTITY,
  SENDER_IDENTITY,
  handshakeAad,
  recipientRespond,
  senderStart,
  type HandshakeContext,
} from '../src/core/handshake.js';
import { derivePasswordScalar, GROUP_ORDERS, passwordSalt, SCRYPT_DKLEN, SCRYPT_N, SCRYPT_P, SCRYPT_R } from '../src/core/password.js';
import {
  deriveSessionKeys,
  LABEL_RECIPIENT_TO_SENDER,
  LABEL_SENDER_TO_RECIPIENT,
  SESSION_KEY_LENGTH,
} from '../src/core/key-schedule.js';

const CURVES: CurveName[] = ['ed25519', 'p256'];
const utf8 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf8'));
const EMPTY = new Uint8Array(0);
const FAST = { N: 16 }; // test-only scrypt cost

function code(expected: ErrorCode) {
  return (e: unknown): boolean => {
    assert.ok(isTscCrocError(e, expected), `expected ${expected}, got ${String(e)}`);
    return true;
  };
}

function wFor(curve: CurveName): bigint {
  return randomScalar(SUITES[curve].order);
}

/** Runs the whole handshake; returns what each side got, or the error each side saw. */
function handshake(wS: bigint, wR: bigint, ctxS: HandshakeContext, ctxR: HandshakeContext) {
  const sender = senderStart(wS, ctxS);
  const recipient = recipientRespond(wR, ctxR, sender.x);
  const fin = sender.finish(recipient.y, recipient.hh_k);
  const keys = recipient.verify(fin.h_k);
  return { sender: fin.keys, recipient: keys };
}

for (const curve of CURVES) {
  const ctx: HandshakeContext = { curve, channel: 'abc123' };

  test(`${curve}: raw SPAKE2 round trip gives both sides the same Ke and confirmations`, () => {
    const w = wFor(curve);
    const common = { curve, w, idA: utf8('A'), idB: utf8('B'), aad: utf8('aad') };
    const a = spake2Start({ ...common, role: 'A' });
    const b = spake2Start({ ...common, role: 'B' });
    assert.equal(a.message.length, SUITES[curve].elementLength);
    const ra = a.finish(b.message);
    const rb = b.finish(a.message);
    assert.deepEqual(ra, rb);
    assert.equal(ra.Ke.length, 16);
    assert.notDeepEqual(ra.cA, ra.cB);
  });

  test(`${curve}: handshake round trip; one key per direction`, () => {
    const w = wFor(curve);
    const { sender, recipient } = handshake(w, w, ctx, ctx);
    assert.deepEqual(sender, recipient);
    assert.equal(sender.senderToRecipient.length, 32);
    assert.equal(sender.recipientToSender.length, 32);
    assert.ok(!equalBytes(sender.senderToRecipient, sender.recipientToSender));
  });

  test(`${curve}: a wrong code fails key confirmation on both sides with ERR_WRONG_CODE`, () => {
    const w = wFor(curve);
    const wrong = wFor(curve);
    const sender = senderStart(w, ctx);
    const recipient = recipientRespond(wrong, ctx, sender.x);
    assert.throws(() => sender.finish(recipient.y, recipient.hh_k), code('ERR_WRONG_CODE'));
    // A sender that holds the wrong code sends a cA the recipient must reject.
    const liar = spake2Start({
      curve, role: 'A', w, idA: utf8(SENDER_IDENTITY), idB: utf8(RECIPIENT_IDENTITY), aad: handshakeAad(ctx),
    });
    const recipient2 = recipientRespond(wrong, ctx, liar.message);
    const { cA } = liar.finish(recipient2.y);
    assert.throws(() => recipient2.verify(cA), code('ERR_WRONG_CODE'));
  });

  test(`${curve}: the error message carries no secret`, () => {
    const w = wFor(curve);
    const sender = senderStart(w, ctx);
    const recipient = recipientRespond(w + 1n, ctx, sender.x);
    assert.throws(
      () => sender.finish(recipient.y, recipient.hh_k),
      (e: unknown) => e instanceof Error && e.message === 'the code is wrong: key confirmation failed',
    );
  });

  test(`${curve}: a different channel fails key confirmation`, () => {
    const w = wFor(curve);
    assert.throws(() => handshake(w, w, ctx, { curve, channel: 'abc124' }), code('ERR_WRONG_CODE'));
  });

  test(`${curve}: a tampered confirmation fails; verify and finish are one-shot`, () => {
    const w = wFor(curve);
    const sender = senderStart(w, ctx);
    const recipient = recipientRespond(w, ctx, sender.x);
    const bad = recipient.hh_k.slice();
    bad[0]! ^= 1;
    assert.throws(() => sender.finish(recipient.y, bad), code('ERR_WRONG_CODE'));
    assert.throws(() => sender.finish(recipient.y, recipient.hh_k), /only once/);
    assert.throws(() => recipient.verify(new Uint8Array(32)), code('ERR_WRONG_CODE'));
    assert.throws(() => recipient.verify(new Uint8Array(32)), /only once/);
    const sender2 = senderStart(w, ctx);
    const recipient2 = recipientRespond(w, ctx, sender2.x);
    assert.throws(() => sender2.finish(recipient2.y, new Uint8Array(31)), code('ERR_BAD_PAKE_MESSAGE'));
  });

  test(`${curve}: reflected messages are rejected with ERR_BAD_PAKE_MESSAGE`, () => {
    const w = wFor(curve);
    const sender = senderStart(w, ctx);
    assert.throws(() => sender.finish(sender.x, new Uint8Array(32)), code('ERR_BAD_PAKE_MESSAGE'));
    const b = spake2Start({ curve, role: 'B', w, idA: EMPTY, idB: EMPTY, aad: EMPTY });
    assert.throws(() => b.finish(b.message), code('ERR_BAD_PAKE_MESSAGE'));
  });

  test(`${curve}: a peer share that unmasks to the identity (K = I) is rejected`, () => {
    const w = wFor(curve);
    const suite = SUITES[curve];
    const a = spake2Start({ curve, role: 'A', w, idA: EMPTY, idB: EMPTY, aad: EMPTY });
    // pB = w*N makes pB - w*N the identity: only someone who knows w can do this, but A must still abort.
    const evil = curve === 'ed25519' ? SUITES.ed25519.N.multiply(w).toBytes() : SUITES.p256.N.multiply(w).toBytes(false);
    assert.equal(evil.length, suite.elementLength);
    assert.throws(() => a.finish(evil), code('ERR_BAD_PAKE_MESSAGE'));
  });

  test(`${curve}: finish is one-shot, scalars are range-checked`, () => {
    const w = wFor(curve);
    const order = SUITES[curve].order;
    const common = { curve, w, idA: EMPTY, idB: EMPTY, aad: EMPTY };
    const a = spake2Start({ ...common, role: 'A' });
    const b = spake2Start({ ...common, role: 'B' });
    a.finish(b.message);
    assert.throws(() => a.finish(b.message), /only once/);
    assert.throws(() => spake2Start({ ...common, role: 'A', w: 0n }), RangeError);
    assert.throws(() => spake2Start({ ...common, role: 'A', w: order }), RangeError);
    assert.throws(() => spake2Start({ ...common, role: 'A', randomScalar: () => 0n }), RangeError);
    assert.throws(() => spake2Start({ ...common, role: 'A', randomScalar: () => order }), RangeError);
    assert.throws(() => spake2Start({ ...common, role: 'C' as 'A' }), TypeError);
    assert.throws(() => spake2Start({ ...common, curve: 'p384' as CurveName, role: 'A' }), TypeError);
    // Fresh randomness each run.
    assert.notDeepEqual(spake2Start({ ...common, role: 'A' }).message, spake2Start({ ...common, role: 'A' }).message);
  });
}

test("the suites' curves are noble's edwards25519 and P-256: same parameters, same points, same decoding", () => {
  assert.deepEqual({ ...ED25519_PARAMS }, { ...ed25519.Point.CURVE() });
  assert.deepEqual({ ...P256_PARAMS }, { ...p256.Point.CURVE() });
  // encodings of multiples of the generator, and 32 random byte strings (most not valid shares): both
  // decoders accept the same ones and give the same point; encoding round-trips
  const ours = SUITES.ed25519;
  const samples: Uint8Array[] = [];
  for (let k = 1n; k <= 8n; k++) samples.push(ed25519.Point.BASE.multiply(k * 7919n).toBytes());
  for (let i = 0; i < 32; i++) samples.push(crypto.getRandomValues(new Uint8Array(32)));
  samples.push(ed25519.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a').toBytes());
  // (noble's decoding, then the checks decodeElement makes: canonical, not small order, torsion-free)
  const nobleDecode = (bytes: Uint8Array): string | undefined => {
    try {
      const p = ed25519.Point.fromBytes(bytes, false);
      return equalBytes(p.toBytes(), bytes) && !p.isSmallOrder() && p.isTorsionFree() ? bytesToHex(p.toBytes()) : undefined;
    } catch {
      return undefined;
    }
  };
  const ourDecode = (bytes: Uint8Array): string | undefined => {
    try {
      return bytesToHex(ours.encodeElement(ours.decodeElement(bytes, 'sample')));
    } catch (e) {
      assert.ok(isTscCrocError(e, 'ERR_BAD_PAKE_MESSAGE'));
      return undefined;
    }
  };
  let accepted = 0;
  for (const bytes of samples) {
    const mine = ourDecode(bytes);
    assert.equal(mine, nobleDecode(bytes), bytesToHex(bytes));
    if (mine !== undefined) accepted++;
  }
  assert.ok(accepted >= 8, 'the multiples of the generator decode');
  assert.equal(bytesToHex(ours.encodeElement(ours.P.multiply(123456789n))), bytesToHex(ed25519.Point.BASE.multiply(123456789n).toBytes()));
  const nist = SUITES.p256;
  assert.equal(bytesToHex(nist.encodeElement(nist.P.multiply(987654321n))), bytesToHex(p256.Point.BASE.multiply(987654321n).toBytes(false)));
  assert.equal(bytesToHex(nist.encodeElement(nist.N.multiply(5n).add(nist.M))), bytesToHex(p256.Point.fromBytes(nist.encodeElement(nist.N)).multiply(5n).add(p256.Point.fromBytes(nist.encodeElement(nist.M))).toBytes(false)));
});

test('ed25519: invalid encodings, small-order and torsioned points are ERR_BAD_PAKE_MESSAGE', () => {
  const w = wFor('ed25519');
  const Point = ed25519.Point;
  const smallOrder = Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const yAboveQ = new Uint8Array(32).fill(0xff);
  yAboveQ[31] = 0x7f; // y = 2^255 - 1 >= q
  const identity = Point.ZERO.toBytes();
  const torsioned = Point.BASE.multiply(12345n).add(smallOrder).toBytes();
  let offCurve: Uint8Array | undefined;
  for (let y = 2; offCurve === undefined; y++) {
    const candidate = new Uint8Array(32);
    candidate[0] = y;
    try {
      Point.fromBytes(candidate);
    } catch {
      offCurve = candidate;
    }
  }
  const cases: [string, Uint8Array][] = [
    ['empty', EMPTY],
    ['31 bytes', new Uint8Array(31)],
    ['33 bytes', new Uint8Array(33)],
    ['y >= q', yAboveQ],
    ['off the curve', offCurve],
    ['identity', identity],
    ['small order', smallOrder.toBytes()],
    ['torsioned', torsioned],
  ];
  for (const [name, bytes] of cases) {
    const a = spake2Start({ curve: 'ed25519', role: 'A', w, idA: EMPTY, idB: EMPTY, aad: EMPTY });
    assert.throws(() => a.finish(bytes), code('ERR_BAD_PAKE_MESSAGE'), name);
  }
  assert.throws(() => recipientRespond(w, { curve: 'ed25519', channel: 'abc' }, identity), code('ERR_BAD_PAKE_MESSAGE'));
});

test('p256: invalid encodings are ERR_BAD_PAKE_MESSAGE', () => {
  const w = wFor('p256');
  const good = p256.Point.BASE.multiply(777n).toBytes(false);
  const offCurve = good.slice();
  offCurve[64]! ^= 1;
  const xAboveQ = good.slice();
  xAboveQ.fill(0xff, 1, 33);
  const compressed = p256.Point.BASE.multiply(777n).toBytes(true);
  const cases: [string, Uint8Array][] = [
    ['empty', EMPTY],
    ['64 bytes', good.slice(1)],
    ['compressed', compressed],
    ['wrong prefix', Uint8Array.from([0x02, ...good.slice(1)])],
    ['off the curve', offCurve],
    ['x >= q', xAboveQ],
    ['zeros', new Uint8Array(65)],
  ];
  for (const [name, bytes] of cases) {
    const b = spake2Start({ curve: 'p256', role: 'B', w, idA: EMPTY, idB: EMPTY, aad: EMPTY });
    assert.throws(() => b.finish(bytes), code('ERR_BAD_PAKE_MESSAGE'), name);
  }
});

test('a different curve cannot complete: the share does not even parse', () => {
  const w = wFor('ed25519');
  const sender = senderStart(w, { curve: 'p256', channel: 'abc' });
  assert.throws(() => recipientRespond(w, { curve: 'ed25519', channel: 'abc' }, sender.x), code('ERR_BAD_PAKE_MESSAGE'));
  assert.notDeepEqual(handshakeAad({ curve: 'p256', channel: 'abc' }), handshakeAad({ curve: 'ed25519', channel: 'abc' }));
  assert.equal(Buffer.from(handshakeAad({ curve: 'p256', channel: 'abc' })).toString(), 'tsc-croc/v1/p256/abc');
});

test('handshake contexts are validated', () => {
  const w = wFor('ed25519');
  assert.throws(() => senderStart(w, { curve: 'ed25519', channel: 'ABC' }), RangeError);
  assert.throws(() => senderStart(w, { curve: 'ed25519', channel: 'a-b' }), RangeError);
  assert.throws(() => senderStart(w, { curve: 'ed25519', channel: '' }), RangeError);
  assert.throws(() => senderStart(w, { curve: 'x' as CurveName, channel: 'abc' }), TypeError);
});

test('property: random codes agree iff they are equal', async () => {
  const words = fc.constantFrom('alpha-bravo', 'alpha-brave', 'zulu-yankee');
  const curves = fc.constantFrom<CurveName>('ed25519', 'p256');
  await fc.assert(
    fc.asyncProperty(words, words, curves, async (codeS, codeR, curve) => {
      const ctx = { curve, channel: 'prop1' };
      const [wS, wR] = await Promise.all([
        derivePasswordScalar(codeS, ctx, FAST),
        derivePasswordScalar(codeR, ctx, FAST),
      ]);
      let agreed: boolean;
      try {
        const { sender, recipient } = handshake(wS, wR, ctx, ctx);
        agreed = equalBytes(sender.senderToRecipient, recipient.senderToRecipient);
      } catch (e) {
        assert.ok(isTscCrocError(e, 'ERR_WRONG_CODE'));
        agreed = false;
      }
      assert.equal(agreed, codeS === codeR);
    }),
    { numRuns: 20 },
  );
});

test('derivePasswordScalar: deterministic, in range, separated by channel, curve and cost', async () => {
  assert.deepEqual([SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN], [2 ** 12, 8, 1, 64]);
  const ctx = { curve: 'ed25519' as const, channel: 'abc123' };
  const [w1, w2, wChannel, wCurve, wFast] = await Promise.all([
    derivePasswordScalar('secret-words', ctx),
    derivePasswordScalar('secret-words', ctx),
    derivePasswordScalar('secret-words', { ...ctx, channel: 'abc124' }),
    derivePasswordScalar('secret-words', { ...ctx, curve: 'p256' }),
    derivePasswordScalar('secret-words', ctx, FAST),
  ]);
  assert.equal(w1, w2);
  assert.notEqual(w1, wChannel);
  assert.notEqual(w1, wCurve);
  assert.notEqual(w1, wFast);
  for (const w of [w1, wChannel]) assert.ok(w > 0n && w < SUITES.ed25519.order);
  assert.ok(wCurve > 0n && wCurve < SUITES.p256.order);
  assert.notEqual(await derivePasswordScalar('secret-wordz', ctx, FAST), wFast);
});

test('password.ts has the group orders of the curves (it does not load them)', () => {
  assert.equal(GROUP_ORDERS.ed25519, SUITES.ed25519.order);
  assert.equal(GROUP_ORDERS.ed25519, ed25519.Point.Fn.ORDER);
  assert.equal(GROUP_ORDERS.p256, SUITES.p256.order);
  assert.equal(GROUP_ORDERS.p256, p256.Point.Fn.ORDER);
});

test('derivePasswordScalar: salt layout and input checks', async () => {
  assert.equal(
    bytesToHex(passwordSalt({ curve: 'p256', channel: 'ab' })),
    bytesToHex(utf8('tsc-croc/v2/spake2/w\0p256\0ab')),
  );
  const ctx = { curve: 'p256' as const, channel: 'abc' };
  await assert.rejects(derivePasswordScalar('', ctx, FAST), RangeError);
  await assert.rejects(derivePasswordScalar(42 as unknown as string, ctx, FAST), TypeError);
  await assert.rejects(derivePasswordScalar('x', { ...ctx, channel: 'a b' }, FAST), RangeError);
  await assert.rejects(derivePasswordScalar('x', ctx, { N: 1000 }), RangeError);
});

test('deriveSessionKeys: labelled, 32 bytes each, distinct and deterministic', () => {
  assert.equal(LABEL_SENDER_TO_RECIPIENT, 'tsc-croc/v1/record/sender-to-recipient');
  assert.equal(LABEL_RECIPIENT_TO_SENDER, 'tsc-croc/v1/record/recipient-to-sender');
  const Ke = hexToBytes('0e0672dc86f8e45565d338b0540abe69', 'Ke');
  const k1 = deriveSessionKeys(Ke);
  const k2 = deriveSessionKeys(Ke);
  assert.deepEqual(k1, k2);
  assert.equal(k1.senderToRecipient.length, SESSION_KEY_LENGTH);
  assert.equal(k1.recipientToSender.length, SESSION_KEY_LENGTH);
  assert.ok(!equalBytes(k1.senderToRecipient, k1.recipientToSender));
  const other = Ke.slice();
  other[15]! ^= 1;
  assert.ok(!equalBytes(deriveSessionKeys(other).senderToRecipient, k1.senderToRecipient));
  assert.throws(() => deriveSessionKeys(new Uint8Array(15)), RangeError);
  assert.throws(() => deriveSessionKeys('Ke' as unknown as Uint8Array), TypeError);
});
