/**
 * The recipient's proof that a transfer arrived, left on the relay (docs/protocol.md §7.1): the
 * `received` message travels on the stapled connection, and a connection that drops between the
 * recipient sending it and the sender reading it (a relay process killed at that moment) would
 * leave a sender that sent everything unable to tell. So the recipient also writes this MAC in
 * the channel's `fin` field, with its closing request; a sender that lost the connection after
 * `done` reads the channel, and a `fin` equal to its own computation proves, as `received` does,
 * that this recipient (holder of the session keys) has everything. The relay learns nothing it
 * could not tell from the recipient's `close: "done"`, and cannot forge it.
 *
 *   fin = HMAC-SHA256(HKDF-SHA256(ikm = K_s2r || K_r2s, salt = "", info = "tsc-croc/v3/received", 32), "received")
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { abytes, equalBytes } from './assert.js';
import type { SessionKeys } from './key-schedule.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const EMPTY = new Uint8Array(0);

/** The 32-byte proof for the session with these record keys. */
export function receivedProof(keys: SessionKeys): Uint8Array {
  abytes(keys.senderToRecipient, 'keys.senderToRecipient', 32);
  abytes(keys.recipientToSender, 'keys.recipientToSender', 32);
  const ikm = new Uint8Array(64);
  ikm.set(keys.senderToRecipient, 0);
  ikm.set(keys.recipientToSender, 32);
  const key = hkdf(sha256, ikm, EMPTY, utf8('tsc-croc/v3/received'), 32);
  ikm.fill(0);
  const mac = hmac(sha256, key, utf8('received'));
  key.fill(0);
  return mac;
}

/** Whether `proof` is this session's (constant time in its content). */
export function isReceivedProof(keys: SessionKeys, proof: Uint8Array): boolean {
  return proof.length === 32 && equalBytes(receivedProof(keys), proof);
}
