/**
 * The recipient's proof that a transfer arrived (src/core/received-proof.ts, docs/protocol.md §7.1):
 * the published vector (the record keys of §4.9), computed here from its definition with
 * node:crypto's HKDF and HMAC as well, and what changes it.
 */
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import { test } from 'node:test';
import { isReceivedProof, receivedProof } from '../src/core/received-proof.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const KEYS = {
  senderToRecipient: hex('18a85c29b888a3fcbc4369c987cb18afe52a6078f120873926bae8a72b7544eb'),
  recipientToSender: hex('5db64106827fd823c0b687bbd4b4ccad9f0474000916700c8bc002733f9f8859'),
};
const VECTOR = '2ca8907562e23f959b42f306a2d2473d8b32fe11a9bea97b0c0b7d68fe9d3015';

test('the published vector, and the same from the definition with node:crypto', () => {
  assert.equal(Buffer.from(receivedProof(KEYS)).toString('hex'), VECTOR);
  const key = Buffer.from(hkdfSync('sha256', Buffer.concat([KEYS.senderToRecipient, KEYS.recipientToSender]), Buffer.alloc(0), 'tsc-croc/v3/received', 32));
  assert.equal(createHmac('sha256', key).update('received').digest('hex'), VECTOR);
});

test('another session, a swapped direction or a changed byte does not verify', () => {
  assert.ok(isReceivedProof(KEYS, hex(VECTOR)));
  const swapped = { senderToRecipient: KEYS.recipientToSender, recipientToSender: KEYS.senderToRecipient };
  assert.ok(!isReceivedProof(swapped, hex(VECTOR)));
  const bad = hex(VECTOR);
  bad[31] = bad[31]! ^ 1;
  assert.ok(!isReceivedProof(KEYS, bad));
  assert.ok(!isReceivedProof(KEYS, hex(VECTOR).subarray(0, 31)));
  assert.throws(() => receivedProof({ ...KEYS, senderToRecipient: new Uint8Array(16) }), RangeError);
});
