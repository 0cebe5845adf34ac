/**
 * The record keys of one session: one AES-256 key per direction, from SPAKE2's Ke
 * by HKDF-SHA256 (RFC 5869) with versioned, labelled info strings.
 * @module
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { abytes } from './assert.js';

/** HKDF info for the key that protects records from the sender to the recipient. */
export const LABEL_SENDER_TO_RECIPIENT = 'tsc-croc/v1/record/sender-to-recipient';
/** HKDF info for the key that protects records from the recipient to the sender. */
export const LABEL_RECIPIENT_TO_SENDER = 'tsc-croc/v1/record/recipient-to-sender';
/** Bytes of each record key (AES-256). */
export const SESSION_KEY_LENGTH = 32;

/** One key per direction, never the same. */
export interface SessionKeys {
  senderToRecipient: Uint8Array;
  recipientToSender: Uint8Array;
}

const EMPTY = new Uint8Array(0);
import { utf8 } from './utf8.js';

/**
 * HKDF-SHA256(ikm = Ke, salt = empty, info = label, L = 32) for each direction (RFC 5869 §2).
 * Ke is SPAKE2's shared secret (RFC 9382 §4), at least 16 bytes.
 */
export function deriveSessionKeys(Ke: Uint8Array): SessionKeys {
  abytes(Ke, 'Ke');
  if (Ke.length < 16) throw new RangeError(`Ke must be at least 16 bytes, got ${Ke.length}`);
  return {
    senderToRecipient: hkdf(sha256, Ke, EMPTY, utf8(LABEL_SENDER_TO_RECIPIENT), SESSION_KEY_LENGTH),
    recipientToSender: hkdf(sha256, Ke, EMPTY, utf8(LABEL_RECIPIENT_TO_SENDER), SESSION_KEY_LENGTH),
  };
}
